package faults

import (
	"bufio"
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
)

// Build builds the xcomponent binary into dir (with -race when the tests run with it, so that
// the race detector also watches the processes under test) and returns its path.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "xcomponent")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/xcomponent/xcomponent/cmd/xcomponent")
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("faults: build xcomponent: %w", err)
	}
	return bin, nil
}

// Proc is a running xcomponent process (`serve`, `runtime`, `dashboard`) started with JSON
// logs.
type Proc struct {
	t       testing.TB
	Name    string
	URL     string        // its API, http://host:port
	Started time.Time     // when the process was started
	Ready   time.Duration // from the start until /readyz answered 200
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error

	mu   sync.Mutex
	logs []string  // stderr lines (but successful request lines), the last maxLogLines
	msgs []LogLine // the JSON ones, decoded
}

// LogLine is a decoded JSON log line of a process; Attrs holds all its fields.
type LogLine struct {
	Msg, Level string
	Attrs      map[string]any
}

// maxLogLines bounds the lines a Proc keeps.
const maxLogLines = 4000

// StartTimeout bounds a process's start.
const StartTimeout = 60 * time.Second

// Start starts bin with args, env added to this process's environment, waits for its
// "serving" log line (JSON logs) and until /readyz answers 200. The process is killed at the
// end of the test if still running; a data race it reported fails the test.
func Start(t testing.TB, name, bin string, args, env []string) *Proc {
	t.Helper()
	return start(t, name, bin, args, env, "")
}

// StartAt is Start for a process whose API address is known in advance (url, e.g. given by
// PORT) and whose logs need not be JSON: it waits only until url/readyz answers 200.
func StartAt(t testing.TB, name, url, bin string, args, env []string) *Proc {
	t.Helper()
	return start(t, name, bin, args, env, url)
}

func start(t testing.TB, name, bin string, args, env []string, url string) *Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cmd.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	p := &Proc{t: t, Name: name, cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	p.Started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: start: %v", name, err)
	}
	go func() {
		p.read(stderr, addr)
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if strings.Contains(p.Tail(100000), "WARNING: DATA RACE") {
			t.Errorf("%s: the race detector reported a data race:\n%s", name, p.Tail(200))
		}
		if t.Failed() {
			t.Logf("%s: last log lines:\n%s", name, p.Tail(40))
		}
	})
	if url != "" {
		p.URL = url
	} else {
		tm := time.NewTimer(StartTimeout)
		defer tm.Stop()
		select {
		case p.URL = <-addr:
		case <-p.done:
			t.Fatalf("%s exited before serving (%v):\n%s", name, p.waitErr, p.Tail(40))
		case <-tm.C:
			t.Fatalf("%s: no 'serving' log line after %v:\n%s", name, StartTimeout, p.Tail(40))
		}
	}
	if err := p.WaitReady(StartTimeout); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, p.Tail(40))
	}
	p.Ready = time.Since(p.Started)
	return p
}

// read consumes stderr, keeping the last lines (but request lines) and sending the address of
// the "serving" line on addr.
func (p *Proc) read(r io.Reader, addr chan<- string) {
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
					if !strings.HasPrefix(a, "http") {
						a = "http://" + a
					}
					addr <- a
					sent = true
				}
			}
			if msg == "http request" && level == "INFO" {
				continue // one per request: too many to keep, and the client knows them
			}
			p.mu.Lock()
			p.msgs = append(p.msgs, LogLine{Msg: msg, Level: level, Attrs: ll})
			p.mu.Unlock()
		}
		p.mu.Lock()
		p.logs = append(p.logs, line)
		if len(p.logs) > maxLogLines {
			p.logs = append(p.logs[:0], p.logs[len(p.logs)-maxLogLines/2:]...)
		}
		p.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}

// Tail returns the last n log lines.
func (p *Proc) Tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.logs[max(0, len(p.logs)-n):], "\n")
}

// Logged returns the decoded log lines (request lines excluded) with that message.
func (p *Proc) Logged(msg string) []LogLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []LogLine
	for _, l := range p.msgs {
		if l.Msg == msg {
			out = append(out, l)
		}
	}
	return out
}

// WaitReady polls /readyz until it answers 200.
func (p *Proc) WaitReady(timeout time.Duration) error {
	c := &http.Client{Timeout: 5 * time.Second}
	return Poll(timeout, func() (bool, error) {
		select {
		case <-p.done:
			return false, fmt.Errorf("%s exited: %v", p.Name, p.waitErr)
		default:
		}
		resp, err := c.Get(p.URL + "/readyz")
		if err != nil {
			return false, nil
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Proc) Kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("%s: SIGKILL: %v", p.Name, err)
	}
	p.wait()
}

// Stop sends SIGTERM, waits for the exit and fails the test unless it exited with status 0.
func (p *Proc) Stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("%s: SIGTERM: %v", p.Name, err)
	}
	start := time.Now()
	p.wait()
	if p.waitErr != nil {
		p.t.Fatalf("%s: graceful stop: %v\n%s", p.Name, p.waitErr, p.Tail(40))
	}
	p.t.Logf("%s: stopped by SIGTERM in %v", p.Name, time.Since(start).Round(time.Millisecond))
}

func (p *Proc) wait() {
	p.t.Helper()
	tm := time.NewTimer(30 * time.Second)
	defer tm.Stop()
	select {
	case <-p.done:
	case <-tm.C:
		p.t.Fatalf("%s: still running 30s after the signal", p.Name)
	}
}

// Poll calls cond until it reports true, fails, or timeout passes: a condition wait, the pause
// between two calls being only the polling interval.
func Poll(timeout time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("condition not met after %v", timeout)
		case <-tick.C:
		}
	}
}

// FreePort returns a loopback port nobody listens on right now.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
