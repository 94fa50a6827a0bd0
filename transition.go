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

// apply is one attempt at processing a delivery: select, hooks, merge, commit, effects.
func (e *Engine) apply(ctx context.Context, d *delivery) (Result, error) {
	start := time.Now()
	inst := d.inst
	rec := inst.record()
	if d.fresh != nil && d.fresh.Version > rec.Version {
		e.refresh(inst, d.fresh)
		rec = inst.record()
	}
	mr := inst.mr
	m := mr.def
	comp := mr.comp.def.Name
	if d.timer != nil && (rec.Status != store.StatusActive || !hasTimer(rec.Timers, d.timer)) {
		// The arming was cancelled or already fired (here or by another process): nothing
		// to do.
		return Result{}, fmt.Errorf("timer %s of instance %s: %w", d.timer.Event, rec.ID, errTimerGone)
	}
	if rec.Status != store.StatusActive {
		return Result{}, e.refuse(ctx, d, rec, fmt.Sprintf("instance %s is %s", rec.ID, rec.Status))
	}
	t, reason := e.selectTransition(m, rec, d)
	if t == nil && d.timer == nil && e.storeMoved(ctx, rec) {
		// Refused on a copy another process has changed since: try the stored one.
		return Result{}, fmt.Errorf("instance %s changed by another process: %w", rec.ID, store.ErrConflict)
	}
	if t == nil {
		if d.timer != nil {
			e.spendTimer(ctx, inst, rec, d.timer)
		}
		return Result{}, e.refuse(ctx, d, rec, reason)
	}
	// A payload merged into the data must keep it valid against the contextSchema: checked
	// before any hook runs, so that a refused event has no effect at all.
	var payload map[string]any
	if len(t.MatchingRules) == 0 && len(d.ev.Payload) > 0 {
		p, ferrs := m.ValidatePayload(d.ev.Payload)
		if len(ferrs) > 0 {
			ce := &ContextError{Machine: m.Name, Subject: fmt.Sprintf("payload of event %s for instance %s (state %s)", d.ev.Type, rec.ID, rec.State), refused: true}
			for _, f := range ferrs {
				ce.Fields = append(ce.Fields, FieldError{Field: "payload." + f.Field, Message: f.Message})
			}
			_ = e.refuse(ctx, d, rec, ce.Error())
			return Result{}, ce
		}
		payload = p
	}
	source := m.State(rec.State)
	target := m.State(t.To)
	now := e.nowMs()

	data := rec.Data
	owned := false
	var sends *sendQueue
	var notes []string // for the audit trail: what went wrong without undoing the transition
	runHooks := source.OnExit != "" || t.TriggeredMethod != "" || target.OnEntry != ""
	if runHooks {
		data = copyMap(data)
		owned = true
		sends = &sendQueue{self: rec.ID, component: comp}
		for _, h := range [...]struct {
			kind   HookKind
			method string
		}{{HookOnExit, source.OnExit}, {HookTriggered, t.TriggeredMethod}} {
			if h.method == "" {
				continue
			}
			err := e.runHook(ctx, h.kind, h.method, rec, t, d, data, sends, rec.State)
			if errors.Is(err, errNoHandler) {
				notes = append(notes, fmt.Sprintf("%s %s: no handler", h.kind, h.method))
				continue
			}
			if err != nil {
				if d.timer != nil {
					e.spendTimer(ctx, inst, rec, d.timer)
				}
				return Result{}, e.refuse(ctx, d, rec, fmt.Sprintf("%s hook %s vetoed the transition: %v", h.kind, h.method, err))
			}
		}
	}
	if len(t.MatchingRules) == 0 && len(d.ev.Payload) > 0 {
		if !owned {
			data = copyMap(data)
			owned = true
		}
		for k, v := range payload {
			data[k] = v
		}
	}
	next := new(store.Instance)
	*next = *rec
	next.State = t.To
	next.Version++
	next.UpdatedAt = now
	next.Data = data
	var hookErr error
	if target.OnEntry != "" {
		err := e.runHook(ctx, HookOnEntry, target.OnEntry, next, t, d, data, sends, t.To)
		switch {
		case errors.Is(err, errNoHandler):
			notes = append(notes, fmt.Sprintf("%s %s: no handler", HookOnEntry, target.OnEntry))
		case err != nil:
			hookErr = fmt.Errorf("onEntry hook %s: %w", target.OnEntry, err)
			notes = append(notes, hookErr.Error())
		}
	}
	if runHooks {
		// Hooks are not held to the contextSchema, but what they set must be storable on
		// every store (a webhook may answer a NUL): refuse the transition rather than fail
		// the commit as if the store were down.
		clean, ferrs := cleanData(data)
		if len(ferrs) > 0 {
			if d.timer != nil {
				e.spendTimer(ctx, inst, rec, d.timer)
			}
			ce := &ContextError{Machine: m.Name, Subject: fmt.Sprintf("data set by the hooks of %s --%s--> %s", t.From, d.ev.Type, t.To), Fields: ferrs, refused: true}
			_ = e.refuse(ctx, d, rec, ce.Error())
			return Result{}, ce
		}
		data = clean
		next.Data = data
	}
	switch target.Type {
	case component.StateFinal:
		next.Status = store.StatusCompleted
	case component.StateError:
		next.Status = store.StatusError
	}
	if next.Status == store.StatusActive {
		next.Timers = nextTimers(target, rec, t, d.timer, &d.ev, now)
	} else {
		next.Timers = nil
	}

	sc := e.scratch.Get().(*transitionScratch)
	defer func() {
		*sc = transitionScratch{}
		e.scratch.Put(sc)
	}()
	c := &sc.commit
	sc.events[0] = store.Event{
		ID: d.ev.ID, InstanceID: rec.ID, Component: comp, Machine: m.Name, Type: d.ev.Type,
		Payload: d.ev.Payload, FromState: rec.State, ToState: t.To, Data: data,
		SourceComponent: d.ev.SourceComponent, CorrelationID: d.ev.CorrelationID,
		CausationID: d.ev.CausationID, Actor: d.ev.Actor, Source: d.ev.Source,
		Seq: next.Version, PersistedAt: now,
	}
	if len(notes) > 0 {
		sc.events[0].Note = strings.Join(notes, "; ")
	}
	c.Events = sc.events[:1]
	sc.instances[0] = store.InstanceWrite{Instance: next, ExpectVersion: rec.Version}
	c.Instances = sc.instances[:1]
	if d.consumed != "" {
		sc.consumed[0] = d.consumed
		c.Consumed = sc.consumed[:1]
	}
	c.InboxID = d.inbox

	// A child of a singleton entry machine is created only if it is the first one.
	singletonChild := t.Type == component.InterMachine && t.TargetMachine == mr.comp.def.EntryMachine &&
		mr.comp.def.EntryMachineMode == component.EntrySingleton
	if singletonChild {
		// Held until the commit is done, not during the effects: they may create instances.
		mr.comp.createMu.Lock()
		if mr.comp.entryExists {
			mr.comp.createMu.Unlock()
			return Result{}, e.refuse(ctx, d, rec, fmt.Sprintf("machine %s of component %s is a singleton entry point and already has an instance", t.TargetMachine, mr.comp.def.Name))
		}
	}
	fx := effects{}
	if needsEffects(t, target, rec, m) || sends != nil {
		fx = e.buildEffects(mr, rec, next, t, target, d, sends, now, c)
	}
	err := e.commit(ctx, c)
	entryTaken := errors.Is(err, store.ErrEntryPointExists) // by another process sharing the store
	if singletonChild {
		mr.comp.entryExists = mr.comp.entryExists || err == nil || entryTaken
		mr.comp.createMu.Unlock()
	}
	if err != nil {
		if entryTaken {
			return Result{}, e.refuse(ctx, d, rec, fmt.Sprintf("machine %s of component %s is a singleton entry point and already has an instance", t.TargetMachine, mr.comp.def.Name))
		}
		if errors.Is(err, store.ErrDuplicate) {
			return Result{}, fmt.Errorf("event %s already applied to instance %s: %w (%w)", d.ev.ID, rec.ID, ErrNotAccepted, ErrDuplicate)
		}
		return Result{}, err
	}

	// Committed: make it visible, then run the effects.
	inst.setRecord(next)
	mr.update(inst, rec, next, owned)
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
		e.observer.Transition(comp, m.Name, rec.State, t.To, d.ev.Type, time.Since(start).Seconds())
	}
	e.emitTransition(rec, next, t, target, d)
	if hookErr != nil {
		e.reportHookError(next, hookErr)
	}
	for _, msg := range fx.messages {
		e.dispatch(msg)
	}
	return Result{
		Instance:      View(next, mr.publicMember, now),
		PreviousState: rec.State, NewState: t.To, EventID: d.ev.ID,
	}, nil
}

// selectTransition picks the transition for an event (semantics.md, "Select the transition").
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
