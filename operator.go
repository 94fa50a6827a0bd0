package xcomponent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

// Operator actions: what a person (not the YAML) does to an instance. Each one is recorded in
// the instance's history like an event, with the operator as actor, Source SourceOperator and
// the reason given (docs/semantics.md, "Operator actions").

// Event types recorded in the audit trail for the operator actions.
const (
	// EventTerminated: Engine.Terminate ended the instance.
	EventTerminated = "INSTANCE_TERMINATED"
	// EventHookRetried: Engine.RetryHook ran the failed onEntry hook again.
	EventHookRetried = "HOOK_RETRIED"
)

// OperatorRequest is who asks for an operator action and why.
type OperatorRequest struct {
	// Actor is who asks: the API token's name, a user; recorded in the audit trail.
	Actor string
	// Reason is why, free text; recorded in the audit trail.
	Reason string
	// ID, when set, identifies the request: a request redelivered with the same id (a broker
	// command, a retried HTTP call) is applied at most once. Generated when empty.
	ID string
	// CorrelationID ties the action to a chain of events; its own id when empty.
	CorrelationID string
}

// opKind says which operator action a delivery carries (opNone for an ordinary event).
type opKind uint8

const (
	opNone opKind = iota
	opTerminate
	opRetryHook
)

// Terminate ends an instance on an operator's request, wherever its machine is: the instance
// keeps its state and data, takes the status store.StatusTerminated, its pending timers are
// cancelled and it leaves the live set and the routing indexes (no event, broadcast or timer
// reaches it any more). No hook runs and nothing is sent: its parent is not notified and its
// children keep running (docs/semantics.md). The termination is recorded in its history as an
// INSTANCE_TERMINATED event with the actor and reason, and reported to subscribers as a
// StateChanged followed by an InstanceCompleted with the terminated status.
//
// An instance that has already ended (completed, error, terminated) is refused with an error
// wrapping ErrNotAccepted; an unknown one with ErrNotFound. The action waits its turn behind
// the events already queued for the instance.
func (e *Engine) Terminate(ctx context.Context, instanceID string, req OperatorRequest) (Result, error) {
	return e.operate(ctx, instanceID, opTerminate, req)
}

// RetryHook runs again the onEntry hook of an instance's current state when the last thing
// recorded in its history is that this hook failed (an onEntry failure does not undo the
// transition: the instance sits in the state the hook was meant to prepare). The hook gets the
// event that entered the state, as it did the first time, and may change the data and send
// events as any hook; the state and timers do not change. The retry is recorded as a
// HOOK_RETRIED event with the actor and reason, with the hook's new failure in its note when it
// fails again (which can then be retried in turn).
//
// It applies to instances in any status but terminated, including those an error or final
// state ended (their onEntry may be what failed). Anything else — no failed hook, the instance
// moved on since, a vetoed onExit or triggeredMethod (the event was refused and nothing
// changed: send the event again) — is refused with an error wrapping ErrNotAccepted that says
// why.
func (e *Engine) RetryHook(ctx context.Context, instanceID string, req OperatorRequest) (Result, error) {
	return e.operate(ctx, instanceID, opRetryHook, req)
}

func (e *Engine) operate(ctx context.Context, instanceID string, op opKind, req OperatorRequest) (Result, error) {
	if e.closed.Load() {
		return Result{}, ErrClosed
	}
	ev := Event{ID: req.ID, CorrelationID: req.CorrelationID, Actor: req.Actor, Source: SourceOperator, Reason: req.Reason}
	ev.Type = EventTerminated
	if op == opRetryHook {
		ev.Type = EventHookRetried
	}
	if err := cleanEvent(&ev); err != nil {
		return Result{}, err
	}
	inbox := ev.ID
	e.fillIDs(&ev)
	if e.tracer != nil {
		ev.TraceParent = e.tracer.TraceParent(ctx)
	}
	inst := e.lookupOrLoad(ctx, instanceID)
	if inst == nil {
		if op == opRetryHook {
			// An instance that ended (error or final state) is not live: its failed hook
			// is retried on its stored record.
			return e.retryStored(ctx, instanceID, ev, inbox)
		}
		return Result{}, e.missingInstance(ctx, instanceID)
	}
	d := &delivery{inst: inst, ev: ev, inbox: inbox, op: op}
	if e.manual {
		if err := e.settle(ctx); err != nil {
			return Result{}, err
		}
		return e.process(ctx, d)
	}
	return e.deliverWait(ctx, d)
}

// retryStored retries the failed hook of an instance that is not in the live set, on a
// transient copy: nothing else processes it, and a concurrent change is reported, not retried.
func (e *Engine) retryStored(ctx context.Context, id string, ev Event, inbox string) (Result, error) {
	rec, err := e.store.Instance(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Result{}, fmt.Errorf("instance %s not found: %w", id, ErrNotFound)
	}
	if err != nil {
		return Result{}, fmt.Errorf("instance %s: %w: %v", id, ErrStore, err)
	}
	cr := e.componentRuntime(rec.Component)
	if cr == nil || cr.machines[rec.Machine] == nil {
		return Result{}, fmt.Errorf("component %s of instance %s is not loaded here: %w", rec.Component, id, ErrNotFound)
	}
	inst := &instance{mr: cr.machines[rec.Machine], isEntryPoint: rec.IsEntryPoint}
	inst.setRecord(&rec)
	return e.applyOp(ctx, &delivery{inst: inst, ev: ev, inbox: inbox, op: opRetryHook})
}

// applyOp applies an operator action; apply calls it for the deliveries that carry one.
func (e *Engine) applyOp(ctx context.Context, d *delivery) (Result, error) {
	if d.op == opTerminate {
		return e.applyTerminate(ctx, d)
	}
	return e.applyRetry(ctx, d)
}

// operatorEvent is the history entry of an operator action on rec, producing next.
func operatorEvent(d *delivery, rec, next *store.Instance) store.Event {
	return store.Event{
		ID: d.ev.ID, InstanceID: rec.ID, Component: rec.Component, Machine: rec.Machine, Type: d.ev.Type,
		Payload: d.ev.Payload, FromState: rec.State, ToState: next.State, Data: next.Data,
		CorrelationID: d.ev.CorrelationID, CausationID: d.ev.CausationID, Actor: d.ev.Actor,
		Source: string(d.ev.Source), Seq: next.Version, PersistedAt: next.UpdatedAt,
		TraceID: spanTraceID(d.span), Reason: d.ev.Reason,
	}
}

// commitOp commits an operator action, reporting a duplicate request as such.
func (e *Engine) commitOp(ctx context.Context, d *delivery, c *store.Commit) error {
	c.InboxID = d.inbox
	err := e.commit(ctx, c)
	if errors.Is(err, store.ErrDuplicate) {
		return fmt.Errorf("%s request %s already applied to instance %s: %w (%w)", d.ev.Type, d.ev.ID, d.inst.ID(), ErrNotAccepted, ErrDuplicate)
	}
	return err
}

func (e *Engine) applyTerminate(ctx context.Context, d *delivery) (Result, error) {
	start := time.Now()
	rec, err := e.current(ctx, d) // refuses an instance that is no longer active
	if err != nil {
		return Result{}, err
	}
	next := new(store.Instance)
	*next = *rec
	next.Status = store.StatusTerminated
	next.Version++
	next.UpdatedAt = e.nowMs()
	next.Timers = nil
	d.ev.Payload = map[string]any{"state": rec.State}
	c := &store.Commit{Events: []store.Event{operatorEvent(d, rec, next)},
		Instances: []store.InstanceWrite{{Instance: next, ExpectVersion: rec.Version}}}
	if err := e.commitOp(ctx, d, c); err != nil {
		return Result{}, err
	}
	inst := d.inst
	inst.setRecord(next)
	inst.mr.update(inst, rec, next, false) // leaves the state lists and routing indexes
	e.retire(inst)                         // leaves the live set; its timers are dropped
	if e.observer != nil {
		e.observer.Transition(rec.Component, rec.Machine, rec.State, next.State, d.ev.Type, time.Since(start).Seconds())
	}
	if e.hasSubscribers() {
		e.emit(RuntimeEvent{Component: next.Component, InstanceID: next.ID, Timestamp: next.UpdatedAt, Data: StateChanged{
			InstanceID: next.ID, MachineName: next.Machine, PreviousState: rec.State, NewState: next.State,
			StateType: inst.mr.def.State(next.State).Type, Event: d.ev, Context: next.Data, Status: next.Status,
			Version: next.Version}})
		e.emit(RuntimeEvent{Component: next.Component, InstanceID: next.ID, Timestamp: next.UpdatedAt, Data: InstanceCompleted{
			InstanceID: next.ID, MachineName: next.Machine, FinalState: next.State, Status: next.Status,
			Context: next.Data, Version: next.Version}})
	}
	return Result{Instance: View(next, inst.mr.publicMember, next.UpdatedAt), PreviousState: rec.State,
		NewState: next.State, EventID: d.ev.ID}, nil
}

// failedHook returns the history entry that entered the instance's state and whose onEntry
// hook failed, when the instance's last event records that failure (the entry itself, or a
// retry of it that failed again).
func (e *Engine) failedHook(ctx context.Context, rec *store.Instance, state *component.State) (*store.Event, string) {
	if state.OnEntry == "" {
		return nil, fmt.Sprintf("state %s of machine %s has no onEntry hook", rec.State, rec.Machine)
	}
	h, err := e.store.History(ctx, rec.ID)
	if err != nil {
		return nil, fmt.Sprintf("history of instance %s unreadable: %v", rec.ID, err)
	}
	if len(h) == 0 {
		return nil, fmt.Sprintf("instance %s has no history", rec.ID)
	}
	last := &h[len(h)-1]
	prefix := fmt.Sprintf("%s hook %s: ", HookOnEntry, state.OnEntry)
	failed := false
	for _, n := range strings.Split(last.Note, "; ") {
		failed = failed || (strings.HasPrefix(n, prefix) && !strings.HasSuffix(n, ": no handler"))
	}
	if !failed || last.Seq != rec.Version || last.ToState != rec.State {
		return nil, fmt.Sprintf("instance %s has no failed hook to retry: the last event (%s, into %s) did not record a failure of onEntry hook %s",
			rec.ID, last.Type, last.ToState, state.OnEntry)
	}
	entered := len(h) - 1
	for entered > 0 && h[entered].Type == EventHookRetried {
		entered--
	}
	return &h[entered], ""
}

func (e *Engine) applyRetry(ctx context.Context, d *delivery) (Result, error) {
	inst := d.inst
	rec := inst.record()
	if rec.Status == store.StatusTerminated {
		return Result{}, e.refuse(ctx, d, rec, fmt.Sprintf("instance %s is %s", rec.ID, rec.Status))
	}
	mr := inst.mr
	state := mr.def.State(rec.State)
	if state == nil {
		return Result{}, fmt.Errorf("state %s not found in machine %s: %w", rec.State, rec.Machine, ErrNotFound)
	}
	failed, reason := e.failedHook(ctx, rec, state)
	if failed == nil {
		return Result{}, e.refuse(ctx, d, rec, reason)
	}
	now := e.nowMs()
	next := new(store.Instance)
	*next = *rec
	next.Version++
	next.UpdatedAt = now
	data := copyMap(rec.Data)
	sends := &sendQueue{self: rec.ID, component: mr.comp.def.Name}
	// The hook sees the event that entered the state, as the first time; what it sends is
	// caused by the retry.
	t := &component.Transition{From: failed.FromState, To: failed.ToState, Event: failed.Type}
	hd := &delivery{inst: inst, span: d.span, ev: Event{Type: failed.Type, Payload: failed.Payload, ID: failed.ID,
		CorrelationID: failed.CorrelationID, CausationID: failed.CausationID, Actor: d.ev.Actor, Source: SourceOperator}}
	d.ev.CausationID = failed.ID
	if d.ev.CorrelationID == d.ev.ID {
		d.ev.CorrelationID = failed.CorrelationID // the retry continues the chain that failed
	}
	d.ev.Payload = map[string]any{"hook": string(HookOnEntry), "method": state.OnEntry, "event": failed.Type}
	var note string
	hookErr := e.runHook(ctx, HookOnEntry, state.OnEntry, next, t, hd, data, sends, rec.State)
	switch {
	case errors.Is(hookErr, errNoHandler):
		note = fmt.Sprintf("%s %s: no handler", HookOnEntry, state.OnEntry)
		hookErr = fmt.Errorf("%s hook %s: no handler registered", HookOnEntry, state.OnEntry)
	case hookErr != nil:
		hookErr = fmt.Errorf("%s hook %s: %w", HookOnEntry, state.OnEntry, hookErr)
		note = hookErr.Error()
	}
	clean, ferrs := cleanData(data)
	if len(ferrs) > 0 {
		ce := &ContextError{Machine: mr.def.Name, Subject: fmt.Sprintf("data set by the retried hook %s", state.OnEntry), Fields: ferrs, refused: true}
		_ = e.refuse(ctx, d, rec, ce.Error())
		return Result{}, ce
	}
	next.Data = clean
	ev := operatorEvent(d, rec, next)
	ev.Note = note
	c := &store.Commit{Events: []store.Event{ev}, Instances: []store.InstanceWrite{{Instance: next, ExpectVersion: rec.Version}}}
	// Only what the hook sent: a retry is not a transition (no cascade, no parent
	// notification), hence no transition, no target state and no parent given here.
	noParent := *rec
	noParent.ParentID = ""
	fx := e.buildEffects(mr, &noParent, next, &component.Transition{}, &component.State{}, d, sends, now, c)
	if err := e.commitOp(ctx, d, c); err != nil {
		if errors.Is(err, store.ErrConflict) && !isLive(rec) {
			// Not live: refreshing the copy would touch the live indexes. Report it.
			return Result{}, fmt.Errorf("instance %s changed while its hook was retried, try again: %w", rec.ID, ErrBusy)
		}
		return Result{}, err
	}
	inst.setRecord(next)
	if isLive(next) {
		mr.update(inst, rec, next, true)
	}
	if e.observer != nil && hookErr != nil {
		e.observer.HookError(rec.Component, rec.Machine)
	}
	if e.hasSubscribers() {
		e.emit(RuntimeEvent{Component: next.Component, InstanceID: next.ID, Timestamp: now, Data: StateChanged{
			InstanceID: next.ID, MachineName: next.Machine, PreviousState: rec.State, NewState: next.State,
			StateType: state.Type, Event: d.ev, Context: next.Data, Status: next.Status, Version: next.Version,
			PendingTimeouts: pendingTimeouts(next, now)}})
	}
	if hookErr != nil {
		e.reportHookError(next, hookErr)
	}
	for _, msg := range fx.messages {
		e.dispatch(msg)
	}
	res := Result{Instance: View(next, mr.publicMember, now), PreviousState: rec.State, NewState: next.State, EventID: d.ev.ID}
	if hookErr != nil {
		// Recorded (the retry happened), but the caller must know it failed again.
		return res, &HookRetryError{Result: res, Err: hookErr}
	}
	return res, nil
}

// HookRetryError is RetryHook's error when the retried hook failed again: the retry is
// recorded (with the failure as its note) and can itself be retried.
type HookRetryError struct {
	Result Result
	Err    error
}

func (e *HookRetryError) Error() string { return "hook failed again: " + e.Err.Error() }

// Unwrap makes errors.Is(err, ErrHookFailed) true.
func (e *HookRetryError) Unwrap() []error { return []error{ErrHookFailed, e.Err} }

// ErrHookFailed: a retried hook failed again (see HookRetryError).
var ErrHookFailed = errors.New("hook failed")
