package xcomponent_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/clock"
	"github.com/xcomponent/xcomponent/store"
)

const benchComponent = `
name: Bench
stateMachines:
  - name: Toggle
    initialState: Off
    states: [{name: Off}, {name: On}]
    transitions:
      - {from: Off, to: On, event: FLIP}
      - {from: On, to: Off, event: FLIP}
  - name: Waiter
    initialState: Waiting
    states: [{name: Waiting}, {name: Late, type: final}]
    transitions:
      - {from: Waiting, to: Late, event: LATE, type: timeout, timeoutMs: 3600000}
  - name: Account
    initialState: Open
    states: [{name: Open}]
    transitions:
      - from: Open
        to: Open
        event: CREDIT
        matchingRules: [{eventProperty: accountId, instanceProperty: accountId}]
`

func benchEngine(b *testing.B) *xc.Engine {
	b.Helper()
	eng := xc.New(xc.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Clock: clock.NewFake(t0)})
	b.Cleanup(func() { _ = eng.Close(context.Background()) })
	if err := eng.Load(context.Background(), parse(b, benchComponent)); err != nil {
		b.Fatal(err)
	}
	return eng
}

// BenchmarkTransition: one simple transition without hooks, in memory, history recorded.
func BenchmarkTransition(b *testing.B) {
	eng := benchEngine(b)
	ctx := context.Background()
	in, err := eng.Create(ctx, xc.CreateRequest{Component: "Bench", Machine: "Toggle"})
	if err != nil {
		b.Fatal(err)
	}
	ev := xc.Event{Type: "FLIP"}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if _, err := eng.Send(ctx, in.ID, ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkTransitionSubscribed: BenchmarkTransition with a subscriber draining the runtime
// events (the emit path: what serve's live stream and the distributed runtime's publisher cost).
func BenchmarkTransitionSubscribed(b *testing.B) {
	eng := benchEngine(b)
	ctx := context.Background()
	events, stop := eng.Subscribe(1 << 12)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for range events {
		}
	}()
	b.Cleanup(func() { stop(); <-drained })
	in, err := eng.Create(ctx, xc.CreateRequest{Component: "Bench", Machine: "Toggle"})
	if err != nil {
		b.Fatal(err)
	}
	ev := xc.Event{Type: "FLIP"}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if _, err := eng.Send(ctx, in.ID, ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkTransitionParallel: transitions on many instances from concurrent callers.
func BenchmarkTransitionParallel(b *testing.B) {
	eng := benchEngine(b)
	ctx := context.Background()
	ids := make(chan string, 64)
	for i := 0; i < 64; i++ {
		in, err := eng.Create(ctx, xc.CreateRequest{Component: "Bench", Machine: "Toggle"})
		if err != nil {
			b.Fatal(err)
		}
		ids <- in.ID
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := <-ids
		for pb.Next() {
			if _, err := eng.Send(ctx, id, xc.Event{Type: "FLIP"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRoutedBroadcast: a broadcast routed by an equality rule among 100,000 live instances.
func BenchmarkRoutedBroadcast(b *testing.B) {
	eng := benchEngine(b)
	ctx := context.Background()
	const n = 100_000
	for i := 0; i < n; i++ {
		if _, err := eng.Create(ctx, xc.CreateRequest{Component: "Bench", Machine: "Account",
			Data: map[string]any{"accountId": fmt.Sprintf("acc-%d", i)}}); err != nil {
			b.Fatal(err)
		}
	}
	payloads := make([]map[string]any, 1024)
	for i := range payloads {
		payloads[i] = map[string]any{"accountId": fmt.Sprintf("acc-%d", (i*7919)%n)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := eng.Broadcast(ctx, xc.BroadcastRequest{Component: "Bench", Machine: "Account",
			Event: xc.Event{Type: "CREDIT", Payload: payloads[i%len(payloads)]}})
		if err != nil || res.Processed != 1 {
			b.Fatalf("broadcast: %+v %v", res, err)
		}
	}
}

// BenchmarkIdleInstanceMemory reports the heap held per idle live instance with a 5-field
// context: "engine" is the runtime alone (live record, mailbox, state sets, routing index) as
// with a durable store, whose data lives on disk; "engine+memory-store" adds the in-memory
// store's copy of the history (the creation event).
func BenchmarkIdleInstanceMemory(b *testing.B) {
	for _, tc := range []struct {
		name  string
		store func() store.Store
	}{
		{"engine", func() store.Store { return &discardStore{} }},
		{"engine+memory-store", func() store.Store { return store.NewMemory() }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.ReportMetric(idleInstanceBytes(b, tc.store(), 20_000), "bytes/instance")
			}
		})
	}
}

// idleInstanceBytes creates n idle instances of Bench/Account (5-field context, one routed
// property) on an engine over st and returns the heap they hold, per instance.
func idleInstanceBytes(tb testing.TB, st store.Store, n int) float64 {
	tb.Helper()
	eng := xc.New(xc.Options{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Clock: clock.NewFake(t0)})
	ctx := context.Background()
	defer eng.Close(ctx)
	if err := eng.Load(ctx, parse(tb, benchComponent)); err != nil {
		tb.Fatal(err)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for j := 0; j < n; j++ {
		if _, err := eng.Create(ctx, xc.CreateRequest{Component: "Bench", Machine: "Account", Data: map[string]any{
			"accountId": fmt.Sprintf("acc-%d", j), "owner": "Jane Doe", "balance": 1250.5, "currency": "EUR", "open": true,
		}}); err != nil {
			tb.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(eng)
	return (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(n)
}

// BenchmarkWakeIdle: the first event of an idle instance (each operation a different instance,
// created beforehand and not touched since), whose record the engine keeps compact when the
// store does not keep it ("compact") or full ("full": the memory store's case). The
// difference is the cost of rebuilding a compact record (its context map) once.
func BenchmarkWakeIdle(b *testing.B) {
	for _, tc := range []struct {
		name  string
		store store.Store
	}{{"compact", &discardStore{}}, {"full", &keepingDiscardStore{}}} {
		b.Run(tc.name, func(b *testing.B) {
			eng := xc.New(xc.Options{Store: tc.store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Clock: clock.NewFake(t0)})
			defer eng.Close(context.Background())
			ctx := context.Background()
			if err := eng.Load(ctx, parse(b, benchComponent)); err != nil {
				b.Fatal(err)
			}
			ids := make([]string, b.N)
			for i := range ids {
				in, err := eng.Create(ctx, xc.CreateRequest{Component: "Bench", Machine: "Account", Data: map[string]any{
					"accountId": fmt.Sprintf("acc-%d", i), "owner": "Jane Doe", "balance": 1250.5, "currency": "EUR", "open": true,
				}})
				if err != nil {
					b.Fatal(err)
				}
				ids[i] = in.ID
			}
			ev := xc.Event{Type: "CREDIT"}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				if _, err := eng.Send(ctx, ids[i], ev); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// keepingDiscardStore is discardStore claiming to keep the records: the engine keeps them
// full, as with the memory store.
type keepingDiscardStore struct{ discardStore }

func (*keepingDiscardStore) KeepsRecords() bool { return true }

// discardStore accepts every commit and keeps nothing: it isolates the engine's own memory.
type discardStore struct{ store.Memory }

func (*discardStore) Commit(context.Context, *store.Commit) error { return nil }
func (*discardStore) KeepsRecords() bool                          { return false }
func (*discardStore) LoadLive(context.Context, string) ([]store.Instance, error) {
	return nil, nil
}
func (*discardStore) PendingOutbox(context.Context, string, int) ([]store.Message, error) {
	return nil, nil
}

// BenchmarkIdleTimers shows that 100,000 pending timers cost no CPU while idle: it measures
// the CPU time the whole process uses during an idle period with the timers armed (one hour
// away) on the real clock, against the same engine with no timer.
func BenchmarkIdleTimers(b *testing.B) {
	for _, n := range []int{0, 100_000} {
		b.Run(fmt.Sprintf("timers=%d", n), func(b *testing.B) {
			eng := xc.New(xc.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			defer eng.Close(context.Background())
			ctx := context.Background()
			if err := eng.Load(ctx, parse(b, benchComponent)); err != nil {
				b.Fatal(err)
			}
			for i := 0; i < n; i++ {
				if _, err := eng.Create(ctx, xc.CreateRequest{Component: "Bench", Machine: "Waiter"}); err != nil {
					b.Fatal(err)
				}
			}
			if got := eng.PendingTimers(); got != n {
				b.Fatalf("pending timers %d, want %d", got, n)
			}
			runtime.GC()
			runtime.GC()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := cpuTime()
				time.Sleep(200 * time.Millisecond) // the idle period being measured, not synchronisation
				b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/2, "cpu-ms/100ms-idle")
			}
		})
	}
}
