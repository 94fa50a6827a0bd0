package postgres_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/postgres"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/store/storetest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openDSN opens a store on dsn, closed at the end of the test.
func openDSN(t testing.TB, dsn string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, dsn, append([]postgres.Option{postgres.WithLogger(quiet())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// open opens a store on a fresh database.
func open(t testing.TB, opts ...postgres.Option) (*postgres.Store, string) {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	return openDSN(t, dsn, opts...), dsn
}

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := open(t)
		return s
	})
}

func BenchmarkCommit(b *testing.B) {
	storetest.BenchmarkCommit(b, func(b *testing.B) store.Store {
		s, _ := open(b)
		return s
	})
}

const killEnv = "XCOMPONENT_POSTGRES_KILL_CHILD"

// TestKillChild is the child process of TestKill9.
func TestKillChild(t *testing.T) {
	dsn := os.Getenv(killEnv)
	if dsn == "" {
		t.Skip("child process of TestKill9")
	}
	storetest.KillChild(t, openDSN(t, dsn))
}

// TestKill9: a client process killed with SIGKILL loses no acknowledged commit.
func TestKill9(t *testing.T) {
	if os.Getenv(killEnv) != "" {
		t.Skip("in the child")
	}
	dsn := pgtest.NewDatabase(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), killEnv+"="+dsn)
	storetest.RunKill(t, cmd, 2000, func() store.Store { return openDSN(t, dsn) })
}

// TestTwoProcessesSameInstances: two stores (two pools, like two processes) on one database
// commit to the same instances at once.
func TestTwoProcessesSameInstances(t *testing.T) {
	a, dsn := open(t)
	storetest.RunTwoStores(t, a, openDSN(t, dsn))
}
