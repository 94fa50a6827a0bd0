package distributed_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/internal/faults"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/wire"
)

// Environment of a runtime child process (the test binary re-executed, see TestMain).
const (
	envChild     = "XC_TEST_RUNTIME_CHILD"
	envChildURL  = "XC_TEST_RUNTIME_BROKER"
	envChildDSN  = "XC_TEST_RUNTIME_DSN"
	envChildName = "XC_TEST_RUNTIME_NAME"
)

// TestMain runs a runtime instead of the tests when the test binary is started as a child
// runtime by a test that needs real processes (TestKillRuntimeUnderLoad).
func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		os.Exit(childRuntime())
	}
	os.Exit(m.Run())
}

// childRuntime runs a Counters runtime until SIGTERM (or SIGKILL), printing "READY <runtimeId>"
// on stdout once it consumes its commands.
func childRuntime() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	cfg := distributed.Config{ComponentFile: "testdata/counter.yaml", BrokerURL: os.Getenv(envChildURL),
		StoreSpec: os.Getenv(envChildDSN), RuntimeName: os.Getenv(envChildName),
		HeartbeatInterval: 200 * time.Millisecond, Partitions: 4, Prefetch: 64,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second,
		Ready: func(i distributed.Info) { fmt.Printf("READY %s\n", i.RuntimeID) }}
	if err := distributed.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "runtime:", err)
		return 1
	}
	return 0
}

type child struct {
	cmd  *exec.Cmd
	id   string
	done chan struct{} // closed when the process exited, with err set
	err  error
}

// startChild starts a runtime process and waits until it is ready.
func startChild(t *testing.T, url, dsn, name string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1", envChildURL+"="+url, envChildDSN+"="+dsn, envChildName+"="+name)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs, err := os.Create(t.TempDir() + "/" + name + ".log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- id
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		c.err = cmd.Wait()
		_ = logs.Close()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(timeout):
			_ = cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			if b, err := os.ReadFile(logs.Name()); err == nil {
				t.Logf("%s log (tail):\n%s", name, tail(string(b), 4000))
			}
		}
	})
	select {
	case c.id = <-ready:
	case <-c.done:
		t.Fatalf("runtime %s exited: %v", name, c.err)
	case <-time.After(2 * timeout):
		t.Fatalf("runtime %s not ready", name)
	}
	return c
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestKillRuntimeUnderLoad runs two runtime processes of one component under concurrent load
// and kills one with SIGKILL mid-run: its partitions and queued commands are taken over by the
// other, every command is applied exactly once (fsm_events, row by row) and in order per
// instance.
func TestKillRuntimeUnderLoad(t *testing.T) {
	url := vhost(t)
	dsn := pgtest.NewDatabase(t)
	client := newClient(t, url)
	rep := subscribeReplies(t, client)
	var (
		mu      sync.Mutex
		arrived = map[string]time.Time{} // command id → first reply received
		by      = map[string]string{}    // command id → runtime that applied it
	)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sub, err := client.Subscribe(ctx, wire.ChannelCommandReply, func(_ context.Context, m bus.Message) error {
		r, err := wire.Decode[wire.CommandReply](m.Body)
		if err != nil {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if _, ok := arrived[r.CommandID]; !ok {
			arrived[r.CommandID] = time.Now()
		}
		if r.Status == wire.ReplyApplied {
			by[r.CommandID] = r.RuntimeID
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Close() }()

	a := startChild(t, url, dsn, "runtime-a")
	b := startChild(t, url, dsn, "runtime-b")

	const m, k = 24, 60
	ids, published := traffic(t, client, m, k)
	total := m * (k + 1)
	eventually(t, "a third of the commands answered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(arrived) >= total/3 && len(by) > 0
	})
	// Wait until both runtimes have applied commands (the partitions are shared), then kill A.
	eventually(t, "both runtimes applying", func() bool {
		mu.Lock()
		defer mu.Unlock()
		seen := map[string]bool{}
		for _, r := range by {
			seen[r] = true
		}
		return seen[a.id] && seen[b.id]
	})
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-a.done
	<-published
	waitReplies(t, rep, ids, k)

	// Takeover: for each instance A served last before the kill (its partition was A's then),
	// the first command B applied for it after the kill.
	mu.Lock()
	lastBy, lastAt := map[string]string{}, map[string]time.Time{}
	for cmd, r := range by {
		inst, at := instanceOf(cmd), arrived[cmd]
		if at.Before(killed) && at.After(lastAt[inst]) {
			lastBy[inst], lastAt[inst] = r, at
		}
	}
	takenOver := map[string]time.Duration{}
	for cmd, r := range by {
		inst, at := instanceOf(cmd), arrived[cmd]
		if lastBy[inst] != a.id || r != b.id || !at.After(killed) {
			continue
		}
		if d, ok := takenOver[inst]; !ok || at.Sub(killed) < d {
			takenOver[inst] = at.Sub(killed)
		}
	}
	mu.Unlock()
	var first, last time.Duration = -1, 0
	for _, d := range takenOver {
		if first < 0 || d < first {
			first = d
		}
		last = max(last, d)
	}
	t.Logf("SIGKILL of runtime A: %d of its instances served again by B, the first %s, the last %s after the kill",
		len(takenOver), first.Round(time.Millisecond), last.Round(time.Millisecond))
	if first < 0 {
		t.Fatal("no instance of the killed runtime was served by the survivor")
	}

	select {
	case <-b.done:
		t.Fatalf("runtime B exited: %v", b.err)
	default:
	}
	checkReplies(t, rep)
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close(context.Background()) }()
	checkOrder(t, db, ids, k)
	if n := queryInt(t, db, "SELECT count(*) FROM fsm_snapshots WHERE version = $1 AND event_count = $2", k, k+1); n != m {
		t.Fatalf("%d instances at version %d with %d events, want %d", n, k, k+1, m)
	}
	if n := queryInt(t, db, "SELECT count(*) FROM fsm_events WHERE event_type = 'INSTANCE_CREATED'"); n != m {
		t.Fatalf("%d creation events, want %d", n, m)
	}
	judgeTraffic(t, dsn, ids, k, rep, faults.ScenarioKillRuntime, "2 runtime processes, PostgreSQL", last,
		"kill → every instance it served applied again by the survivor", fmt.Sprintf(
			"24 instances × 61 commands; its partitions and unacknowledged commands taken over (%d instances, the first after %v)", len(takenOver), first.Round(time.Millisecond)))
}

// instanceOf is the instance id in a test command id ("create-<id>", "tick-<id>-<n>").
func instanceOf(cmd string) string {
	if id, ok := strings.CutPrefix(cmd, "create-"); ok {
		return id
	}
	s := strings.TrimPrefix(cmd, "tick-")
	if i := strings.LastIndexByte(s, '-'); i > 0 {
		return s[:i]
	}
	return s
}
