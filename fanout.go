package xcomponent

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/uuid"

	"github.com/xcomponent/xcomponent/store"
)

// BroadcastRequest asks to deliver an event to the instances of a machine.
type BroadcastRequest struct {
	Component string
	Machine   string
	Event     Event
	// State, when set, limits the broadcast to instances in that state.
	State string
}

// BroadcastResult counts a broadcast's targets and the transitions it fired.
type BroadcastResult struct {
	Matched   int `json:"matched"`
	Processed int `json:"processed"`
}

// Broadcast delivers an event to the live instances of a machine: if the machine has
// transitions on the event (from State when given) with matching rules, to the instances in
// those transitions' from-states whose data satisfy them; else to every live instance (in
// State when given). It waits for every delivery and counts those where a transition fired.
func (e *Engine) Broadcast(ctx context.Context, req BroadcastRequest) (BroadcastResult, error) {
	cr := e.componentRuntime(req.Component)
	if cr == nil {
		return BroadcastResult{}, fmt.Errorf("component %s: %w", req.Component, ErrNotFound)
	}
	if cr.machines[req.Machine] == nil {
		return BroadcastResult{}, fmt.Errorf("machine %s not found in component %s: %w", req.Machine, req.Component, ErrNotFound)
	}
	if e.manual {
		if err := e.settle(ctx); err != nil {
			return BroadcastResult{}, err
		}
	}
	ev := req.Event
	if err := cleanEvent(&ev); err != nil {
		return BroadcastResult{}, err
	}
	e.fillIDs(&ev)
	if ev.Source == "" {
		ev.Source = SourceAPI
	}
	if e.tracer != nil && ev.TraceParent == "" {
		ev.TraceParent = e.tracer.TraceParent(ctx)
	}
	m := Message{ID: ev.ID, Kind: msgBroadcast, Component: req.Component, Machine: req.Machine, State: req.State, Event: ev, Origin: SourceAPI}
	targets, _, err := e.targets(ctx, cr, m)
	if err != nil {
		return BroadcastResult{}, err
	}
	fo := fanOut{targets: targets, ev: ev}
	n := e.fanOut(ctx, &fo, nil)
	res := BroadcastResult{Matched: n.matched, Processed: n.processed}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if e.hasSubscribers() {
		e.emit(RuntimeEvent{Component: req.Component,
			Data: BroadcastCompleted{MachineName: req.Machine, Event: ev, Matched: res.Matched, Processed: res.Processed}})
	}
	return res, nil
}

// Route delivers a routed message that came from another process (a cross-component event, a
// cascade or a broadcast targeting a component hosted here) to the live instances of
// m.Component it targets, and waits for the deliveries. Each target gets it at most once even
// when m arrives again: the event id of each delivery is derived from m.ID and the instance id
// and goes through the store's inbox. m.ID must therefore be the same on every delivery of the
// message.
//
// The error wraps ErrNotFound (component or machine not hosted here) or ErrInvalidMessage (it
// can never be applied), or ErrStore, ErrBusy, ErrClosed or ctx's error when a delivery could
// not be committed: then the caller delivers the whole message again later, which reaches no
// instance twice.
func (e *Engine) Route(ctx context.Context, m Message) (BroadcastResult, error) {
	if e.closed.Load() {
		return BroadcastResult{}, ErrClosed
	}
	if m.ID == "" {
		return BroadcastResult{}, fmt.Errorf("routed message without id: %w", ErrInvalidMessage)
	}
	cr := e.componentRuntime(m.Component)
	if cr == nil {
		return BroadcastResult{}, fmt.Errorf("component %s: %w", m.Component, ErrNotFound)
	}
	machine := m.Machine
	if machine == "" {
		machine = cr.def.EntryMachine
	}
	if cr.machines[machine] == nil {
		return BroadcastResult{}, fmt.Errorf("machine %s not found in component %s: %w", machine, m.Component, ErrNotFound)
	}
	m.Machine = machine
	if m.Kind == "" {
		m.Kind = msgBroadcast
	}
	if e.tracer != nil && m.Event.TraceParent == "" {
		m.Event.TraceParent = e.tracer.TraceParent(ctx)
	}
	for _, r := range m.Rules {
		if _, ok := store.NormalOp(string(r.Operator)); !ok {
			return BroadcastResult{}, fmt.Errorf("rule on %s: unknown operator %q: %w", r.InstanceProperty, r.Operator, ErrInvalidMessage)
		}
		if r.InstanceProperty == "" {
			return BroadcastResult{}, fmt.Errorf("rule without instanceProperty: %w", ErrInvalidMessage)
		}
	}
	if e.manual {
		if err := e.settle(ctx); err != nil {
			return BroadcastResult{}, err
		}
	}
	fo, err := e.routedFanOut(ctx, cr, m)
	if err != nil {
		return BroadcastResult{}, err
	}
	n := e.fanOut(ctx, fo, nil)
	res := BroadcastResult{Matched: n.matched, Processed: n.processed}
	if n.failure != nil {
		return res, fmt.Errorf("deliver %s to %s/%s: %w", m.Event.Type, m.Component, m.Machine, n.failure)
	}
	e.emitFanOut(cr.def.Name, m, res.Matched, res.Processed)
	return res, nil
}

// dispatchRouted delivers a routed message committed by a transition here (broadcast, cascade,
// cross-component event) without waiting: the deliveries are queued behind each target's
// events, and the message is settled once the last one is processed.
func (e *Engine) dispatchRouted(ctx context.Context, cr *compRuntime, m Message) {
	fo, err := e.routedFanOut(ctx, cr, m)
	if err != nil {
		// The message stays in the outbox; it is redelivered at the next start.
		e.log.Error("routing failed", "component", cr.def.Name, "machine", m.Machine, "event", m.Event.Type, "id", m.ID, "err", err)
		return
	}
	e.fanOut(ctx, fo, func(n fanOutCount) {
		if m.ID != "" {
			e.consume(ctx, m.ID)
		}
		e.emitFanOut(cr.def.Name, m, n.matched, n.processed)
	})
}

// routeConcurrency bounds the deliveries of one routed message in flight at a time.
const routeConcurrency = 32

// fanOut is an event on its way to the targets of a routed message.
type fanOut struct {
	targets []*instance
	// fresh holds the records read from a shared store (see targets).
	fresh map[*instance]*store.Instance
	// ev is the event each target gets, with an id of its own (see event).
	ev Event
	// idempotent: each target's event id is derived from ns (the message's id) and the
	// target's id, and goes through the store's inbox, so that a message delivered again
	// reaches no instance twice (routed messages). Else (an API broadcast, which sent again
	// is a new broadcast) a single target gets ev.ID, several get a new id each.
	idempotent bool
	ns         uuid.UUID
}

// event returns the event a target gets, and the inbox id of its delivery ("" for none).
func (e *Engine) event(fo *fanOut, inst *instance) (Event, string) {
	ev := fo.ev
	switch {
	case fo.idempotent:
		ev.ID = uuid.NewSHA1(fo.ns, []byte(inst.ID())).String()
		return ev, ev.ID
	case len(fo.targets) > 1:
		ev.ID = e.newID()
	}
	return ev, ""
}

// fanOutCount is what a fan-out did: its targets, the transitions that fired, and the first
// failure worth delivering the message again for (refusals are not).
type fanOutCount struct {
	matched, processed int
	failure            error
}

func (n *fanOutCount) add(err error) {
	switch {
	case err == nil:
		n.processed++
	case errors.Is(err, ErrNotAccepted), errors.Is(err, ErrNotFound):
		// Refused by the target (or already applied to it): nothing to retry.
	case n.failure == nil:
		n.failure = err
	}
}

// routedFanOut fixes the targets of a routed message of this or another process; each gets
// an event id derived from the message id and its own id, checked through the store's inbox,
// so that a message delivered again reaches no instance twice.
func (e *Engine) routedFanOut(ctx context.Context, cr *compRuntime, m Message) (*fanOut, error) {
	targets, fresh, err := e.targets(ctx, cr, m)
	if err != nil {
		return nil, err
	}
	return &fanOut{targets: targets, fresh: fresh, ev: m.Event, idempotent: true, ns: messageSpace(m.ID)}, nil
}

// fanOut delivers an event to each target once: the one delivery path of Broadcast, Route
// and the routed messages of dispatch. When done is nil it returns the count once every
// delivery is processed: in the calling goroutine for a single target or in manual mode,
// else concurrently, routeConcurrency at a time. Otherwise (dispatch: the goroutine that
// committed a transition must not wait for other instances) the deliveries are queued
// behind each target's events, the last one processed calls done with the count, and fanOut
// returns at once (an empty count).
func (e *Engine) fanOut(ctx context.Context, fo *fanOut, done func(fanOutCount)) fanOutCount {
	n := fanOutCount{matched: len(fo.targets)}
	if done != nil {
		e.fanOutQueued(fo, n, done)
		return fanOutCount{}
	}
	switch {
	case e.manual:
		for _, inst := range fo.targets {
			ev, inbox := e.event(fo, inst)
			_, err := e.process(ctx, &delivery{inst: inst, ev: ev, routed: true, inbox: inbox, fresh: fo.fresh[inst]})
			n.add(err)
		}
	case len(fo.targets) == 1:
		inst := fo.targets[0]
		ev, inbox := e.event(fo, inst)
		_, err := e.deliver(ctx, inst, ev, true, inbox, fo.fresh[inst])
		n.add(err)
	default:
		n = e.fanOutConcurrent(ctx, fo)
	}
	return n
}

// fanOutConcurrent delivers to every target of fo concurrently, routeConcurrency at a time,
// and waits for them.
func (e *Engine) fanOutConcurrent(ctx context.Context, fo *fanOut) fanOutCount {
	var (
		n     = fanOutCount{matched: len(fo.targets)}
		mu    sync.Mutex
		wg    sync.WaitGroup
		slots = make(chan struct{}, routeConcurrency)
	)
	for _, inst := range fo.targets {
		ev, inbox := e.event(fo, inst)
		d := &delivery{inst: inst, ev: ev, routed: true, inbox: inbox, fresh: fo.fresh[inst]}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() {
				<-slots
				wg.Done()
			}()
			_, err := e.deliverWait(ctx, d)
			mu.Lock()
			n.add(err)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return n
}

// fanOutQueued queues the deliveries of fo; the last one processed calls done.
func (e *Engine) fanOutQueued(fo *fanOut, n fanOutCount, done func(fanOutCount)) {
	if len(fo.targets) == 0 {
		done(n)
		return
	}
	var (
		mu   sync.Mutex
		left = len(fo.targets)
	)
	for _, inst := range fo.targets {
		ev, inbox := e.event(fo, inst)
		d := &delivery{inst: inst, ev: ev, routed: true, inbox: inbox, fresh: fo.fresh[inst]}
		d.done = func(_ Result, err error) {
			mu.Lock()
			n.add(err)
			left--
			last, total := left == 0, n
			mu.Unlock()
			if last {
				done(total)
			}
		}
		e.enqueue(d)
	}
}

// messageSpace is the UUID namespace of the per-target event ids of a routed message.
func messageSpace(id string) uuid.UUID {
	if u, err := uuid.Parse(id); err == nil {
		return u
	}
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte(id))
}
