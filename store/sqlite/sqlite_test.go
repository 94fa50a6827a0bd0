package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/sqlite"
	"github.com/xcomponent/xcomponent/store/storetest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openPath(t testing.TB, path string, opts ...sqlite.Option) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, append([]sqlite.Option{sqlite.WithLogger(quiet())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func open(t testing.TB, opts ...sqlite.Option) *sqlite.Store {
	t.Helper()
	return openPath(t, filepath.Join(t.TempDir(), "test.db"), opts...)
}

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

func TestSuiteSynchronousNormal(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, sqlite.WithSynchronous("NORMAL")) })
}

func TestTwoStoresOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	storetest.RunTwoStores(t, openPath(t, path), openPath(t, path))
}

func TestConcurrentMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	const n = 8
	stores := make([]*sqlite.Store, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = sqlite.Open(context.Background(), path, sqlite.WithLogger(quiet()))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	for _, s := range stores {
		c := &store.Commit{Instances: []store.InstanceWrite{{Instance: recPtr(store.Instance{ID: uuid.NewString(), Machine: "M", State: "S"}), ExpectVersion: -1}}}
		if err := s.Commit(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenWhileAnotherProcessWrites: a file already migrated opens without the write lock,
// which another process writing steadily (a second runtime in the same folder) may hold for
// longer than the busy timeout.
func TestOpenWhileAnotherProcessWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "busy.db")
	first, err := sqlite.Open(ctx, path, sqlite.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Close() })
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	writer, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	if _, err := writer.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = writer.ExecContext(ctx, "ROLLBACK") }()
	second, err := sqlite.Open(ctx, path, sqlite.WithLogger(quiet()), sqlite.WithBusyTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatalf("open while another connection holds the write lock: %v", err)
	}
	_ = second.Close()
}

func TestOpenErrors(t *testing.T) {
	if _, err := sqlite.Open(context.Background(), ""); err == nil {
		t.Error("empty path: no error")
	}
	if _, err := sqlite.Open(context.Background(), "a?b.db"); err == nil {
		t.Error("path with '?': no error")
	}
	if _, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "x.db"), sqlite.WithSynchronous("OFF")); err == nil {
		t.Error("synchronous=OFF: no error")
	}
	if _, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "no", "such", "dir", "x.db")); err == nil {
		t.Error("missing directory: no error")
	}
}

func TestCommitContextAndClose(t *testing.T) {
	s := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	in := store.Instance{ID: uuid.NewString(), Machine: "M", State: "S", Status: store.StatusActive}
	c := &store.Commit{Instances: []store.InstanceWrite{{Instance: recPtr(in), ExpectVersion: -1}}}
	if err := s.Commit(ctx, c); !errors.Is(err, context.Canceled) {
		t.Errorf("commit with a cancelled context: %v", err)
	}
	if _, err := s.Instance(context.Background(), in.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a cancelled commit was applied: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(context.Background(), c); !errors.Is(err, store.ErrClosed) {
		t.Errorf("commit after Close: %v, want ErrClosed", err)
	}
}

const killEnv = "XCOMPONENT_SQLITE_KILL_CHILD"

// TestKillChild is the child process of TestKill9.
func TestKillChild(t *testing.T) {
	path := os.Getenv(killEnv)
	if path == "" {
		t.Skip("child process of TestKill9")
	}
	s, err := sqlite.Open(context.Background(), path, sqlite.WithLogger(quiet()), sqlite.WithSynchronous(os.Getenv(killEnv+"_SYNC")))
	if err != nil {
		t.Fatal(err)
	}
	storetest.KillChild(t, s)
}

// TestKill9: a process killed with SIGKILL loses no acknowledged commit.
func TestKill9(t *testing.T) {
	if os.Getenv(killEnv) != "" {
		t.Skip("in the child")
	}
	for _, sync := range []string{"FULL", "NORMAL"} {
		t.Run(sync, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kill.db")
			cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), killEnv+"="+path, killEnv+"_SYNC="+sync)
			storetest.RunKill(t, cmd, 2000, func() store.Store { return openPath(t, path) })
		})
	}
}

func BenchmarkCommit(b *testing.B) {
	storetest.BenchmarkCommit(b, func(b *testing.B) store.Store { return open(b) })
}

func BenchmarkCommitSynchronousNormal(b *testing.B) {
	storetest.BenchmarkCommit(b, func(b *testing.B) store.Store { return open(b, sqlite.WithSynchronous("NORMAL")) })
}

// recPtr returns a pointer to a copy of in: records given to Commit must not change afterwards.
func recPtr(in store.Instance) *store.Instance { return &in }
