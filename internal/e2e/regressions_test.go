package e2e

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
)

const queueComponent = `
name: Queue
entryMachine: M
entryMachineMode: multiple
stateMachines:
  - name: M
    initialState: A
    states: [{name: A, type: entry}]
    transitions:
      - {from: A, to: A, event: SLOW, triggeredMethod: block}
      - {from: A, to: A, event: FAST}
`

// TestQueuedEventWhoseCallerGaveUpIsNotApplied: when the caller's context ends while its
// event is queued behind another event of the same instance, Send returns an error (503
// through the API, 504 on the API's request timeout) and the event is never applied. Before
// bf9112c the delivery stayed queued and was applied later: the caller was told it failed,
// and it had not.
func TestQueuedEventWhoseCallerGaveUpIsNotApplied(t *testing.T) {
	comp, err := component.Parse([]byte(queueComponent), "queue.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eng := xc.New(xc.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer eng.Close(context.Background())
	entered, release := make(chan struct{}), make(chan struct{})
	eng.Handle("block", func(ctx context.Context, h *xc.Hook) error {
		close(entered)
		<-release
		return nil
	})
	ctx := context.Background()
	if err := eng.Load(ctx, comp); err != nil {
		t.Fatal(err)
	}
	in, err := eng.Create(ctx, xc.CreateRequest{Component: "Queue"})
	if err != nil {
		t.Fatal(err)
	}
	slow := make(chan error, 1)
	go func() {
		_, err := eng.Send(ctx, in.ID, xc.Event{Type: "SLOW"})
		slow <- err
	}()
	<-entered // the instance is busy: the next event is queued
	gaveUp, cancel := context.WithCancel(ctx)
	cancel()
	_, err = eng.Send(gaveUp, in.ID, xc.Event{Type: "FAST"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("FAST with a cancelled context: %v, want context.Canceled", err)
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := eng.WaitIdle(wctx); err != nil {
		t.Fatal(err)
	}
	got, err := eng.Get(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 {
		t.Errorf("version %d after SLOW (accepted) and FAST (refused to its caller with %q): FAST was applied anyway", got.Version, "context canceled")
	}
}

const timerComponent = `
name: Heap
entryMachineMode: multiple
stateMachines:
  - name: WithTimer
    initialState: A
    states: [{name: A}, {name: B}, {name: Z, type: final}]
    transitions:
      - {from: A, to: B, event: T}
      - {from: B, to: A, event: T}
      - {from: A, to: Z, event: TO, type: timeout, timeoutMs: 3600000}
      - {from: B, to: Z, event: TO, type: timeout, timeoutMs: 3600000}
  - name: NoTimer
    initialState: A
    states: [{name: A}, {name: B}]
    transitions:
      - {from: A, to: B, event: T}
      - {from: B, to: A, event: T}
`

// heapGrowth returns how much the heap grew over n transitions of one instance of machine.
func heapGrowth(t *testing.T, machine string, n int) int64 {
	t.Helper()
	comp, err := component.Parse([]byte(timerComponent), "heap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eng := xc.New(xc.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer eng.Close(context.Background())
	ctx := context.Background()
	if err := eng.Load(ctx, comp); err != nil {
		t.Fatal(err)
	}
	in, err := eng.Create(ctx, xc.CreateRequest{Component: "Heap", Machine: machine})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		if _, err := eng.Send(ctx, in.ID, xc.Event{Type: "T"}); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if p := eng.PendingTimers(); machine == "WithTimer" && p != 1 {
		t.Fatalf("pending timers %d, want 1", p)
	}
	return int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

// TestStaleTimerEntriesAreReleased guards against a memory growth found in the engine: every
// transition that re-arms a timeout used to push a new timer entry and leave the replaced one
// until its deadline (~145 bytes per transition, kept for the timeout's duration). The queue
// must hold one entry per live arming.
func TestStaleTimerEntriesAreReleased(t *testing.T) {
	const n = 100_000
	with, without := heapGrowth(t, "WithTimer", n), heapGrowth(t, "NoTimer", n)
	// The memory store keeps the history in both cases; the difference is the timer heap.
	if per := float64(with-without) / n; per > 40 {
		t.Errorf("%d transitions re-arming a 1-hour timeout kept %.0f bytes each more than without a timeout (%d vs %d bytes): dead timer entries are kept until their deadline", n, per, with, without)
	}
}
