package bench

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/looplab/fsm"
	"github.com/qmuntal/stateless"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/clock"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

// BenchmarkTransitionVsLibrary puts the root package's BenchmarkTransition (one transition of
// an Off/On toggle, in memory, history recorded: ids, the new immutable record, the event in
// the store) beside the same toggle in two bare Go state-machine libraries, in one run so that
// the machine's load weighs on all of them alike. The libraries keep only the current state:
// no history, no ids, no per-instance mailbox.
//
//	go test ./internal/bench -run '^$' -bench TransitionVsLibrary -count 5
func BenchmarkTransitionVsLibrary(b *testing.B) {
	b.Run("lib=xcomponent", func(b *testing.B) { benchToggle(b, store.NewMemory()) })
	// The same with the memory store keeping every event (no retention): its history
	// grows by one event per transition, and the heap with it.
	b.Run("lib=xcomponent-unbounded-history", func(b *testing.B) {
		benchToggle(b, store.NewMemory(store.WithHistoryLimit(0)))
	})
	b.Run("lib=looplab-fsm", func(b *testing.B) {
		f := fsm.NewFSM("Off", fsm.Events{
			{Name: "FLIP", Src: []string{"Off"}, Dst: "On"},
			{Name: "FLIP", Src: []string{"On"}, Dst: "Off"},
		}, fsm.Callbacks{})
		ctx := context.Background()
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if err := f.Event(ctx, "FLIP"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("lib=qmuntal-stateless", func(b *testing.B) {
		m := stateless.NewStateMachine("Off")
		m.Configure("Off").Permit("FLIP", "On")
		m.Configure("On").Permit("FLIP", "Off")
		ctx := context.Background()
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if err := m.FireCtx(ctx, "FLIP"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchToggle is the root package's BenchmarkTransition on st.
func benchToggle(b *testing.B, st store.Store) {
	comp, err := component.Parse([]byte(toggle), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	eng := xc.New(xc.Options{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Clock: clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))})
	b.Cleanup(func() { _ = eng.Close(context.Background()) })
	ctx := context.Background()
	if err := eng.Load(ctx, comp); err != nil {
		b.Fatal(err)
	}
	in, err := eng.Create(ctx, xc.CreateRequest{Component: "Bench", Machine: "Toggle"})
	if err != nil {
		b.Fatal(err)
	}
	ev := xc.Event{Type: "FLIP"}
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := eng.Send(ctx, in.ID, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// reportCPU reports the process's CPU time per operation (user+system) once the benchmark
// is done: call it after the setup, defer what it returns. On a shared machine it moves less
// than ns/op, which counts the time the benchmark waited for a core.
func reportCPU(b *testing.B) func() {
	cpu0 := cpuTime()
	return func() {
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	}
}
