package xcomponent_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/store"
)

const sharedShop = `
name: Shop
entryMachine: Order
stateMachines:
  - name: Order
    initialState: Draft
    states:
      - {name: Draft, type: entry}
      - {name: Submitted}
      - {name: Paid, type: final}
    transitions:
      - {from: Draft, to: Submitted, event: SUBMIT}
      - from: Submitted
        to: Paid
        event: PAID
        matchingRules:
          - {eventProperty: orderId, instanceProperty: orderId}
      - from: Submitted
        to: Submitted
        event: NOTE
        matchingRules:
          - {eventProperty: orderId, instanceProperty: orderId}
`

const sharedFamily = `
name: Family
entryMachine: Parent
stateMachines:
  - name: Parent
    initialState: Waiting
    states:
      - {name: Waiting, type: entry}
      - {name: Spawned}
      - {name: ChildDone}
      - {name: Closed, type: final}
    transitions:
      - {from: Waiting, to: Spawned, event: SPAWN, type: inter_machine, targetMachine: Child}
      - {from: Spawned, to: ChildDone, event: CHILD_DONE}
      - {from: ChildDone, to: Closed, event: CLOSE}
  - name: Child
    initialState: Working
    states:
      - {name: Working, type: entry}
      - {name: Done, type: final}
    transitions:
      - from: Working
        to: Done
        event: FINISH
        notifyParent: {event: CHILD_DONE}
`

// sharedEngines returns engines that share one store, as runtimes of one component sharing a
// database do; shared says whether they are configured for it.
func sharedEngines(t *testing.T, st store.Store, shared bool, n int, srcs ...string) []*xc.Engine {
	t.Helper()
	var out []*xc.Engine
	for i := 0; i < n; i++ {
		eng := xc.New(xc.Options{Store: st, SharedStore: shared, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		t.Cleanup(func() { _ = eng.Close(context.Background()) })
		for _, src := range srcs {
			if err := eng.Load(context.Background(), parse(t, src)); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, eng)
	}
	return out
}

func idle(t *testing.T, engs ...*xc.Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, e := range engs {
		if err := e.WaitIdle(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func stored(t *testing.T, st store.Store, id string) store.Instance {
	t.Helper()
	rec, err := st.Instance(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func mustCreate(t *testing.T, e *xc.Engine, comp string, data map[string]any) xc.Instance {
	t.Helper()
	in, err := e.Create(context.Background(), xc.CreateRequest{Component: comp, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func mustSend(t *testing.T, e *xc.Engine, id, event string, payload map[string]any) {
	t.Helper()
	if _, err := e.Send(context.Background(), id, xc.Event{Type: event, Payload: payload}); err != nil {
		t.Fatalf("send %s to %s: %v", event, id, err)
	}
}

// TestSharedStoreBroadcast: with engines sharing a store, a broadcast routed by data reaches
// the instances another engine created and changed; without SharedStore it does not (the
// in-memory index of the broadcasting engine does not know them).
func TestSharedStoreBroadcast(t *testing.T) {
	for _, shared := range []bool{true, false} {
		st := store.NewMemory()
		engs := sharedEngines(t, st, shared, 2, sharedShop)
		a, b := engs[0], engs[1]
		o := mustCreate(t, a, "Shop", map[string]any{"orderId": "o1"})
		mustSend(t, a, o.ID, "SUBMIT", nil)
		other := mustCreate(t, a, "Shop", map[string]any{"orderId": "o2"})
		mustSend(t, a, other.ID, "SUBMIT", nil)
		res, err := b.Broadcast(context.Background(), xc.BroadcastRequest{Component: "Shop", Machine: "Order",
			Event: xc.Event{Type: "PAID", Payload: map[string]any{"orderId": "o1"}}})
		if err != nil {
			t.Fatal(err)
		}
		idle(t, a, b)
		if !shared {
			if res.Matched != 0 {
				t.Fatalf("not shared: the broadcast matched %d instances it cannot know", res.Matched)
			}
			continue
		}
		if res.Matched != 1 || res.Processed != 1 {
			t.Fatalf("broadcast: %+v, want 1 matched and processed", res)
		}
		if got := stored(t, st, o.ID); got.State != "Paid" || got.Version != 2 {
			t.Fatalf("order o1: %s v%d, want Paid v2", got.State, got.Version)
		}
		if got := stored(t, st, other.ID); got.State != "Submitted" {
			t.Fatalf("order o2: %s, want Submitted (not matched)", got.State)
		}
	}
}

// TestSharedStoreStaleCopy: an event refused on this engine's copy of an instance that another
// engine changed since is applied on the stored instance.
func TestSharedStoreStaleCopy(t *testing.T) {
	st := store.NewMemory()
	engs := sharedEngines(t, st, true, 2, sharedShop)
	a, b := engs[0], engs[1]
	o := mustCreate(t, a, "Shop", map[string]any{"orderId": "o1"})
	mustSend(t, b, o.ID, "SUBMIT", nil) // b loads it; a's copy stays in Draft
	mustSend(t, a, o.ID, "PAID", map[string]any{"orderId": "o1"})
	if got := stored(t, st, o.ID); got.State != "Paid" || got.Version != 2 {
		t.Fatalf("order: %s v%d, want Paid v2", got.State, got.Version)
	}
	// A refusal on an up-to-date copy stays a refusal.
	o2 := mustCreate(t, a, "Shop", map[string]any{"orderId": "o2"})
	if _, err := a.Send(context.Background(), o2.ID, xc.Event{Type: "PAID", Payload: map[string]any{"orderId": "o2"}}); !errors.Is(err, xc.ErrNotAccepted) {
		t.Fatalf("PAID in Draft: %v, want not accepted", err)
	}
}

// TestSharedStoreParentNotification: a child changed by one engine notifies its parent, held
// by another engine, and the parent's holder goes on from the parent's new state.
func TestSharedStoreParentNotification(t *testing.T) {
	st := store.NewMemory()
	engs := sharedEngines(t, st, true, 2, sharedFamily)
	a, b := engs[0], engs[1]
	p := mustCreate(t, a, "Family", nil)
	mustSend(t, a, p.ID, "SPAWN", nil)
	idle(t, a)
	kids, _, err := st.Search(context.Background(), store.Query{ParentID: p.ID})
	if err != nil || len(kids) != 1 {
		t.Fatalf("children: %v %v", kids, err)
	}
	mustSend(t, b, kids[0].ID, "FINISH", nil)
	idle(t, a, b)
	if got := stored(t, st, p.ID); got.State != "ChildDone" {
		t.Fatalf("parent: %s, want ChildDone (notified through the other engine)", got.State)
	}
	mustSend(t, a, p.ID, "CLOSE", nil) // a's copy is stale (Spawned)
	if got := stored(t, st, p.ID); got.State != "Closed" || got.Version != 3 {
		t.Fatalf("parent: %s v%d, want Closed v3", got.State, got.Version)
	}
}

// TestRouteOncePerTarget: a routed message from another process reaches each matching
// instance once, however often it is delivered; another message reaches them again.
func TestRouteOncePerTarget(t *testing.T) {
	st := store.NewMemory()
	engs := sharedEngines(t, st, true, 2, sharedShop)
	a, b := engs[0], engs[1]
	var ids []string
	for _, e := range []*xc.Engine{a, b, a} {
		o := mustCreate(t, e, "Shop", map[string]any{"orderId": "x"})
		mustSend(t, e, o.ID, "SUBMIT", nil)
		ids = append(ids, o.ID)
	}
	mustCreate(t, a, "Shop", map[string]any{"orderId": "y"})
	msg := xc.Message{ID: uuid.NewString(), Kind: xc.MessageBroadcast, Component: "Shop", Machine: "Order",
		Event: xc.Event{Type: "NOTE", Payload: map[string]any{"orderId": "x"}}, Origin: "cross_component",
		Rules: []xc.Rule{{InstanceProperty: "orderId", Operator: "===", Value: "x"}}}
	for i, want := range []int{3, 0, 0} {
		res, err := []*xc.Engine{a, b, a}[i].Route(context.Background(), msg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Matched != 3 || res.Processed != want {
			t.Fatalf("delivery %d: %+v, want 3 matched, %d processed", i+1, res, want)
		}
	}
	for _, id := range ids {
		if got := stored(t, st, id); got.Version != 2 {
			t.Fatalf("instance %s at version %d, want 2 (NOTE applied once)", id, got.Version)
		}
	}
	msg.ID = uuid.NewString()
	if res, err := b.Route(context.Background(), msg); err != nil || res.Processed != 3 {
		t.Fatalf("another message: %+v %v, want 3 processed", res, err)
	}
	msg.Rules[0].Operator = "~"
	if _, err := b.Route(context.Background(), msg); !errors.Is(err, xc.ErrInvalidMessage) {
		t.Fatalf("unknown operator: %v, want ErrInvalidMessage", err)
	}
	msg.Component = "Nowhere"
	if _, err := b.Route(context.Background(), msg); !errors.Is(err, xc.ErrNotFound) {
		t.Fatalf("unknown component: %v, want ErrNotFound", err)
	}
}
