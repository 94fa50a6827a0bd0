package xcomponent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

// delivery is one event on its way to one instance.
type delivery struct {
	inst *instance
	ev   Event
	// routed: delivered by routing (broadcast, cascade, cross-component): only transitions
	// whose matching rules pass are candidates.
	routed bool
	// consumed is the outbox message this delivery settles, committed with its effect.
	consumed string
	// inbox makes the delivery idempotent (fan-out deliveries of one outbox message).
	inbox string
	// timer is the arming that fired, for timer deliveries.
	timer *store.Timer
	// fresh is the instance's record as a timer claim read it from the store: newer than the
	// engine's when another process changed the instance.
	fresh *store.Instance
	// done, when set, receives the outcome.
	done func(Result, error)
	// state arbitrates between a waiting caller that gives up and the goroutine that takes
	// the delivery from the queue: exactly one of them wins (deliveryQueued → taken or
	// cancelled), so an event whose caller was told it failed is never applied.
	state atomic.Int32
}

const (
	deliveryQueued int32 = iota
	deliveryTaken
	deliveryCancelled
)

// maxConflictRetries bounds how often an event is retried after another writer changed the
// instance first. Retries wait a little longer each time (jittered, capped at
// maxConflictWait), so that writers contending for one instance fall out of step; a process
// that keeps losing to a busy one keeps trying until the request's deadline or this bound.
const (
	maxConflictRetries = 2000
	maxConflictWait    = 20 * time.Millisecond
)

// Send delivers an event to one instance and waits for the outcome: the transition it fired,
// or an error wrapping ErrNotAccepted (with the reason), ErrNotFound or ErrStore. The payload
// map must not be modified after the call.
func (e *Engine) Send(ctx context.Context, instanceID string, ev Event) (Result, error) {
	if e.closed.Load() {
		return Result{}, ErrClosed
	}
	if err := cleanEvent(&ev); err != nil {
		return Result{}, err
	}
	inst := e.lookupOrLoad(ctx, instanceID)
	if inst == nil {
		return Result{}, e.missingInstance(ctx, instanceID)
	}
	// An event that comes with its own id (a command redelivered by a broker, a retried
	// request) is applied at most once: its id goes through the store's inbox.
	inbox := ev.ID
	e.fillIDs(&ev)
	if ev.Source == "" {
		ev.Source = "api"
	}
	if e.manual {
		if err := e.Settle(ctx); err != nil {
			return Result{}, err
		}
		return e.process(ctx, &delivery{inst: inst, ev: ev, inbox: inbox})
	}
	return e.deliver(ctx, inst, ev, false, inbox)
}

// deliver processes an event in the calling goroutine when the instance is idle (the
// delivery then stays on this goroutine's stack), else queues it and waits.
func (e *Engine) deliver(ctx context.Context, inst *instance, ev Event, routed bool, inbox string) (Result, error) {
	inst.mu.Lock()
	if !inst.running {
		inst.running = true
		inst.mu.Unlock()
		d := delivery{inst: inst, ev: ev, routed: routed, inbox: inbox}
		e.addPending(1)
		res, err := e.process(ctx, &d)
		e.release(inst)
		e.addPending(-1)
		return res, err
	}
	inst.mu.Unlock()
	return e.deliverWait(ctx, &delivery{inst: inst, ev: ev, routed: routed, inbox: inbox})
}

// deliverWait processes d in the calling goroutine when its instance is idle, else queues it
// behind the instance's other events and waits.
func (e *Engine) deliverWait(ctx context.Context, d *delivery) (Result, error) {
	inst := d.inst
	inst.mu.Lock()
	if !inst.running {
		inst.running = true
		inst.mu.Unlock()
		e.addPending(1)
		res, err := e.process(ctx, d)
		e.release(inst)
		e.addPending(-1)
		return res, err
	}
	inst.mu.Unlock()
	type outcome struct {
		res Result
		err error
	}
	ch := make(chan outcome, 1)
	d.done = func(r Result, err error) { ch <- outcome{r, err} }
	e.enqueue(d)
	select {
	case o := <-ch:
		return o.res, o.err
	case <-ctx.Done():
		if d.state.CompareAndSwap(deliveryQueued, deliveryCancelled) {
			return Result{}, fmt.Errorf("event %s to instance %s: given up while queued, not applied: %w", d.ev.Type, inst.ID(), ctx.Err())
		}
		o := <-ch // already being processed: its outcome is the answer
		return o.res, o.err
	}
}

// release ends a turn of processing on inst: a drainer takes over if events arrived meanwhile.
func (e *Engine) release(inst *instance) {
	inst.mu.Lock()
	if len(inst.queue) == 0 {
		inst.running = false
		inst.mu.Unlock()
		return
	}
	inst.mu.Unlock()
	e.wg.Add(1)
	go e.drain(inst)
}

// enqueue queues d for asynchronous processing.
func (e *Engine) enqueue(d *delivery) {
	e.addPending(1)
	if e.manual {
		e.fifoMu.Lock()
		e.fifo = append(e.fifo, d)
		e.fifoMu.Unlock()
		return
	}
	inst := d.inst
	inst.mu.Lock()
	inst.queue = append(inst.queue, d)
	if inst.running {
		inst.mu.Unlock()
		return
	}
	inst.running = true
	inst.mu.Unlock()
	e.wg.Add(1)
	go e.drain(inst)
}

// drain processes an instance's queue until it is empty.
func (e *Engine) drain(inst *instance) {
	defer e.wg.Done()
	for {
		inst.mu.Lock()
		if len(inst.queue) == 0 {
			inst.running = false
			inst.mu.Unlock()
			return
		}
		d := inst.queue[0]
		inst.queue[0] = nil
		inst.queue = inst.queue[1:]
		inst.mu.Unlock()
		if !d.state.CompareAndSwap(deliveryQueued, deliveryTaken) {
			e.addPending(-1) // its caller gave up
			continue
		}
		res, err := e.process(e.baseCtx, d)
		if d.done != nil {
			d.done(res, err)
		}
		e.addPending(-1)
	}
}

// settleLimit bounds one Settle call, so that a zero-delay auto loop ends with an error.
const settleLimit = 1_000_000

// Settle processes, in manual mode, every queued event and every timer already due, until
// nothing is left. In the normal mode it is WaitIdle.
func (e *Engine) Settle(ctx context.Context) error {
	if !e.manual {
		return e.WaitIdle(ctx)
	}
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if n == settleLimit {
			return fmt.Errorf("settle: still busy after %d deliveries (an auto or timeout transition looping without delay?)", n)
		}
		e.fifoMu.Lock()
		if len(e.fifo) == 0 {
			e.fifoMu.Unlock()
			if e.timers.fireDue() > 0 {
				continue
			}
			return nil
		}
		d := e.fifo[0]
		e.fifo[0] = nil
		e.fifo = e.fifo[1:]
		e.fifoMu.Unlock()
		if !d.state.CompareAndSwap(deliveryQueued, deliveryTaken) {
			e.addPending(-1)
			continue
		}
		res, err := e.process(ctx, d)
		if d.done != nil {
			d.done(res, err)
		}
		e.addPending(-1)
	}
}

func (e *Engine) missingInstance(ctx context.Context, id string) error {
	rec, err := e.store.Instance(ctx, id)
	if err == nil && rec.Status != store.StatusActive {
		return fmt.Errorf("instance %s is %s: %w", id, rec.Status, ErrNotAccepted)
	}
	return fmt.Errorf("instance %s not found: %w", id, ErrNotFound)
}

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

func (e *Engine) runHook(ctx context.Context, kind HookKind, method string, rec *store.Instance, t *component.Transition, d *delivery, data map[string]any, sends *sendQueue, state string) error {
	h := &Hook{
		Kind: kind, Method: method, Component: rec.Component, Machine: rec.Machine,
		InstanceID: rec.ID, State: state, From: t.From, To: t.To, Event: d.ev, Data: data, Send: sends,
	}
	fn := e.hook(method)
	if fn == nil {
		fn = e.fallback
	}
	if fn == nil {
		if e.missing != nil {
			e.missing(h)
		}
		return errNoHandler
	}
	return safeHook(ctx, fn, h)
}

// errNoHandler: a hook method has no handler. It does nothing, and the audit trail says so.
var errNoHandler = errors.New("no handler")

// safeHook runs a hook, turning a panic into an error.
func safeHook(ctx context.Context, fn HookFunc, h *Hook) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return fn(ctx, h)
}

func (e *Engine) reportHookError(rec *store.Instance, err error) {
	e.log.Warn("hook error", "component", rec.Component, "machine", rec.Machine, "instance", rec.ID, "err", err)
	if e.observer != nil {
		e.observer.HookError(rec.Component, rec.Machine)
	}
	e.emit(RuntimeEvent{Component: rec.Component, InstanceID: rec.ID,
		Data: HookError{InstanceID: rec.ID, MachineName: rec.Machine, State: rec.State, Error: err.Error()}})
}
