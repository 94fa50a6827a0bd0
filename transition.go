package xcomponent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

// maxConflictRetries bounds how often an event is retried after another writer changed the
// instance first. Retries wait a little longer each time (jittered, capped at
// maxConflictWait), so that writers contending for one instance fall out of step; a process
// that keeps losing to a busy one keeps trying until the request's deadline or this bound.
const (
	maxConflictRetries = 2000
	maxConflictWait    = 20 * time.Millisecond
)

// process applies one delivery, retrying when another writer changed the instance first.
func (e *Engine) process(ctx context.Context, d *delivery) (Result, error) {
	if e.tracer != nil {
		return e.processTraced(ctx, d)
	}
	return e.attempt(ctx, d)
}

// processTraced is process within a transition span.
func (e *Engine) processTraced(ctx context.Context, d *delivery) (Result, error) {
	ctx, d.span = e.tracer.Start(ctx, SpanTransition, d.ev.TraceParent)
	res, err := e.attempt(ctx, d)
	mr := d.inst.mr
	info := SpanInfo{Component: mr.comp.def.Name, Machine: mr.def.Name, InstanceID: d.inst.ID(),
		Event: d.ev.Type, EventID: d.ev.ID, Outcome: outcomeOf(err), Err: err}
	if err == nil {
		info.From, info.To, info.Version = res.PreviousState, res.NewState, res.Instance.Version
	} else {
		info.From = d.inst.record().State
	}
	d.span.End(&info)
	d.span = nil
	return res, err
}

// attempt applies one delivery, retrying when another writer changed the instance first.
func (e *Engine) attempt(ctx context.Context, d *delivery) (Result, error) {
	for attempt := 0; ; attempt++ {
		res, err := e.apply(ctx, d)
		if err == nil || !errors.Is(err, store.ErrConflict) {
			return res, err
		}
		if attempt >= maxConflictRetries {
			return Result{}, fmt.Errorf("instance %s changed by another process %d times in a row: %w", d.inst.ID(), attempt+1, ErrBusy)
		}
		if !e.manual && attempt > 0 {
			wait := min(time.Duration(attempt)*time.Millisecond, maxConflictWait)
			wait = wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return Result{}, ctx.Err()
			}
		}
		// Another process changed the instance: reload and try again on the new state.
		fresh, lerr := e.store.Instance(ctx, d.inst.ID())
		if lerr != nil {
			return Result{}, fmt.Errorf("reload instance %s: %w: %v", d.inst.ID(), ErrStore, lerr)
		}
		e.refresh(d.inst, &fresh)
	}
}

// refresh replaces an instance's record by a newer one read from the store (written by
// another process). Only the goroutine processing the instance calls it. An instance that
// another process completed leaves the live set here too.
func (e *Engine) refresh(inst *instance, fresh *store.Instance) {
	old := inst.record()
	inst.setRecord(fresh)
	inst.mr.update(inst, old, fresh, true)
	if !isLive(fresh) {
		e.retire(inst)
		return
	}
	e.timers.set(inst, fresh.Timers)
}

// transitionScratch holds the per-transition buffers the hot path reuses.
type transitionScratch struct {
	commit    store.Commit
	events    [1]store.Event
	instances [1]store.InstanceWrite
	consumed  [1]string
}

// step is a transition in the making: what the steps of apply share.
//
// The delivery is not part of it: passed apart, it stays on the stack of the caller that
// processes its own event.
type step struct {
	inst           *instance
	mr             *machineRuntime
	rec            *store.Instance // the committed record the transition starts from
	next           *store.Instance // the record it commits
	t              *component.Transition
	source, target *component.State
	now            int64
	hooks          bool           // a hook runs (onExit, triggeredMethod or onEntry)
	data           map[string]any // the data being built: rec.Data until a hook or the payload changes it
	owned          bool           // data is the transition's own copy
	sends          *sendQueue     // what the hooks send; nil when no hook runs
	notes          []string       // for the audit trail: what went wrong without undoing the transition
	hookErr        error          // the onEntry hook's failure, reported after the commit
}

// apply is one attempt at processing a delivery: the current record, the transition to fire,
// the payload check, the hooks, the next record, the commit with its effects, then what the
// commit makes visible.
func (e *Engine) apply(ctx context.Context, d *delivery) (Result, error) {
	if d.op != opNone {
		return e.applyOp(ctx, d)
	}
	var start time.Time
	if e.observer != nil { // the only reader of the time taken
		start = time.Now()
	}
	rec, err := e.current(ctx, d)
	if err != nil {
		return Result{}, err
	}
	t, err := e.choose(ctx, d, rec)
	if err != nil {
		return Result{}, err
	}
	payload, err := e.checkPayload(ctx, d, rec, t)
	if err != nil {
		return Result{}, err
	}
	m := d.inst.mr.def
	s := step{inst: d.inst, mr: d.inst.mr, rec: rec, t: t, source: m.State(rec.State), target: m.State(t.To),
		now: e.nowMs(), data: rec.Data}
	s.hooks = s.source.OnExit != "" || t.TriggeredMethod != "" || s.target.OnEntry != ""
	if err := e.runLeavingHooks(ctx, &s, d); err != nil {
		return Result{}, err
	}
	s.mergePayload(d, payload)
	s.nextRecord(d)
	e.runEntryHook(ctx, &s, d)
	if err := e.checkHookData(ctx, &s, d); err != nil {
		return Result{}, err
	}

	sc := e.scratch.Get().(*transitionScratch)
	defer func() {
		*sc = transitionScratch{}
		e.scratch.Put(sc)
	}()
	fx, err := e.commitStep(ctx, &s, d, s.fillCommit(sc, d))
	if err != nil {
		return Result{}, err
	}
	e.publish(&s, d, fx, start)
	return Result{
		Instance:      View(s.next, s.mr.publicMember, s.now),
		PreviousState: rec.State, NewState: t.To, EventID: d.ev.ID,
	}, nil
}

// current returns the record a delivery applies to: the engine's, or the newer one a timer
// claim read. A timer whose arming is gone does nothing; an instance no longer active refuses.
func (e *Engine) current(ctx context.Context, d *delivery) (*store.Instance, error) {
	inst := d.inst
	rec := inst.record()
	if d.fresh != nil && d.fresh.Version > rec.Version {
		e.refresh(inst, d.fresh)
		rec = inst.record()
	}
	if d.timer != nil && (rec.Status != store.StatusActive || !hasTimer(rec.Timers, d.timer)) {
		// The arming was cancelled or already fired (here or by another process): nothing
		// to do.
		return nil, fmt.Errorf("timer %s of instance %s: %w", d.timer.Event, rec.ID, errTimerGone)
	}
	if rec.Status != store.StatusActive {
		return nil, e.refuse(ctx, d, rec, fmt.Sprintf("instance %s is %s", rec.ID, rec.Status))
	}
	return rec, nil
}

// choose returns the transition the delivery fires, or the refusal.
func (e *Engine) choose(ctx context.Context, d *delivery, rec *store.Instance) (*component.Transition, error) {
	t, reason := e.selectTransition(d.inst.mr.def, rec, d)
	if t != nil {
		return t, nil
	}
	if d.timer == nil && e.storeMoved(ctx, rec) {
		// Refused on a copy another process has changed since: try the stored one.
		return nil, fmt.Errorf("instance %s changed by another process: %w", rec.ID, store.ErrConflict)
	}
	return nil, e.refuseSpent(ctx, d, rec, reason)
}

// mergesPayload says whether transition t merges the event's payload into the data (it does
// unless its matching rules use the payload to route).
func mergesPayload(t *component.Transition, d *delivery) bool {
	return len(t.MatchingRules) == 0 && len(d.ev.Payload) > 0
}

// checkPayload checks a payload merged into the data against the contextSchema, before any
// hook runs, so that a refused event has no effect at all. It returns the payload to merge.
func (e *Engine) checkPayload(ctx context.Context, d *delivery, rec *store.Instance, t *component.Transition) (map[string]any, error) {
	if !mergesPayload(t, d) {
		return nil, nil
	}
	m := d.inst.mr.def
	p, ferrs := m.ValidatePayload(d.ev.Payload)
	if len(ferrs) > 0 {
		ce := &ContextError{Machine: m.Name, Subject: fmt.Sprintf("payload of event %s for instance %s (state %s)", d.ev.Type, rec.ID, rec.State), refused: true}
		for _, f := range ferrs {
			ce.Fields = append(ce.Fields, FieldError{Field: "payload." + f.Field, Message: f.Message})
		}
		_ = e.refuse(ctx, d, rec, ce.Error())
		return nil, ce
	}
	return p, nil
}

// runLeavingHooks gives the hooks their copy of the data and their send queue, then runs the
// hooks of leaving the source state (onExit, then triggeredMethod): an error from either
// vetoes the transition.
func (e *Engine) runLeavingHooks(ctx context.Context, s *step, d *delivery) error {
	if !s.hooks {
		return nil
	}
	s.data = copyMap(s.data)
	s.owned = true
	s.sends = &sendQueue{self: s.rec.ID, component: s.mr.comp.def.Name}
	for _, h := range [...]struct {
		kind   HookKind
		method string
	}{{HookOnExit, s.source.OnExit}, {HookTriggered, s.t.TriggeredMethod}} {
		if h.method == "" {
			continue
		}
		err := e.runHook(ctx, h.kind, h.method, s.rec, s.t, d, s.data, s.sends, s.rec.State)
		if errors.Is(err, errNoHandler) {
			s.notes = append(s.notes, fmt.Sprintf("%s %s: no handler", h.kind, h.method))
			continue
		}
		if err != nil {
			return e.refuseSpent(ctx, d, s.rec, fmt.Sprintf("%s hook %s vetoed the transition: %v", h.kind, h.method, err))
		}
	}
	return nil
}

// mergePayload merges the checked payload into the data.
func (s *step) mergePayload(d *delivery, payload map[string]any) {
	if !mergesPayload(s.t, d) {
		return
	}
	if !s.owned {
		s.data = copyMap(s.data)
		s.owned = true
	}
	for k, v := range payload {
		s.data[k] = v
	}
}

// nextRecord builds the record the transition commits: target state, next version, status
// of the target, its timers.
func (s *step) nextRecord(d *delivery) {
	next := new(store.Instance)
	*next = *s.rec
	next.State = s.t.To
	next.Version++
	next.UpdatedAt = s.now
	next.Data = s.data
	switch s.target.Type {
	case component.StateFinal:
		next.Status = store.StatusCompleted
	case component.StateError:
		next.Status = store.StatusError
	}
	if next.Status == store.StatusActive {
		next.Timers = nextTimers(s.target, s.rec, s.t, d.timer, &d.ev, s.now)
	} else {
		next.Timers = nil
	}
	s.next = next
}

// runEntryHook runs the target state's onEntry hook: its error does not undo the transition,
// it is noted in the audit trail and reported after the commit.
func (e *Engine) runEntryHook(ctx context.Context, s *step, d *delivery) {
	if s.target.OnEntry == "" {
		return
	}
	err := e.runHook(ctx, HookOnEntry, s.target.OnEntry, s.next, s.t, d, s.data, s.sends, s.t.To)
	switch {
	case errors.Is(err, errNoHandler):
		s.notes = append(s.notes, fmt.Sprintf("%s %s: no handler", HookOnEntry, s.target.OnEntry))
	case err != nil:
		s.hookErr = fmt.Errorf("onEntry hook %s: %w", s.target.OnEntry, err)
		s.notes = append(s.notes, s.hookErr.Error())
	}
}

// checkHookData checks what the hooks set. Hooks are not held to the contextSchema, but what
// they set must be storable on every store (a webhook may answer a NUL): the transition is
// refused rather than the commit failing as if the store were down.
func (e *Engine) checkHookData(ctx context.Context, s *step, d *delivery) error {
	if !s.hooks {
		return nil
	}
	clean, ferrs := cleanData(s.data)
	if len(ferrs) > 0 {
		ce := &ContextError{Machine: s.mr.def.Name, Subject: fmt.Sprintf("data set by the hooks of %s --%s--> %s", s.t.From, d.ev.Type, s.t.To), Fields: ferrs, refused: true}
		_ = e.refuseSpent(ctx, d, s.rec, ce.Error())
		return ce
	}
	s.data = clean
	s.next.Data = clean
	return nil
}

// fillCommit writes the transition's own record and history entry into the scratch commit.
func (s *step) fillCommit(sc *transitionScratch, d *delivery) *store.Commit {
	rec, next := s.rec, s.next
	c := &sc.commit
	sc.events[0] = store.Event{
		ID: d.ev.ID, InstanceID: rec.ID, Component: s.mr.comp.def.Name, Machine: s.mr.def.Name, Type: d.ev.Type,
		Payload: d.ev.Payload, FromState: rec.State, ToState: s.t.To, Data: s.data,
		SourceComponent: d.ev.SourceComponent, CorrelationID: d.ev.CorrelationID,
		CausationID: d.ev.CausationID, Actor: d.ev.Actor, Source: string(d.ev.Source),
		Seq: next.Version, PersistedAt: s.now, TraceID: spanTraceID(d.span), Reason: d.ev.Reason,
	}
	if len(s.notes) > 0 {
		sc.events[0].Note = strings.Join(s.notes, "; ")
	}
	c.Events = sc.events[:1]
	sc.instances[0] = store.InstanceWrite{Instance: next, ExpectVersion: rec.Version}
	c.Instances = sc.instances[:1]
	if d.consumed != "" {
		sc.consumed[0] = d.consumed
		c.Consumed = sc.consumed[:1]
	}
	c.InboxID = d.inbox
	return c
}

// commitStep adds the transition's effects to c and commits it. A child of a singleton entry
// machine is created only if it is the first one.
func (e *Engine) commitStep(ctx context.Context, s *step, d *delivery, c *store.Commit) (effects, error) {
	cr, t, rec := s.mr.comp, s.t, s.rec
	singletonChild := t.Type == component.InterMachine && t.TargetMachine == cr.def.EntryMachine &&
		cr.def.EntryMachineMode == component.EntrySingleton
	taken := func() error {
		return e.refuse(ctx, d, rec, fmt.Sprintf("machine %s of component %s is a singleton entry point and already has an instance", t.TargetMachine, cr.def.Name))
	}
	if singletonChild {
		// Held until the commit is done, not during the effects: they may create instances.
		cr.createMu.Lock()
		if cr.entryExists {
			cr.createMu.Unlock()
			return effects{}, taken()
		}
	}
	var fx effects
	if needsEffects(t, s.target, rec, s.mr.def) || s.sends != nil {
		fx = e.buildEffects(s.mr, rec, s.next, t, s.target, d, s.sends, s.now, c)
	}
	err := e.commit(ctx, c)
	entryTaken := errors.Is(err, store.ErrEntryPointExists) // by another process sharing the store
	if singletonChild {
		cr.entryExists = cr.entryExists || err == nil || entryTaken
		cr.createMu.Unlock()
	}
	switch {
	case err == nil:
		return fx, nil
	case entryTaken:
		return effects{}, taken()
	case errors.Is(err, store.ErrDuplicate):
		return effects{}, fmt.Errorf("event %s already applied to instance %s: %w (%w)", d.ev.ID, rec.ID, ErrNotAccepted, ErrDuplicate)
	}
	return effects{}, err
}

// publish makes a committed transition visible (the live record, the machine's state sets
// and indexes, the timer queue, the children), reports it, then dispatches its messages.
func (e *Engine) publish(s *step, d *delivery, fx effects, start time.Time) {
	inst, rec, next := s.inst, s.rec, s.next
	inst.setRecord(next)
	s.mr.update(inst, rec, next, s.owned)
	if next.Status != store.StatusActive {
		e.retire(inst)
	}
	e.timers.set(inst, next.Timers)
	for i := range fx.children {
		ch := fx.children[i]
		if _, err := e.register(fx.childRuntime[i], ch); err != nil {
			e.log.Error("register child", "instance", ch.ID, "err", err)
		}
		e.emitCreated(ch)
	}
	if e.observer != nil {
		e.observer.Transition(s.mr.comp.def.Name, s.mr.def.Name, rec.State, s.t.To, d.ev.Type, time.Since(start).Seconds())
	}
	e.emitTransition(rec, next, s.t, s.target, d)
	if s.hookErr != nil {
		e.reportHookError(next, s.hookErr)
	}
	for _, msg := range fx.messages {
		e.dispatch(msg)
	}
}

// selectTransition picks the transition for an event (docs/semantics.md, "Select the
// transition").
func (e *Engine) selectTransition(m *component.Machine, rec *store.Instance, d *delivery) (*component.Transition, string) {
	cands := m.Candidates(rec.State, d.ev.Type)
	if len(cands) == 0 {
		return nil, fmt.Sprintf("no transition for event %s from state %s in machine %s", d.ev.Type, rec.State, m.Name)
	}
	var first *component.Transition
	passing := 0
	guardRefused := false
	for _, t := range cands {
		if !e.guardsPass(t, rec, d) {
			guardRefused = true
			continue
		}
		passing++
		if first == nil {
			first = t
		}
	}
	if passing == 0 {
		if guardRefused {
			return nil, fmt.Sprintf("guard refused event %s in state %s", d.ev.Type, rec.State)
		}
		return nil, fmt.Sprintf("no transition for event %s from state %s", d.ev.Type, rec.State)
	}
	if d.routed {
		for _, t := range cands {
			if len(t.MatchingRules) == 0 || rulesPass(t.MatchingRules, d.ev.Payload, rec.Data) {
				if e.guardsPass(t, rec, d) {
					return t, ""
				}
			}
		}
		return nil, fmt.Sprintf("matching rules of event %s do not hold for instance %s", d.ev.Type, rec.ID)
	}
	if passing == 1 {
		return first, ""
	}
	var noRules *component.Transition
	for _, t := range cands {
		if !e.guardsPass(t, rec, d) {
			continue
		}
		if len(t.MatchingRules) > 0 {
			if rulesPass(t.MatchingRules, d.ev.Payload, rec.Data) {
				return t, ""
			}
		} else if noRules == nil {
			noRules = t
		}
	}
	if noRules != nil {
		return noRules, ""
	}
	return nil, fmt.Sprintf("matching rules of event %s do not hold for instance %s", d.ev.Type, rec.ID)
}

func (e *Engine) guardsPass(t *component.Transition, rec *store.Instance, d *delivery) bool {
	if len(t.Guards) == 0 {
		return true
	}
	ok, err := t.GuardsPass(rec.Data, d.ev.Type, d.ev.Payload)
	if err != nil {
		e.log.Warn("guard evaluation failed", "component", rec.Component, "machine", rec.Machine,
			"instance", rec.ID, "event", d.ev.Type, "err", err)
		e.emit(RuntimeEvent{Component: rec.Component, InstanceID: rec.ID,
			Data: InstanceError{InstanceID: rec.ID, MachineName: rec.Machine, Event: d.ev,
				Error: "guard: " + err.Error()}})
		return false
	}
	return ok
}

// refuse reports an event that was not accepted and settles its outbox message.
func (e *Engine) refuse(ctx context.Context, d *delivery, rec *store.Instance, reason string) error {
	if d.consumed != "" {
		e.consume(ctx, d.consumed)
	}
	if e.observer != nil {
		e.observer.EventIgnored(rec.Component, rec.Machine)
	}
	if e.hasSubscribers() {
		e.emit(RuntimeEvent{Component: rec.Component, InstanceID: rec.ID,
			Data: EventIgnored{InstanceID: rec.ID, MachineName: rec.Machine, Event: d.ev,
				CurrentState: rec.State, Reason: reason}})
	}
	return fmt.Errorf("%s: %w", reason, ErrNotAccepted)
}

// refuseSpent is refuse for a refusal that spends the timer that fired, if one did.
func (e *Engine) refuseSpent(ctx context.Context, d *delivery, rec *store.Instance, reason string) error {
	if d.timer != nil {
		e.spendTimer(ctx, d.inst, rec, d.timer)
	}
	return e.refuse(ctx, d, rec, reason)
}

// consume settles an outbox message that had no effect to commit.
func (e *Engine) consume(ctx context.Context, id string) {
	err := e.commit(ctx, &store.Commit{Consumed: []string{id}})
	if err != nil && !errors.Is(err, store.ErrDuplicate) { // a duplicate: already settled
		e.log.Error("outbox: settle message", "id", id, "err", err)
	}
}

// spendTimer marks a fired timer whose event was refused as spent: an arming fires at most
// once.
func (e *Engine) spendTimer(ctx context.Context, inst *instance, rec *store.Instance, t *store.Timer) {
	next := new(store.Instance)
	*next = *rec
	next.Timers = make([]store.Timer, len(rec.Timers))
	for i, x := range rec.Timers {
		if x.Transition == t.Transition && x.DueAt == t.DueAt {
			x.Spent = true
		}
		next.Timers[i] = x
	}
	err := e.commit(ctx, &store.Commit{Instances: []store.InstanceWrite{{Instance: next, ExpectVersion: rec.Version}}})
	if err != nil {
		e.log.Warn("timer: record spent timer", "instance", rec.ID, "err", err)
		return
	}
	inst.setRecord(next)
	e.timers.set(inst, next.Timers)
}

// commit writes to the store, turning store failures into ErrStore (conflicts and duplicates
// keep their own identity).
func (e *Engine) commit(ctx context.Context, c *store.Commit) error {
	if e.tracer == nil {
		return e.storeCommit(ctx, c)
	}
	ctx, span := e.tracer.Start(ctx, SpanCommit, "")
	err := e.storeCommit(ctx, c)
	info := SpanInfo{Events: len(c.Events), Instances: len(c.Instances), Outbox: len(c.Outbox), Consumed: len(c.Consumed),
		Outcome: OutcomeApplied, Err: err}
	switch {
	case errors.Is(err, store.ErrDuplicate):
		info.Outcome = OutcomeDuplicate
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrEntryPointExists):
		info.Outcome = OutcomeRefused
	case err != nil:
		info.Outcome = OutcomeError
	}
	span.End(&info)
	return err
}

func (e *Engine) storeCommit(ctx context.Context, c *store.Commit) error {
	err := e.store.Commit(ctx, c)
	if err == nil {
		return nil
	}
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrDuplicate) || errors.Is(err, store.ErrEntryPointExists) {
		return err
	}
	if e.observer != nil {
		e.observer.StoreError()
	}
	return fmt.Errorf("commit: %w: %v", ErrStore, err)
}

// retire removes a completed instance from the live set; entry points stay registered.
func (e *Engine) retire(inst *instance) {
	e.timers.set(inst, nil)
	if inst.isEntryPoint {
		return
	}
	e.mu.Lock()
	delete(e.instances, inst.ID())
	e.mu.Unlock()
}

// storeMoved says whether another process changed an instance since this copy of it: an event
// refused on a stale copy must be tried again on the stored one.
func (e *Engine) storeMoved(ctx context.Context, rec *store.Instance) bool {
	if !e.shared {
		return false
	}
	fresh, err := e.store.Instance(ctx, rec.ID)
	return err == nil && fresh.Version != rec.Version
}
