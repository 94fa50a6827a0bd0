package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
)

// init --distributed writes a runtime of the distributed mode with the Go hook: it builds, its
// tests pass, and its binary is a runtime on RabbitMQ whose hook runs on the commands it gets
// (through its own API here), and that stops cleanly on SIGTERM.
func TestInitDistributedBuildsTestsAndRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command on a generated project")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	_, brokerURL := rmqtest.NewVhost(t)
	dir := filepath.Join(t.TempDir(), "shop")
	code, out, errOut := runCLI(t, "init", "--distributed", dir, "--module", "example.com/acme/shop", "--replace", repoRoot(t))
	if code != 0 {
		t.Fatalf("init: exit %d\n%s%s", code, out, errOut)
	}
	for _, f := range skeletonFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	if m := readFile(t, filepath.Join(dir, "main.go")); !strings.Contains(m, "distributed.ConfigFromEnv()") || !strings.Contains(m, "distributed.Run(ctx, cfg)") {
		t.Errorf("main.go is not a distributed runtime:\n%s", m)
	}
	// A bound only against a hung go command, under the 10 min test timeout: with CI's other
	// packages building and testing beside it, the four steps took over 3 min.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	bin := t.TempDir()
	for _, args := range [][]string{
		{"mod", "tidy"},
		{"vet", "./..."},
		{"build", "-o", bin + string(filepath.Separator), "./..."},
		{"test", "-count=1", "./..."},
	} {
		cmd := exec.CommandContext(ctx, goTool, args...)
		cmd.Dir = dir
		cmd.Env = goEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	port := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "shop"))
	cmd.Dir = dir // component.yaml, and the SQLite file ./xcomponent.db
	cmd.Env = append(os.Environ(), "BROKER_URL="+brokerURL, "DATABASE_URL=", "COMPONENT_FILE=", "RUNTIME_NAME=shop-1",
		fmt.Sprintf("PORT=%d", port), "CREATE_DEMO_INSTANCE=false")
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{}) // closed once the process has exited (waitErr set)
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Kill() // no-op once exited
		<-exited
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-exited:
			t.Fatalf("the runtime exited: %v\n%s", waitErr, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runtime is not ready after 60s:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	post := func(path string, body any) map[string]any {
		b, _ := json.Marshal(body)
		resp, err := http.Post(base+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if resp.StatusCode/100 != 2 || json.Unmarshal(raw, &out) != nil {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, raw)
		}
		return out
	}
	created := post("/api/components/Orders/instances", map[string]any{"context": map[string]any{
		"orderId": "o-1", "customer": "ann", "product": "gadget", "quantity": 3}})
	id, _ := created["instanceId"].(string)
	placed := post("/api/instances/"+id+"/trigger", map[string]any{"event": "PLACE"})
	inst, _ := placed["instance"].(map[string]any)
	data, _ := inst["context"].(map[string]any)
	if inst["currentState"] != "AwaitingPayment" || data["total"] != float64(30) {
		t.Errorf("after PLACE, priced by the Go hook: %v", placed)
	}
	if !strings.Contains(logs.String(), "runtime started") {
		t.Errorf("no 'runtime started' in the logs:\n%s", logs.String())
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("after SIGTERM: %v\n%s", waitErr, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30s after SIGTERM:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "msg=stopped") {
		t.Errorf("no graceful stop in the logs:\n%s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer written by a process's stderr copier and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
