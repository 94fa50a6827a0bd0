package postgres_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

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

// TestEstimateLive: no estimate before the table's first ANALYZE, the planner's afterwards.
func TestEstimateLive(t *testing.T) {
	ctx := context.Background()
	s, dsn := open(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// No ANALYZE by autovacuum in between: this test runs it.
	if _, err := conn.Exec(ctx, "ALTER TABLE fsm_snapshots SET (autovacuum_enabled = false)"); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	c := &store.Commit{}
	for i := range n {
		c.Instances = append(c.Instances, store.InstanceWrite{ExpectVersion: -1, Instance: &store.Instance{
			ID: uuid.NewString(), Component: "Est", Machine: "M", State: "S", Status: store.StatusActive,
			Data: map[string]any{"i": float64(i)}, CreatedAt: int64(i), UpdatedAt: int64(i)}})
	}
	if err := s.Commit(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got, err := s.EstimateLive(ctx, "Est"); err != nil || got != 0 {
		t.Fatalf("estimate before ANALYZE: %d, %v; want 0", got, err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE fsm_snapshots"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.EstimateLive(ctx, "Est"); err != nil || got < n*9/10 || got > n*11/10 {
		t.Fatalf("estimate after ANALYZE: %d, %v; want about %d", got, err, n)
	}
	if got, err := s.EstimateLive(ctx, "Other"); err != nil || got > 10 {
		t.Fatalf("estimate of a component without instances: %d, %v", got, err)
	}
}
