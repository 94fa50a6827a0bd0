package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/postgres"
	"github.com/xcomponent/xcomponent/store/sqlite"
)

// heavy enables the measurements that take minutes (XCOMPONENT_E2E_HEAVY=1).
var heavy = os.Getenv("XCOMPONENT_E2E_HEAVY") == "1"

// TestRestoreManyInstances measures how long a restarted `serve` takes to serve a store full
// of live instances: from the start of the process until /readyz answers and a GET of a
// random instance works. The figure is logged, not asserted. By default it runs with 5,000
// instances (a check that restore brings every one back); XCOMPONENT_E2E_HEAVY=1 runs the
// measurement with 100,000.
func TestRestoreManyInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: -short")
	}
	n := 5_000
	if heavy {
		n = 100_000
	}
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			if !heavy {
				t.Parallel()
			}
			b := newBackend(t, name)
			start := time.Now()
			ids := fill(t, b, n)
			t.Logf("%s: %d live instances written through the engine in %v", name, n, time.Since(start).Round(time.Millisecond))

			srv := startServe(t, "restore", b.spec)
			c := newClient(srv.URL)
			defer c.close()
			id := ids[rand.IntN(len(ids))]
			in := c.get(t, id)
			served := time.Since(srv.Started)
			if in.CurrentState != "Even" || in.Context["i"] == nil || len(in.PendingTimeouts) != 1 {
				t.Errorf("restored instance %s: %+v", id, in)
			}
			restored := int64(-1)
			for _, l := range srv.Logged("restored instances") {
				if v, ok := l.Attrs["count"].(float64); ok {
					restored = int64(v)
				}
			}
			if restored != int64(n) {
				t.Errorf("restored %d instances, want %d", restored, n)
			}
			// The restored instances are live: an event to another random one is processed.
			id = ids[rand.IntN(len(ids))]
			ans, st, raw, err := c.send(id, "TICK", nil)
			if err != nil || st != http.StatusOK || ans.Instance.Version != 1 {
				t.Errorf("event to restored instance %s: %d %v %s", id, st, err, raw)
			}
			t.Logf("RESTORE %s: %d live instances: /readyz after %v, first GET answered %v after the process started (race detector: %v)",
				name, n, srv.Ready.Round(time.Millisecond), served.Round(time.Millisecond), raceEnabled)
			c.close()
			srv.Stop()
		})
	}
}

// fill creates n live Counter instances in the backend's store through the engine, in
// parallel, and returns their ids.
func fill(t testing.TB, b backend, n int) []string {
	t.Helper()
	ctx := context.Background()
	var st store.Store
	var err error
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	switch b.name {
	case "sqlite":
		st, err = sqlite.Open(ctx, b.spec[len("sqlite:"):], sqlite.WithLogger(quiet))
	case "postgres":
		st, err = postgres.Open(ctx, b.spec, postgres.WithLogger(quiet))
	}
	if err != nil {
		t.Fatalf("open %s: %v", b.name, err)
	}
	defer st.Close()
	comp, err := component.LoadFile(componentFile)
	if err != nil {
		t.Fatal(err)
	}
	eng := xc.New(xc.Options{Store: st, Logger: quiet})
	defer eng.Close(ctx)
	if err := eng.Load(ctx, comp); err != nil {
		t.Fatal(err)
	}
	const workers = 128
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				in, err := eng.Create(ctx, xc.CreateRequest{Component: "Durable", Machine: "Counter", Data: map[string]any{
					"i": i, "owner": fmt.Sprintf("customer-%d", i%977), "amount": float64(i%10_000) / 4, "currency": "EUR",
				}})
				if err != nil {
					errs <- err
					return
				}
				ids[i] = in.ID
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("create: %v", err)
	}
	return ids
}
