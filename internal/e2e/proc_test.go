package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"github.com/xcomponent/xcomponent/internal/faults"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// component is the YAML file every test serves.
var componentFile = filepath.Join("testdata", "durable.yaml")

// server is one `xcomponent serve` subprocess.
type server struct {
	t       testing.TB
	name    string
	cmd     *exec.Cmd
	URL     string        // http://127.0.0.1:PORT
	Started time.Time     // when the process was started
	Ready   time.Duration // from start until /readyz answered 200
	done    chan struct{} // closed once the process has exited and its stderr is read
	waitErr error

	mu   sync.Mutex
	logs []string  // stderr lines (but successful request lines), the last maxLogLines
	msgs []logLine // the decoded JSON ones
}

// logLine is a decoded JSON log line of the server; Attrs holds all its fields.
type logLine struct {
	Msg, Level string
	Attrs      map[string]any
}

const maxLogLines = 4000

// startServe starts `xcomponent serve` on the store spec, on a free loopback port, and waits
// until /readyz answers. The process is killed when the test ends if it is still running.
func startServe(t testing.TB, name, storeSpec string, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--log-format", "json", "--port", "0", "--bind", "127.0.0.1",
		"--store", storeSpec, "--name", name}, extra...)
	args = append(args, componentFile)
	return startProcess(t, name, binary, args, []string{"DATABASE_URL=", "PORT=", "XCOMPONENT_AUTH_TOKENS="})
}

// startProcess starts bin (an xcomponent binary: `serve`, `runtime`, `dashboard` …) with args
// and env added to this process's environment, waits for its "serving" log line (JSON logs)
// and until its /readyz answers. It is killed when the test ends if it is still running.
func startProcess(t testing.TB, name, bin string, args, env []string) *server {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = "." // testdata paths are relative to the package directory
	cmd.Env = append(cmd.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatalf("serve %s: %v", name, err)
	}
	s := &server{t: t, name: name, cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	s.Started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("serve %s: start: %v", name, err)
	}
	go func() {
		s.read(stderr, addr)
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = cmd.Process.Kill()
			<-s.done
		}
		if s.sawRace() {
			t.Errorf("serve %s: the race detector reported a data race:\n%s", name, s.tail(200))
		}
		if t.Failed() {
			t.Logf("serve %s: last log lines:\n%s", name, s.tail(40))
		}
	})
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	select {
	case s.URL = <-addr:
	case <-s.done:
		t.Fatalf("serve %s exited before serving (%v):\n%s", name, s.waitErr, s.tail(40))
	case <-deadline.C:
		t.Fatalf("serve %s: no 'serving' log line after 60s:\n%s", name, s.tail(40))
	}
	s.waitReady(60 * time.Second)
	s.Ready = time.Since(s.Started)
	return s
}

// read consumes stderr until EOF, keeping the last lines and sending the address of the
// "serving" line on addr.
func (s *server) read(r io.Reader, addr chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		var ll map[string]any
		if json.Unmarshal([]byte(line), &ll) == nil {
			msg, _ := ll["msg"].(string)
			level, _ := ll["level"].(string)
			// serve: "serving" addr=…; runtime: "serving the API" addr=…; dashboard: "dashboard serving" url=…
			if (msg == "serving" || msg == "serving the API" || msg == "dashboard serving") && !sent {
				a, ok := ll["addr"].(string)
				if !ok {
					a, ok = ll["url"].(string)
				}
				if ok {
					addr <- a
					sent = true
				}
			}
			if msg == "http request" && level == "INFO" {
				continue // one per request: too many to keep, and the client knows them
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, logLine{Msg: msg, Level: level, Attrs: ll})
			s.mu.Unlock()
		}
		s.mu.Lock()
		s.logs = append(s.logs, line)
		if len(s.logs) > maxLogLines {
			s.logs = append(s.logs[:0], s.logs[len(s.logs)-maxLogLines/2:]...)
		}
		s.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}

func (s *server) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	from := max(0, len(s.logs)-n)
	return strings.Join(s.logs[from:], "\n")
}

func (s *server) sawRace() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.logs {
		if strings.Contains(l, "WARNING: DATA RACE") {
			return true
		}
	}
	return false
}

// logged returns the decoded log lines (request lines excluded) with that message.
func (s *server) logged(msg string) []logLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []logLine
	for _, l := range s.msgs {
		if l.Msg == msg {
			out = append(out, l)
		}
	}
	return out
}

// waitReady polls /readyz until it answers 200.
func (s *server) waitReady(timeout time.Duration) {
	s.t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	err := faults.Poll(timeout, func() (bool, error) {
		select {
		case <-s.done:
			return false, fmt.Errorf("exited: %v", s.waitErr)
		default:
		}
		resp, err := c.Get(s.URL + "/readyz")
		if err != nil {
			return false, nil
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		s.t.Fatalf("serve %s: /readyz: %v\n%s", s.name, err, s.tail(40))
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *server) kill() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatalf("serve %s: SIGKILL: %v", s.name, err)
	}
	s.wait(30 * time.Second)
}

// stop sends SIGTERM, waits for the process to exit and checks it exited with status 0.
func (s *server) stop() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("serve %s: SIGTERM: %v", s.name, err)
	}
	start := time.Now()
	s.wait(30 * time.Second)
	if s.waitErr != nil {
		s.t.Fatalf("serve %s: graceful stop: %v\n%s", s.name, s.waitErr, s.tail(40))
	}
	s.t.Logf("serve %s: stopped by SIGTERM in %v", s.name, time.Since(start).Round(time.Millisecond))
}

func (s *server) wait(timeout time.Duration) {
	s.t.Helper()
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	select {
	case <-s.done:
	case <-tm.C:
		s.t.Fatalf("serve %s: still running %v after the signal", s.name, timeout)
	}
}
