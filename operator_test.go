package xcomponent_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/sqlite"
	"github.com/xcomponent/xcomponent/xcomponenttest"
)

const operatorComponent = `
name: Ops
stateMachines:
  - name: Order
    initialState: Waiting
    publicMemberType: Order
    states:
      - {name: Waiting}
      - {name: Expired, type: final}
      - {name: Shipping, onEntry: ship}
      - {name: Shipped}
      - {name: Broken, type: error, onEntry: alert}
    transitions:
      - {from: Waiting, to: Expired, event: TIMEOUT, type: timeout, timeoutMs: 60000}
      - {from: Waiting, to: Shipping, event: SHIP, matchingRules: [{eventProperty: orderId, instanceProperty: orderId}]}
      - {from: Shipping, to: Shipped, event: SHIPPED}
      - {from: Waiting, to: Broken, event: BREAK}
`

func newOpsEngine(t *testing.T, s store.Store) (*xcomponenttest.Engine, *[]xc.RuntimeEvent) {
	t.Helper()
	var seen []xc.RuntimeEvent
	eng := xcomponenttest.NewManual(xc.Options{Store: s, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		xcomponenttest.Options{Listen: func(ev xc.RuntimeEvent) { seen = append(seen, ev) }})
	t.Cleanup(func() { _ = eng.Close(context.Background()) })
	if err := eng.Load(context.Background(), parse(t, operatorComponent)); err != nil {
		t.Fatal(err)
	}
	return eng, &seen
}

func lastEvent(t *testing.T, eng *xc.Engine, id string) store.Event {
	t.Helper()
	h, err := eng.Store().History(context.Background(), id)
	if err != nil || len(h) == 0 {
		t.Fatalf("history of %s: %v %v", id, h, err)
	}
	return h[len(h)-1]
}

// A terminated instance keeps its state, is marked terminated, leaves the live set and the
// routing index, and its pending timer never fires; the audit trail has actor and reason.
func TestTerminateCancelsTimersAndLeavesLiveSet(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ops.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	eng, seen := newOpsEngine(t, s)
	in, err := eng.Create(ctx, xc.CreateRequest{Component: "Ops", Machine: "Order", Data: map[string]any{"orderId": "42"},
		Event: xc.Event{Actor: "alice", Reason: "phone order"}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := eng.Create(ctx, xc.CreateRequest{Component: "Ops", Machine: "Order", Data: map[string]any{"orderId": "43"}})
	if err != nil {
		t.Fatal(err)
	}
	if ev := lastEvent(t, eng.Engine, in.ID); ev.Reason != "phone order" || ev.Actor != "alice" {
		t.Fatalf("creation audit: actor %q reason %q", ev.Actor, ev.Reason)
	}
	*seen = nil

	res, err := eng.Terminate(ctx, in.ID, xc.OperatorRequest{Actor: "bob", Reason: "customer cancelled"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Instance.Status != store.StatusTerminated || res.NewState != "Waiting" || len(res.Instance.PendingTimeouts) != 0 {
		t.Fatalf("terminate result: %+v", res)
	}
	var kinds []string
	for _, ev := range *seen {
		kinds = append(kinds, string(ev.Kind()))
		if c, ok := ev.Data.(xc.InstanceCompleted); ok && c.Status != store.StatusTerminated {
			t.Errorf("instance_completed status = %s", c.Status)
		}
	}
	if strings.Join(kinds, ",") != "state_change,instance_completed" {
		t.Errorf("runtime events = %v", kinds)
	}
	for _, l := range eng.Live("Ops", "") {
		if l.ID == in.ID {
			t.Fatal("terminated instance still live")
		}
	}
	ev := lastEvent(t, eng.Engine, in.ID)
	if ev.Type != xc.EventTerminated || ev.Actor != "bob" || ev.Reason != "customer cancelled" || ev.Source != "operator" || ev.Seq != 1 {
		t.Fatalf("terminate audit: %+v", ev)
	}

	// The timer never fires: the other instance's does.
	if err := eng.Advance(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := eng.Get(ctx, in.ID)
	if err != nil || got.CurrentState != "Waiting" || got.Status != store.StatusTerminated || got.Version != 1 {
		t.Fatalf("after the deadline: %+v %v", got, err)
	}
	if o, _ := eng.Get(ctx, other.ID); o.CurrentState != "Expired" {
		t.Fatalf("the other instance's timer did not fire: %+v", o)
	}
	if _, ok := eng.NextDeadline(); ok {
		t.Error("a timer is still pending")
	}

	// Refused afterwards, with the reason.
	if _, err := eng.Send(ctx, in.ID, xc.Event{Type: "SHIP"}); !errors.Is(err, xc.ErrNotAccepted) || !strings.Contains(err.Error(), "terminated") {
		t.Errorf("event to a terminated instance: %v", err)
	}
	if _, err := eng.Terminate(ctx, in.ID, xc.OperatorRequest{Actor: "bob"}); !errors.Is(err, xc.ErrNotAccepted) || !strings.Contains(err.Error(), "is terminated") {
		t.Errorf("second terminate: %v", err)
	}
	if _, err := eng.Terminate(ctx, other.ID, xc.OperatorRequest{Actor: "bob"}); !errors.Is(err, xc.ErrNotAccepted) || !strings.Contains(err.Error(), "is completed") {
		t.Errorf("terminate of a completed instance: %v", err)
	}
	if _, err := eng.Terminate(ctx, "0190c2a6-0000-7000-8000-000000000000", xc.OperatorRequest{}); !errors.Is(err, xc.ErrNotFound) {
		t.Errorf("terminate of an unknown instance: %v", err)
	}
	// Out of the routing index: a broadcast routed on orderId no longer finds it.
	n, err := eng.Broadcast(ctx, xc.BroadcastRequest{Component: "Ops", Machine: "Order", Event: xc.Event{Type: "SHIP", Payload: map[string]any{"orderId": "42"}}})
	if err != nil || n.Matched != 0 {
		t.Errorf("broadcast to the terminated instance's key: %+v %v", n, err)
	}

	// Durable: a new engine on the same store does not restore it.
	eng2, _ := newOpsEngine(t, s)
	if live := eng2.Live("Ops", ""); len(live) != 0 {
		t.Errorf("restored after restart: %+v", live)
	}
}

// RetryHook reruns a failed onEntry hook (active instance and instance in an error state),
// is refused when there is no failure to retry, and records a new failure as such.
func TestRetryHook(t *testing.T) {
	ctx := context.Background()
	eng, _ := newOpsEngine(t, store.NewMemory())
	fail := true
	eng.Handle("ship", func(_ context.Context, h *xc.Hook) error {
		if fail {
			return errors.New("carrier down")
		}
		if h.Event.Type != "SHIP" {
			return errors.New("retry saw event " + h.Event.Type)
		}
		h.Data["tracking"] = "TRK-1"
		h.Send.SendToSelf(xc.Event{Type: "SHIPPED"})
		return nil
	})
	alerts := 0
	eng.Handle("alert", func(context.Context, *xc.Hook) error {
		alerts++
		if alerts == 1 {
			return errors.New("pager down")
		}
		return nil
	})
	in, err := eng.Create(ctx, xc.CreateRequest{Component: "Ops", Machine: "Order", Data: map[string]any{"orderId": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.RetryHook(ctx, in.ID, xc.OperatorRequest{Actor: "bob"}); !errors.Is(err, xc.ErrNotAccepted) || !strings.Contains(err.Error(), "no onEntry hook") {
		t.Fatalf("retry without hook: %v", err)
	}
	if _, err := eng.Send(ctx, in.ID, xc.Event{Type: "SHIP", Payload: map[string]any{"orderId": "1"}, Reason: "rush"}); err != nil {
		t.Fatal(err)
	}
	if ev := lastEvent(t, eng.Engine, in.ID); !strings.Contains(ev.Note, "carrier down") || ev.Reason != "rush" {
		t.Fatalf("failure not recorded: %+v", ev)
	}
	// Fails again: recorded, reported, retryable.
	_, err = eng.RetryHook(ctx, in.ID, xc.OperatorRequest{Actor: "bob", Reason: "first try"})
	if !errors.Is(err, xc.ErrHookFailed) || !strings.Contains(err.Error(), "carrier down") {
		t.Fatalf("retry failing again: %v", err)
	}
	if ev := lastEvent(t, eng.Engine, in.ID); ev.Type != xc.EventHookRetried || ev.Reason != "first try" || !strings.Contains(ev.Note, "carrier down") {
		t.Fatalf("failed retry audit: %+v", ev)
	}
	fail = false
	res, err := eng.RetryHook(ctx, in.ID, xc.OperatorRequest{Actor: "bob", Reason: "carrier back"})
	if err != nil || res.Instance.Context["tracking"] != "TRK-1" || res.NewState != "Shipping" {
		t.Fatalf("retry: %+v %v", res, err)
	}
	if err := eng.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := eng.Get(ctx, in.ID)
	if got.CurrentState != "Shipped" {
		t.Fatalf("the retried hook's event was not applied: %+v", got)
	}
	h, _ := eng.Store().History(ctx, in.ID)
	retry := h[len(h)-2]
	if retry.Type != xc.EventHookRetried || retry.Actor != "bob" || retry.Reason != "carrier back" || retry.Note != "" || retry.Source != "operator" {
		t.Fatalf("retry audit: %+v", retry)
	}
	if _, err := eng.RetryHook(ctx, in.ID, xc.OperatorRequest{}); !errors.Is(err, xc.ErrNotAccepted) {
		t.Fatalf("retry after the instance moved on: %v", err)
	}

	// An instance in an error state whose onEntry failed.
	b, _ := eng.Create(ctx, xc.CreateRequest{Component: "Ops", Machine: "Order", Data: map[string]any{"orderId": "2"}})
	if _, err := eng.Send(ctx, b.ID, xc.Event{Type: "BREAK"}); err != nil {
		t.Fatal(err)
	}
	if res, err := eng.RetryHook(ctx, b.ID, xc.OperatorRequest{Actor: "carol", Reason: "pager back"}); err != nil || res.Instance.Status != store.StatusError || alerts != 2 {
		t.Fatalf("retry in error state: %+v %v (alerts %d)", res, err, alerts)
	}
	if ev := lastEvent(t, eng.Engine, b.ID); ev.Type != xc.EventHookRetried || ev.Actor != "carol" {
		t.Fatalf("error-state retry audit: %+v", ev)
	}
	// Terminated instances are refused.
	c, _ := eng.Create(ctx, xc.CreateRequest{Component: "Ops", Machine: "Order", Data: map[string]any{"orderId": "3"}})
	if _, err := eng.Terminate(ctx, c.ID, xc.OperatorRequest{Actor: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.RetryHook(ctx, c.ID, xc.OperatorRequest{}); !errors.Is(err, xc.ErrNotAccepted) {
		t.Fatalf("retry of a terminated instance: %v", err)
	}
}

// Terminate waits its turn behind the instance's queued events and is idempotent by request id
// (the background engine, not manual mode).
func TestTerminateIdempotent(t *testing.T) {
	ctx := context.Background()
	eng := xcomponenttest.New(xc.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() { _ = eng.Close(context.Background()) })
	if err := eng.Load(ctx, parse(t, operatorComponent)); err != nil {
		t.Fatal(err)
	}
	in, _ := eng.Create(ctx, xc.CreateRequest{Component: "Ops", Machine: "Order"})
	req := xc.OperatorRequest{Actor: "bob", ID: "0190c2a6-0000-7000-8000-0000000000aa"}
	if _, err := eng.Terminate(ctx, in.ID, req); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Terminate(ctx, in.ID, req); !errors.Is(err, xc.ErrNotAccepted) {
		t.Fatalf("replayed terminate: %v", err)
	}
	if h, _ := eng.Store().History(ctx, in.ID); len(h) != 2 {
		t.Fatalf("history: %+v", h)
	}
}
