package xcomponent

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/xcomponent/xcomponent/component"
)

// Every transition of this instance re-arms a timeout: the timer queue must hold exactly the
// pending arming, never one dead entry per transition (a memory growth found in an earlier
// version, ~145 bytes per transition kept for the timeout's duration).
func TestTimerQueueHoldsOnlyPendingArmings(t *testing.T) {
	comp, err := component.Parse([]byte(`
name: Heap
stateMachines:
  - name: M
    initialState: A
    states: [{name: A}, {name: B}, {name: Z, type: final}]
    transitions:
      - {from: A, to: B, event: T}
      - {from: B, to: A, event: T}
      - {from: A, to: Z, event: TO, type: timeout, timeoutMs: 3600000}
      - {from: B, to: Z, event: TO, type: timeout, timeoutMs: 3600000}
`), "heap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eng := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer eng.Close(context.Background())
	ctx := context.Background()
	if err := eng.Load(ctx, comp); err != nil {
		t.Fatal(err)
	}
	in, err := eng.Create(ctx, CreateRequest{Component: "Heap", Machine: "M"})
	if err != nil {
		t.Fatal(err)
	}
	for range 10_000 {
		if _, err := eng.Send(ctx, in.ID, Event{Type: "T"}); err != nil {
			t.Fatal(err)
		}
	}
	eng.timers.mu.Lock()
	heapLen, byInst := len(eng.timers.h), len(eng.timers.byInst)
	eng.timers.mu.Unlock()
	if heapLen != 1 || byInst != 1 {
		t.Fatalf("timer queue holds %d entries for %d instances after 10,000 re-armings, want 1 and 1", heapLen, byInst)
	}
	got, _ := eng.Get(ctx, in.ID)
	if len(got.PendingTimeouts) != 1 {
		t.Fatalf("pending timeouts %+v", got.PendingTimeouts)
	}
}
