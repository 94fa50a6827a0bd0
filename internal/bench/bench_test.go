package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/postgres"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/store/sqlite"
)

const toggle = `
name: Bench
entryMachine: Toggle
entryMachineMode: multiple
stateMachines:
  - name: Toggle
    initialState: Off
    states: [{name: Off, type: entry}, {name: On}]
    transitions:
      - {from: Off, to: On, event: FLIP}
      - {from: On, to: Off, event: FLIP}
`

// openStore opens a fresh durable store with its default options: a SQLite file (WAL,
// synchronous=FULL) or a new PostgreSQL database (synchronous_commit as the server has it).
func openStore(b *testing.B, name string) store.Store {
	b.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var (
		st  store.Store
		err error
	)
	switch name {
	case "sqlite":
		st, err = sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), sqlite.WithLogger(quiet))
	case "postgres":
		st, err = postgres.Open(ctx, pgtest.NewDatabase(b), postgres.WithLogger(quiet))
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	return st
}

// BenchmarkDurableTransition: durable transitions per second through the engine (Send: select,
// commit to the store, answer), with 1, 16 and 256 instances driven concurrently, each by its
// own goroutine sending its next event as soon as the previous one is answered. Every
// transition is one store commit (an fsm_events row and the fsm_snapshots update), durable
// when Send returns; concurrent commits share transactions (group commit).
//
//	go test ./internal/bench -run '^$' -bench DurableTransition -benchtime 5s
func BenchmarkDurableTransition(b *testing.B) {
	comp, err := component.Parse([]byte(toggle), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run("store="+name, func(b *testing.B) {
			st := openStore(b, name)
			eng := xc.New(xc.Options{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			b.Cleanup(func() { _ = eng.Close(context.Background()) })
			if err := eng.Load(context.Background(), comp); err != nil {
				b.Fatal(err)
			}
			for _, n := range []int{1, 16, 256} {
				b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
					benchTransitions(b, eng, n)
				})
			}
		})
	}
}

// benchTransitions runs b.N transitions spread over n goroutines, each on its own instance.
func benchTransitions(b *testing.B, eng *xc.Engine, n int) {
	ctx := context.Background()
	ids := make([]string, n)
	for i := range ids {
		in, err := eng.Create(ctx, xc.CreateRequest{Component: "Bench", Data: map[string]any{"i": i, "owner": "bench"}})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = in.ID
	}
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		first atomic.Value
		lats  = make([][]time.Duration, n)
	)
	ev := xc.Event{Type: "FLIP"}
	b.ResetTimer()
	cpu0 := cpuTime()
	for g := range n {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if _, err := eng.Send(ctx, ids[g], ev); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
				lats[g] = append(lats[g], time.Since(t0))
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	cpu := cpuTime() - cpu0
	if err, _ := first.Load().(error); err != nil {
		b.Fatal(err)
	}
	// The process's CPU (engine, store, SQLite itself; not PostgreSQL's server) per transition:
	// the figure that stays comparable when the machine is shared.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	all := slices.Concat(lats...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transitions/s")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(all[min(len(all)-1, len(all)*99/100)].Microseconds())/1000, "p99-ms")
	}
}
