package xcomponent

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/google/uuid"

	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
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

// A timer event's id names its arming: the same arming gives the same id (whichever process
// fires it), another arming another id; the id is a valid UUIDv7 whose time is the deadline.
func TestTimerEventID(t *testing.T) {
	arm := store.Timer{Event: "WAKE", Transition: 2, DueAt: 1_735_689_600_000, ArmedAt: 1_735_689_597_500,
		CausationID: "01a2b3c4-0000-7000-8000-000000000001", CorrelationID: "01a2b3c4-0000-7000-8000-000000000002"}
	const inst = "01a2b3c4-0000-7000-8000-0000000000aa"
	a, b := timerEvent(inst, &arm), timerEvent(inst, &arm)
	if a.ID != b.ID {
		t.Fatalf("one arming, two ids: %s %s", a.ID, b.ID)
	}
	u, err := uuid.Parse(a.ID)
	if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
		t.Fatalf("id %s: %v, version %d, variant %v", a.ID, err, u.Version(), u.Variant())
	}
	if sec, nsec := u.Time().UnixTime(); sec*1000+nsec/1_000_000 != arm.DueAt {
		t.Errorf("id %s carries time %d, want the deadline %d", a.ID, sec*1000+nsec/1_000_000, arm.DueAt)
	}
	if a.CausationID != arm.CausationID || a.CorrelationID != arm.CorrelationID || a.Source != "timer" {
		t.Errorf("event %+v", a)
	}
	for _, other := range []func(*store.Timer){
		func(x *store.Timer) { x.ArmedAt++ },
		func(x *store.Timer) { x.DueAt++ },
		func(x *store.Timer) { x.Transition++ },
		func(x *store.Timer) { x.CausationID = "01a2b3c4-0000-7000-8000-000000000003" },
	} {
		x := arm
		other(&x)
		if id := timerEvent(inst, &x).ID; id == a.ID {
			t.Errorf("another arming %+v has the same id %s", x, id)
		}
	}
	if id := timerEvent("01a2b3c4-0000-7000-8000-0000000000bb", &arm).ID; id == a.ID {
		t.Errorf("the same arming of another instance has the same id %s", id)
	}
}
