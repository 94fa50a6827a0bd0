package xcomponent_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/clock"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/xcomponenttest"
)

// harness is a manual (deterministic) engine on a fake clock.
type harness struct {
	t      *testing.T
	eng    *xcomponenttest.Engine
	clock  *clock.Fake
	events <-chan xc.RuntimeEvent
	seen   []xc.RuntimeEvent
	store  store.Store
}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func parse(t testing.TB, src string) *component.Component {
	t.Helper()
	c, err := component.Parse([]byte(strings.ReplaceAll(src, "\t", "  ")), "test.yaml")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return c
}

func newHarness(t *testing.T, manual bool, srcs ...string) *harness {
	t.Helper()
	mem := store.NewMemory()
	h := &harness{t: t, clock: clock.NewFake(t0), store: mem}
	opts := xc.Options{Clock: h.clock, Store: compacting{mem}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if manual {
		h.eng = xcomponenttest.NewManual(opts)
	} else {
		h.eng = xcomponenttest.New(opts)
	}
	h.events, _ = h.eng.Subscribe(1 << 16)
	t.Cleanup(func() { _ = h.eng.Close(context.Background()) })
	ctx := context.Background()
	for _, src := range srcs {
		if err := h.eng.Load(ctx, parse(t, src)); err != nil {
			t.Fatalf("load: %v", err)
		}
	}
	h.settle()
	return h
}

// compacting is the memory store presented as a store that does not keep the records it is
// given: the engine then keeps its idle instances compact, as with SQLite or PostgreSQL, and
// the harness's tests exercise that path while reading the memory store.
type compacting struct{ *store.Memory }

func (compacting) KeepsRecords() bool { return false }

func (h *harness) settle() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.eng.WaitIdle(ctx); err != nil {
		h.t.Fatalf("settle: %v", err)
	}
	for {
		select {
		case ev := <-h.events:
			h.seen = append(h.seen, ev)
		default:
			return
		}
	}
}

func (h *harness) create(comp, machine string, data map[string]any) xc.Instance {
	h.t.Helper()
	in, err := h.eng.Create(context.Background(), xc.CreateRequest{Component: comp, Machine: machine, Data: data})
	if err != nil {
		h.t.Fatalf("create %s: %v", machine, err)
	}
	h.settle()
	return in
}

func (h *harness) send(id, typ string, payload map[string]any) (xc.Result, error) {
	h.t.Helper()
	res, err := h.eng.Send(context.Background(), id, xc.Event{Type: typ, Payload: payload})
	h.settle()
	return res, err
}

func (h *harness) mustSend(id, typ string, payload map[string]any) xc.Result {
	h.t.Helper()
	res, err := h.send(id, typ, payload)
	if err != nil {
		h.t.Fatalf("send %s: %v", typ, err)
	}
	return res
}

func (h *harness) get(id string) xc.Instance {
	h.t.Helper()
	in, err := h.eng.Get(context.Background(), id)
	if err != nil {
		h.t.Fatalf("get %s: %v", id, err)
	}
	return in
}

func (h *harness) state(id string) string { return h.get(id).CurrentState }

func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	if err := h.eng.Advance(context.Background(), d); err != nil {
		h.t.Fatalf("advance: %v", err)
	}
	h.settle()
}

func (h *harness) count(kind xc.RuntimeEventKind) int {
	n := 0
	for _, ev := range h.seen {
		if ev.Kind() == kind {
			n++
		}
	}
	return n
}

func (h *harness) live(comp, machine string) []xc.Instance { return h.eng.Live(comp, machine) }

const approval = `
name: Approval
version: 1.0.0
entryMachine: Request
entryMachineMode: multiple
stateMachines:
  - name: Request
    initialState: Draft
    states:
      - {name: Draft, type: entry}
      - {name: Submitted}
      - {name: ManagerReview}
      - {name: DirectorReview}
      - {name: Approved, type: final}
      - {name: Rejected, type: error}
      - {name: Expired, type: final}
    transitions:
      - {from: Draft, to: Submitted, event: SUBMIT}
      - from: Submitted
        to: DirectorReview
        event: ROUTE
        guard: {expression: "context.amount > 5000"}
      - from: Submitted
        to: ManagerReview
        event: ROUTE
        guard: "context.amount <= 5000"
      - {from: ManagerReview, to: Approved, event: APPROVE}
      - {from: DirectorReview, to: Approved, event: APPROVE}
      - {from: ManagerReview, to: Rejected, event: REJECT}
      - {from: DirectorReview, to: Rejected, event: REJECT}
      - {from: ManagerReview, to: Expired, event: EXPIRE, type: timeout, timeoutMs: 604800000}
      - {from: DirectorReview, to: Expired, event: EXPIRE, type: timeout, timeoutMs: 604800000}
`

func TestGuardsRouteByAmount(t *testing.T) {
	for _, manual := range []bool{true, false} {
		t.Run(fmt.Sprint("manual=", manual), func(t *testing.T) {
			h := newHarness(t, manual, approval)
			small := h.create("Approval", "Request", map[string]any{"amount": 100})
			big := h.create("Approval", "Request", map[string]any{"amount": 9000.5})
			for _, in := range []xc.Instance{small, big} {
				h.mustSend(in.ID, "SUBMIT", nil)
				h.mustSend(in.ID, "ROUTE", nil)
			}
			if got := h.state(small.ID); got != "ManagerReview" {
				t.Errorf("small: %s, want ManagerReview", got)
			}
			if got := h.state(big.ID); got != "DirectorReview" {
				t.Errorf("big: %s, want DirectorReview", got)
			}
			in := h.get(big.ID)
			if len(in.PendingTimeouts) != 1 || in.PendingTimeouts[0].Event != "EXPIRE" || in.PendingTimeouts[0].TotalMs != 604800000 {
				t.Fatalf("pendingTimeouts = %+v", in.PendingTimeouts)
			}
			if in.Version != 2 {
				t.Errorf("version = %d, want 2", in.Version)
			}
		})
	}
}

func TestMissingFieldGuardIsFalse(t *testing.T) {
	h := newHarness(t, true, approval)
	in := h.create("Approval", "Request", nil)
	h.mustSend(in.ID, "SUBMIT", nil)
	// amount missing: "> 5000" is false, "<= 5000" is false too.
	_, err := h.send(in.ID, "ROUTE", nil)
	if !errors.Is(err, xc.ErrNotAccepted) {
		t.Fatalf("err = %v, want ErrNotAccepted", err)
	}
	if got := h.state(in.ID); got != "Submitted" {
		t.Fatalf("state %s, want Submitted", got)
	}
}

func TestRefusedEventLeavesInstanceUnchanged(t *testing.T) {
	h := newHarness(t, true, approval)
	in := h.create("Approval", "Request", map[string]any{"amount": 1})
	_, err := h.send(in.ID, "APPROVE", map[string]any{"x": 1})
	if !errors.Is(err, xc.ErrNotAccepted) {
		t.Fatalf("err = %v", err)
	}
	got := h.get(in.ID)
	if got.CurrentState != "Draft" || got.Version != 0 || got.Context["x"] != nil {
		t.Fatalf("instance changed: %+v", got)
	}
	if h.count(xc.EvEventIgnored) != 1 {
		t.Fatalf("event_ignored events: %d", h.count(xc.EvEventIgnored))
	}
	if _, err := h.send("00000000-0000-0000-0000-000000000000", "SUBMIT", nil); !errors.Is(err, xc.ErrNotFound) {
		t.Fatalf("unknown instance: %v", err)
	}
}

func TestTimeoutFiresAndCompletes(t *testing.T) {
	h := newHarness(t, true, approval)
	in := h.create("Approval", "Request", map[string]any{"amount": 1})
	h.mustSend(in.ID, "SUBMIT", nil)
	h.mustSend(in.ID, "ROUTE", nil)
	h.advance(7*24*time.Hour - time.Millisecond)
	if got := h.state(in.ID); got != "ManagerReview" {
		t.Fatalf("fired early: %s", got)
	}
	h.advance(time.Millisecond)
	got := h.get(in.ID)
	if got.CurrentState != "Expired" || got.Status != store.StatusCompleted {
		t.Fatalf("after timeout: %s %s", got.CurrentState, got.Status)
	}
	if len(got.PendingTimeouts) != 0 {
		t.Fatalf("timers left: %+v", got.PendingTimeouts)
	}
	if _, err := h.send(in.ID, "APPROVE", nil); !errors.Is(err, xc.ErrNotAccepted) || !strings.Contains(err.Error(), "completed") {
		t.Fatalf("event to completed instance: %v", err)
	}
	if h.count(xc.EvTimeoutFired) != 1 || h.count(xc.EvInstanceCompleted) != 1 {
		t.Fatalf("events: %d timeout_fired, %d completed", h.count(xc.EvTimeoutFired), h.count(xc.EvInstanceCompleted))
	}
	if n := len(h.live("Approval", "Request")); n != 0 {
		t.Fatalf("completed instance still live (%d)", n)
	}
}

func TestTimeoutCancelledWhenStateLeft(t *testing.T) {
	h := newHarness(t, true, approval)
	in := h.create("Approval", "Request", map[string]any{"amount": 1})
	h.mustSend(in.ID, "SUBMIT", nil)
	h.mustSend(in.ID, "ROUTE", nil)
	h.mustSend(in.ID, "APPROVE", nil)
	h.advance(8 * 24 * time.Hour)
	if got := h.state(in.ID); got != "Approved" {
		t.Fatalf("state %s", got)
	}
	if h.count(xc.EvTimeoutFired) != 0 {
		t.Fatal("cancelled timer fired")
	}
}

const selfLoops = `
name: Loops
stateMachines:
  - name: Session
    initialState: Active
    states:
      - {name: Active}
      - {name: Idle, type: final}
      - {name: Capped, type: final}
    transitions:
      - {from: Active, to: Active, event: PING}
      - {from: Active, to: Idle, event: IDLE, type: timeout, timeoutMs: 100}
      - {from: Active, to: Capped, event: CAP, type: timeout, timeoutMs: 250, resetOnTransition: false}
`

func TestTimeoutResetOnSelfLoop(t *testing.T) {
	h := newHarness(t, true, selfLoops)
	in := h.create("Loops", "Session", nil)
	for i := 0; i < 3; i++ {
		h.advance(80 * time.Millisecond)
		h.mustSend(in.ID, "PING", nil)
	}
	// 240ms elapsed: IDLE was reset each time, CAP keeps its deadline at 250ms.
	if got := h.state(in.ID); got != "Active" {
		t.Fatalf("state %s at 240ms", got)
	}
	h.advance(10 * time.Millisecond)
	if got := h.state(in.ID); got != "Capped" {
		t.Fatalf("state %s at 250ms, want Capped", got)
	}
}

func TestTimeoutWithoutResetNotRestarted(t *testing.T) {
	h := newHarness(t, true, selfLoops)
	in := h.create("Loops", "Session", nil)
	h.advance(50 * time.Millisecond)
	h.mustSend(in.ID, "PING", nil)
	h.advance(99 * time.Millisecond)
	if got := h.state(in.ID); got != "Active" {
		t.Fatalf("IDLE not reset: %s", got)
	}
	h.advance(time.Millisecond)
	if got := h.state(in.ID); got != "Idle" {
		t.Fatalf("state %s, want Idle", got)
	}
}

const autos = `
name: Autos
stateMachines:
  - name: Job
    initialState: Queued
    states:
      - {name: Queued}
      - {name: Running}
      - {name: Done, type: final}
    transitions:
      - {from: Queued, to: Running, event: START, type: auto}
      - {from: Running, to: Running, event: TICK, type: auto, timeoutMs: 10}
      - {from: Running, to: Done, event: STOP}
`

func TestAutoTransitions(t *testing.T) {
	h := newHarness(t, true, autos)
	in := h.create("Autos", "Job", nil)
	if got := h.state(in.ID); got != "Running" {
		t.Fatalf("auto with no delay: %s", got)
	}
	h.advance(35 * time.Millisecond)
	got := h.get(in.ID)
	if got.Version != 4 { // START + 3 ticks
		t.Fatalf("version %d, want 4 (periodic tick)", got.Version)
	}
	h.mustSend(in.ID, "STOP", nil)
	h.advance(time.Second)
	if got := h.get(in.ID); got.Version != 5 || got.Status != store.StatusCompleted {
		t.Fatalf("after stop: %+v", got)
	}
}

const routing = `
name: Trading
entryMachine: Order
entryMachineMode: multiple
stateMachines:
  - name: Order
    initialState: New
    states:
      - {name: New}
      - {name: Filled}
      - {name: Big}
    transitions:
      - from: New
        to: Filled
        event: EXECUTION
        matchingRules:
          - {eventProperty: orderId, instanceProperty: id}
      - from: New
        to: Big
        event: SIZE
        matchingRules:
          - {eventProperty: min, instanceProperty: qty, operator: ">"}
      - {from: New, to: New, event: TOUCH}
      - {from: Filled, to: Filled, event: TOUCH}
`

func TestBroadcastRoutedByEquality(t *testing.T) {
	for _, manual := range []bool{true, false} {
		t.Run(fmt.Sprint("manual=", manual), func(t *testing.T) {
			h := newHarness(t, manual, routing)
			a := h.create("Trading", "Order", map[string]any{"id": 1, "qty": 10})
			b := h.create("Trading", "Order", map[string]any{"id": "1", "qty": 50})
			c := h.create("Trading", "Order", map[string]any{"id": 2.0, "qty": 100})
			ctx := context.Background()
			res, err := h.eng.Broadcast(ctx, xc.BroadcastRequest{Component: "Trading", Machine: "Order",
				Event: xc.Event{Type: "EXECUTION", Payload: map[string]any{"orderId": 1.0}}})
			h.settle()
			if err != nil || res.Matched != 1 || res.Processed != 1 {
				t.Fatalf("broadcast = %+v, %v", res, err)
			}
			if h.state(a.ID) != "Filled" || h.state(b.ID) != "New" {
				t.Fatalf("typed equality: a=%s b=%s", h.state(a.ID), h.state(b.ID))
			}
			// Rules present: payload not merged.
			if _, ok := h.get(a.ID).Context["orderId"]; ok {
				t.Fatal("payload merged despite matching rules")
			}
			// The index follows data changes: c's id changes through a merge.
			h.mustSend(c.ID, "TOUCH", map[string]any{"id": 7})
			res, _ = h.eng.Broadcast(ctx, xc.BroadcastRequest{Component: "Trading", Machine: "Order",
				Event: xc.Event{Type: "EXECUTION", Payload: map[string]any{"orderId": 2}}})
			if res.Matched != 0 {
				t.Fatalf("stale index: matched %d", res.Matched)
			}
			res, _ = h.eng.Broadcast(ctx, xc.BroadcastRequest{Component: "Trading", Machine: "Order",
				Event: xc.Event{Type: "EXECUTION", Payload: map[string]any{"orderId": 7}}})
			h.settle()
			if res.Processed != 1 || h.state(c.ID) != "Filled" {
				t.Fatalf("after index update: %+v, %s", res, h.state(c.ID))
			}
			// Ordering operator: instance qty > event min.
			res, _ = h.eng.Broadcast(ctx, xc.BroadcastRequest{Component: "Trading", Machine: "Order",
				Event: xc.Event{Type: "SIZE", Payload: map[string]any{"min": 20}}})
			h.settle()
			if res.Processed != 1 || h.state(b.ID) != "Big" {
				t.Fatalf("> rule: %+v b=%s", res, h.state(b.ID))
			}
			// No rules: everyone in the state.
			res, _ = h.eng.Broadcast(ctx, xc.BroadcastRequest{Component: "Trading", Machine: "Order",
				Event: xc.Event{Type: "TOUCH"}, State: "Filled"})
			if res.Matched != 2 || res.Processed != 2 {
				t.Fatalf("state filter: %+v", res)
			}
		})
	}
}

func TestDirectSendSelection(t *testing.T) {
	src := `
name: Sel
stateMachines:
  - name: M
    initialState: A
    states: [{name: A}, {name: B}, {name: C}, {name: D}]
    transitions:
      - {from: A, to: B, event: GO, matchingRules: [{eventProperty: k, instanceProperty: k}]}
      - {from: A, to: C, event: GO, matchingRules: [{eventProperty: j, instanceProperty: j}]}
      - {from: A, to: D, event: GO}
      - {from: B, to: C, event: ONLY, matchingRules: [{eventProperty: z, instanceProperty: z}]}
`
	h := newHarness(t, true, src)
	in := h.create("Sel", "M", map[string]any{"k": 1, "j": 2})
	if r := h.mustSend(in.ID, "GO", map[string]any{"j": 2}); r.NewState != "C" {
		t.Fatalf("first passing rules: %s", r.NewState)
	}
	in2 := h.create("Sel", "M", map[string]any{"k": 1})
	if r := h.mustSend(in2.ID, "GO", map[string]any{"k": 5}); r.NewState != "D" {
		t.Fatalf("fallback to no-rules candidate: %s", r.NewState)
	}
	in3 := h.create("Sel", "M", map[string]any{"k": 1})
	h.mustSend(in3.ID, "GO", map[string]any{"k": 1})
	// One candidate: its rules are routing rules and are not checked on a direct send.
	if r := h.mustSend(in3.ID, "ONLY", map[string]any{"z": 9}); r.NewState != "C" {
		t.Fatalf("single candidate: %s", r.NewState)
	}
}

func TestPayloadMerge(t *testing.T) {
	h := newHarness(t, true, approval)
	in := h.create("Approval", "Request", map[string]any{"amount": 10, "who": "ann"})
	r := h.mustSend(in.ID, "SUBMIT", map[string]any{"amount": 20, "note": "hi"})
	if r.Instance.Context["amount"] != 20 || r.Instance.Context["who"] != "ann" || r.Instance.Context["note"] != "hi" {
		t.Fatalf("merged context = %v", r.Instance.Context)
	}
	hist, _ := h.store.History(context.Background(), in.ID)
	if len(hist) != 2 || hist[0].Type != store.EventCreated || hist[1].Data["amount"] != 20 || hist[0].Data["amount"] != 10 {
		t.Fatalf("history snapshots: %+v", hist)
	}
}

const family = `
name: Family
entryMachine: Parent
entryMachineMode: singleton
stateMachines:
  - name: Parent
    initialState: Idle
    states:
      - {name: Idle}
      - {name: Waiting}
      - {name: ChildDone}
    transitions:
      - from: Idle
        to: Waiting
        event: SPAWN
        type: inter_machine
        targetMachine: Child
        contextMapping: {ref: order.id, amount: amount}
      - {from: Waiting, to: Waiting, event: CHILD_CHANGED}
      - {from: Waiting, to: ChildDone, event: CHILD_FINISHED}
  - name: Child
    initialState: Started
    parentLink: {enabled: true, onStateChange: CHILD_CHANGED}
    states:
      - {name: Started}
      - {name: Working}
      - {name: Finished, type: final}
    transitions:
      - {from: Started, to: Working, event: WORK}
      - from: Working
        to: Finished
        event: FINISH
        notifyParent: {event: CHILD_FINISHED, includeContext: true}
`

func TestInterMachineAndParentNotification(t *testing.T) {
	for _, manual := range []bool{true, false} {
		t.Run(fmt.Sprint("manual=", manual), func(t *testing.T) {
			h := newHarness(t, manual, family)
			parents := h.live("Family", "Parent")
			if len(parents) != 1 || !parents[0].IsEntryPoint {
				t.Fatalf("singleton entry point not auto-created: %+v", parents)
			}
			p := parents[0]
			if _, err := h.eng.Create(context.Background(), xc.CreateRequest{Component: "Family", Machine: "Parent"}); !errors.Is(err, xc.ErrSingleton) {
				t.Fatalf("second singleton: %v", err)
			}
			h.mustSend(p.ID, "SPAWN", map[string]any{"order": map[string]any{"id": "o-1"}, "amount": 5})
			kids := h.live("Family", "Child")
			if len(kids) != 1 {
				t.Fatalf("children: %d", len(kids))
			}
			kid := kids[0]
			if kid.ParentInstanceID != p.ID || kid.ParentMachineName != "Parent" {
				t.Fatalf("parent link: %+v", kid)
			}
			if len(kid.Context) != 2 || kid.Context["ref"] != "o-1" || kid.Context["amount"] != 5 {
				t.Fatalf("contextMapping: %v", kid.Context)
			}
			h.mustSend(kid.ID, "WORK", nil)
			if got := h.get(p.ID); got.Version != 2 || got.CurrentState != "Waiting" {
				t.Fatalf("parent after CHILD_CHANGED: %+v", got)
			}
			if got := h.get(p.ID).Context; got["newState"] != "Working" || got["childInstanceId"] != kid.ID {
				t.Fatalf("notification payload merged: %v", got)
			}
			h.mustSend(kid.ID, "FINISH", nil)
			got := h.get(p.ID)
			if got.CurrentState != "ChildDone" {
				t.Fatalf("parent: %s", got.CurrentState)
			}
			if cc, ok := got.Context["childContext"].(map[string]any); !ok || cc["ref"] != "o-1" {
				t.Fatalf("includeContext: %v", got.Context["childContext"])
			}
		})
	}
}

const cascades = `
name: Shop
entryMachine: Order
entryMachineMode: multiple
autoCreateEntryPoint: false
stateMachines:
  - name: Order
    initialState: Draft
    states:
      - {name: Draft}
      - name: Confirmed
        cascadingRules:
          - targetMachine: Shipment
            targetState: Idle
            event: START
            matchingRules: [{eventProperty: orderId, instanceProperty: orderId}]
            payload: {orderId: "{{id}}", total: "{{pricing.total}}", fixed: "x"}
      - name: Pinged
        cascadingRules:
          - {targetMachine: Order, targetState: Pinged, event: PING}
    transitions:
      - {from: Draft, to: Confirmed, event: CONFIRM}
      - {from: Draft, to: Pinged, event: GO}
      - {from: Pinged, to: Pinged, event: PING}
  - name: Shipment
    initialState: Idle
    states: [{name: Idle}, {name: Preparing}]
    transitions:
      - {from: Idle, to: Preparing, event: START}
`

func TestCascadesWithTemplates(t *testing.T) {
	for _, manual := range []bool{true, false} {
		t.Run(fmt.Sprint("manual=", manual), func(t *testing.T) {
			h := newHarness(t, manual, cascades)
			o := h.create("Shop", "Order", map[string]any{"id": 42, "pricing": map[string]any{"total": 99.5}})
			s1 := h.create("Shop", "Shipment", map[string]any{"orderId": 42})
			s2 := h.create("Shop", "Shipment", map[string]any{"orderId": 43})
			h.mustSend(o.ID, "CONFIRM", nil)
			if h.state(s1.ID) != "Preparing" || h.state(s2.ID) != "Idle" {
				t.Fatalf("cascade routing: s1=%s s2=%s", h.state(s1.ID), h.state(s2.ID))
			}
			ctx := h.get(s1.ID).Context
			if ctx["total"] != 99.5 || ctx["fixed"] != "x" || ctx["orderId"] != 42 {
				t.Fatalf("templated payload merged: %v", ctx)
			}
			if h.count(xc.EvCascadeCompleted) != 1 {
				t.Fatalf("cascade_completed: %d", h.count(xc.EvCascadeCompleted))
			}
			// Causality: the shipment's event is caused by the order's CONFIRM.
			hist, _ := h.store.History(context.Background(), s1.ID)
			ohist, _ := h.store.History(context.Background(), o.ID)
			last, confirm := hist[len(hist)-1], ohist[len(ohist)-1]
			if last.CausationID != confirm.ID || last.CorrelationID != confirm.CorrelationID {
				t.Fatalf("causality: %+v vs %+v", last, confirm)
			}
			corr, _ := h.store.Correlated(context.Background(), confirm.CorrelationID)
			if len(corr) != 2 {
				t.Fatalf("correlated events: %d", len(corr))
			}
		})
	}
}

func TestCascadeSelfLoopTargetsEachOnce(t *testing.T) {
	src := `
name: Fleet
stateMachines:
  - name: Control
    initialState: Off
    states:
      - {name: Off}
      - name: On
        cascadingRules:
          - {targetMachine: Truck, targetState: Parked, event: NUDGE, payload: {by: "{{who}}"}}
    transitions:
      - {from: Off, to: On, event: START}
  - name: Truck
    initialState: Parked
    states: [{name: Parked}]
    transitions:
      - {from: Parked, to: Parked, event: NUDGE}
`
	for _, manual := range []bool{true, false} {
		t.Run(fmt.Sprint("manual=", manual), func(t *testing.T) {
			h := newHarness(t, manual, src)
			var trucks []xc.Instance
			for i := 0; i < 5; i++ {
				trucks = append(trucks, h.create("Fleet", "Truck", nil))
			}
			c := h.create("Fleet", "Control", map[string]any{"who": "ops"})
			h.mustSend(c.ID, "START", nil)
			for _, tr := range trucks {
				got := h.get(tr.ID)
				if got.Version != 1 || got.Context["by"] != "ops" {
					t.Fatalf("truck %s: version %d (want exactly one NUDGE), context %v", tr.ID, got.Version, got.Context)
				}
			}
		})
	}
}

const crossA = `
name: Orders
entryMachine: Order
entryMachineMode: multiple
autoCreateEntryPoint: false
stateMachines:
  - name: Order
    initialState: New
    states: [{name: New}, {name: Paying}, {name: Paid}, {name: Notified}]
    transitions:
      - {from: New, to: Paying, event: PAY, type: cross_component, targetComponent: Payments, targetMachine: Payment, contextMapping: {orderId: id, amount: amount}}
      - {from: Paying, to: Paid, event: PAID, matchingRules: [{eventProperty: orderId, instanceProperty: id}]}
      - {from: Paid, to: Notified, event: NOTIFY, type: cross_component, targetComponent: Payments, targetMachine: Payment, targetEvent: SETTLE, contextMapping: {orderId: id}, matchingRules: [{eventProperty: orderId, instanceProperty: orderId}]}
`

const crossB = `
name: Payments
entryMachine: Payment
entryMachineMode: multiple
autoCreateEntryPoint: false
stateMachines:
  - name: Payment
    initialState: Pending
    states:
      - {name: Pending}
      - name: Done
        cascadingRules:
          - {targetComponent: Orders, targetMachine: Order, targetState: Paying, event: PAID, payload: {orderId: "{{orderId}}"}}
      - {name: Settled, type: final}
    transitions:
      - {from: Pending, to: Done, event: CONFIRM}
      - {from: Done, to: Settled, event: SETTLE}
`

func TestCrossComponentInProcess(t *testing.T) {
	for _, manual := range []bool{true, false} {
		t.Run(fmt.Sprint("manual=", manual), func(t *testing.T) {
			h := newHarness(t, manual, crossA, crossB)
			o := h.create("Orders", "Order", map[string]any{"id": "o1", "amount": 12})
			other := h.create("Orders", "Order", map[string]any{"id": "o2"})
			h.mustSend(o.ID, "PAY", nil)
			pays := h.live("Payments", "Payment")
			if len(pays) != 1 || pays[0].Context["orderId"] != "o1" || pays[0].Context["amount"] != 12 {
				t.Fatalf("cross-component create: %+v", pays)
			}
			h.mustSend(pays[0].ID, "CONFIRM", nil)
			if h.state(o.ID) != "Paid" || h.state(other.ID) != "New" {
				t.Fatalf("cascade across components: %s %s", h.state(o.ID), h.state(other.ID))
			}
			h.mustSend(o.ID, "NOTIFY", nil)
			if got := h.get(pays[0].ID); got.Status != store.StatusCompleted {
				t.Fatalf("targetEvent delivery: %+v", got)
			}
		})
	}
}

// hooksComponent names a hook of each kind.
const hooksComponent = `
name: Hooks
stateMachines:
  - name: M
    initialState: A
    states:
      - {name: A, onExit: leaveA}
      - {name: B, onEntry: enterB}
      - {name: C}
    transitions:
      - {from: A, to: B, event: GO, triggeredMethod: onGo}
      - {from: B, to: C, event: NEXT}
`

func TestHooksVetoDataAndSender(t *testing.T) {
	src := hooksComponent
	for _, manual := range []bool{true, false} {
		t.Run(fmt.Sprint("manual=", manual), func(t *testing.T) {
			h := newHarness(t, manual, src)
			var calls []string
			h.eng.Handle("leaveA", func(_ context.Context, hk *xc.Hook) error {
				calls = append(calls, "leaveA")
				if hk.Event.Payload["veto"] == true {
					return errors.New("not today")
				}
				return nil
			})
			h.eng.Handle("onGo", func(_ context.Context, hk *xc.Hook) error {
				calls = append(calls, "onGo")
				hk.Data["touched"] = true
				hk.Send.SendToSelf(xc.Event{Type: "NEXT"})
				return nil
			})
			h.eng.Handle("enterB", func(_ context.Context, hk *xc.Hook) error {
				calls = append(calls, "enterB")
				return errors.New("entry failed")
			})
			in := h.create("Hooks", "M", nil)
			_, err := h.send(in.ID, "GO", map[string]any{"veto": true})
			if !errors.Is(err, xc.ErrNotAccepted) || !strings.Contains(err.Error(), "not today") {
				t.Fatalf("veto: %v", err)
			}
			if got := h.get(in.ID); got.CurrentState != "A" || got.Version != 0 {
				t.Fatalf("vetoed transition changed the instance: %+v", got)
			}
			calls = nil
			h.mustSend(in.ID, "GO", nil)
			got := h.get(in.ID)
			if got.CurrentState != "C" || got.Context["touched"] != true {
				t.Fatalf("after GO: %+v", got)
			}
			if strings.Join(calls, ",") != "leaveA,onGo,enterB" {
				t.Fatalf("hook order: %v", calls)
			}
			if h.count(xc.EvHookError) != 1 {
				t.Fatalf("hook_error events: %d", h.count(xc.EvHookError))
			}
		})
	}
}

func TestRestoreFromStore(t *testing.T) {
	st := store.NewMemory()
	fake := clock.NewFake(t0)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	eng := xcomponenttest.NewManual(xc.Options{Store: st, Clock: fake, Logger: quiet})
	if err := eng.Load(ctx, parse(t, approval)); err != nil {
		t.Fatal(err)
	}
	in, _ := eng.Create(ctx, xc.CreateRequest{Component: "Approval", Machine: "Request", Data: map[string]any{"amount": 9999}})
	_, _ = eng.Send(ctx, in.ID, xc.Event{Type: "SUBMIT"})
	_, _ = eng.Send(ctx, in.ID, xc.Event{Type: "ROUTE"})
	done, _ := eng.Create(ctx, xc.CreateRequest{Component: "Approval", Machine: "Request"})
	_, _ = eng.Send(ctx, done.ID, xc.Event{Type: "SUBMIT", Payload: map[string]any{"amount": 1}})
	_, _ = eng.Send(ctx, done.ID, xc.Event{Type: "ROUTE"})
	_, _ = eng.Send(ctx, done.ID, xc.Event{Type: "REJECT"})
	_ = eng.Close(ctx)

	fake.Advance(8 * 24 * time.Hour) // the process was down past the deadline
	eng2 := xcomponenttest.NewManual(xc.Options{Store: st, Clock: fake, Logger: quiet})
	defer eng2.Close(ctx)
	if err := eng2.Load(ctx, parse(t, approval)); err != nil {
		t.Fatal(err)
	}
	if n := eng2.InstanceCount(); n != 1 {
		t.Fatalf("restored %d live instances, want 1", n)
	}
	if got, _ := eng2.Get(ctx, in.ID); got.CurrentState != "DirectorReview" || got.Version != 2 || len(got.PendingTimeouts) != 1 {
		t.Fatalf("restored: %+v", got)
	}
	if err := eng2.Settle(ctx); err != nil { // overdue timer fires once, promptly
		t.Fatal(err)
	}
	if got, _ := eng2.Get(ctx, in.ID); got.CurrentState != "Expired" || got.Version != 3 {
		t.Fatalf("overdue timer: %+v", got)
	}
	if got, _ := eng2.Get(ctx, done.ID); got.Status != store.StatusError {
		t.Fatalf("completed instance: %+v", got)
	}
}

func TestConflictBetweenTwoEnginesOnOneStore(t *testing.T) {
	st := store.NewMemory()
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	comp := parse(t, selfLoops)
	a := xc.New(xc.Options{Store: st, Logger: quiet})
	defer a.Close(ctx)
	if err := a.Load(ctx, comp); err != nil {
		t.Fatal(err)
	}
	in, _ := a.Create(ctx, xc.CreateRequest{Component: "Loops", Machine: "Session"})
	b := xc.New(xc.Options{Store: st, Logger: quiet})
	defer b.Close(ctx)
	if err := b.Load(ctx, comp); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		eng := a
		if i%2 == 1 {
			eng = b
		}
		if _, err := eng.Send(ctx, in.ID, xc.Event{Type: "PING"}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	rec, _ := st.Instance(ctx, in.ID)
	hist, _ := st.History(ctx, in.ID)
	if rec.Version != 10 || len(hist) != 11 {
		t.Fatalf("version %d, %d events: lost update", rec.Version, len(hist))
	}
	for i, ev := range hist[1:] {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
	}
}

func TestInstanceCreatedByAnotherEngineIsServed(t *testing.T) {
	st := store.NewMemory()
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	comp := parse(t, selfLoops)
	a := xc.New(xc.Options{Store: st, Logger: quiet})
	b := xc.New(xc.Options{Store: st, Logger: quiet})
	defer a.Close(ctx)
	defer b.Close(ctx)
	for _, eng := range []*xc.Engine{a, b} {
		if err := eng.Load(ctx, comp); err != nil {
			t.Fatal(err)
		}
	}
	in, err := a.Create(ctx, xc.CreateRequest{Component: "Loops", Machine: "Session"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Send(ctx, in.ID, xc.Event{Type: "PING"}); err != nil {
		t.Fatalf("engine b does not serve a's instance: %v", err)
	}
	if _, err := a.Send(ctx, in.ID, xc.Event{Type: "PING"}); err != nil {
		t.Fatalf("a after b: %v", err)
	}
	if rec, _ := st.Instance(ctx, in.ID); rec.Version != 2 {
		t.Fatalf("version %d, want 2", rec.Version)
	}
}

func TestAuditTrailNotesHookErrorsAndMissingHandlers(t *testing.T) {
	src := `
name: Notes
stateMachines:
  - name: M
    initialState: A
    states:
      - {name: A}
      - {name: B, onEntry: enterB}
      - {name: C, onEntry: nobody}
    transitions:
      - {from: A, to: B, event: GO}
      - {from: B, to: C, event: NEXT, triggeredMethod: alsoNobody}
`
	h := newHarness(t, true, src)
	h.eng.Handle("enterB", func(context.Context, *xc.Hook) error { return errors.New("mail server down") })
	in := h.create("Notes", "M", nil)
	h.mustSend(in.ID, "GO", nil)
	h.mustSend(in.ID, "NEXT", nil)
	hist, err := h.store.History(context.Background(), in.ID)
	if err != nil || len(hist) != 3 {
		t.Fatalf("history: %v %v", hist, err)
	}
	if hist[0].Note != "" {
		t.Errorf("creation note %q", hist[0].Note)
	}
	if !strings.Contains(hist[1].Note, "onEntry hook enterB: mail server down") {
		t.Errorf("GO note %q", hist[1].Note)
	}
	if hist[2].Note != "triggeredMethod alsoNobody: no handler; onEntry nobody: no handler" {
		t.Errorf("NEXT note %q", hist[2].Note)
	}
}

func TestEventsWithTheirOwnIDAreAppliedOnce(t *testing.T) {
	h := newHarness(t, false, selfLoops)
	ctx := context.Background()
	const cmd = "0190f2a4-0000-7000-8000-000000000001"
	in, err := h.eng.Create(ctx, xc.CreateRequest{Component: "Loops", Machine: "Session", Event: xc.Event{ID: cmd}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.eng.Create(ctx, xc.CreateRequest{Component: "Loops", Machine: "Session", Event: xc.Event{ID: cmd}}); !errors.Is(err, xc.ErrNotAccepted) {
		t.Fatalf("second create with the same id: %v", err)
	}
	ev := xc.Event{Type: "PING", ID: "0190f2a4-0000-7000-8000-000000000002"}
	if _, err := h.eng.Send(ctx, in.ID, ev); err != nil {
		t.Fatal(err)
	}
	if _, err := h.eng.Send(ctx, in.ID, ev); !errors.Is(err, xc.ErrNotAccepted) {
		t.Fatalf("redelivered event: %v", err)
	}
	if got := h.get(in.ID); got.Version != 1 {
		t.Fatalf("version %d, want 1", got.Version)
	}
	if n := len(h.live("Loops", "Session")); n != 1 {
		t.Fatalf("%d instances, want 1", n)
	}
}
