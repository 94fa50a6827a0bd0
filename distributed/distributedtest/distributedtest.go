// Package distributedtest helps tests run runtimes of the distributed mode in their own
// process: Start runs distributed.Run until the test ends, and waits until the runtime is ready.
package distributedtest

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/distributed"
)

// Timeout bounds the start and the stop of a runtime.
const Timeout = 30 * time.Second

// Runtime is a runtime started by Start.
type Runtime struct {
	// Info is what the runtime reported when it was ready.
	Info   distributed.Info
	cancel context.CancelFunc
	done   chan error
}

// Start runs a runtime with cfg (its Ready callback is replaced) and returns once it is ready;
// the runtime is stopped when the test ends. A runtime that fails or is not ready within
// Timeout fails the test.
func Start(t testing.TB, cfg distributed.Config) *Runtime {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan distributed.Info, 1)
	cfg.Ready = func(i distributed.Info) { ready <- i }
	r := &Runtime{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- distributed.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(Timeout):
			t.Errorf("runtime %s did not stop", cfg.RuntimeName)
		}
	})
	select {
	case r.Info = <-ready:
	case err := <-r.done:
		t.Fatalf("runtime %s: %v", cfg.RuntimeName, err)
	case <-time.After(Timeout):
		t.Fatalf("runtime %s not ready", cfg.RuntimeName)
	}
	return r
}

// Stop stops the runtime gracefully and fails the test if Run returned an error.
func (r *Runtime) Stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("runtime %s: %v", r.Info.RuntimeName, err)
		}
		r.done <- nil // for the cleanup
	case <-time.After(Timeout):
		t.Fatalf("runtime %s did not stop", r.Info.RuntimeName)
	}
}

// Exited reports whether Run has returned, and its error, without waiting.
func (r *Runtime) Exited() (bool, error) {
	select {
	case err := <-r.done:
		r.done <- err // for Stop and the cleanup
		return true, err
	default:
		return false, nil
	}
}

// Logger is a logger for runtimes under test: their logs go to the test's log with -v, and
// nowhere otherwise.
func Logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Eventually polls cond until it holds, and fails the test when it still does not after
// timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
