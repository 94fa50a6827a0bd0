package xcomponent

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/uuid"

	"github.com/xcomponent/xcomponent/store"
)

// fanOut delivers a routed message to each of its targets once, waits for all of them, then
// settles the message. report (optional) receives the counts.
func (e *Engine) fanOut(ctx context.Context, cr *compRuntime, m Message, report func(matched, processed int)) {
	targets, fresh, err := e.targets(ctx, cr, m)
	if err != nil {
		// The message stays in the outbox; it is redelivered at the next start.
		e.log.Error("routing failed", "component", cr.def.Name, "machine", m.Machine, "event", m.Event.Type, "id", m.ID, "err", err)
		return
	}
	matched := len(targets)
	if matched == 0 {
		e.finishFanOut(ctx, cr, m, 0, 0, report)
		return
	}
	ns, err := uuid.Parse(m.ID)
	if err != nil {
		ns = uuid.New()
	}
	var (
		mu              sync.Mutex
		processed, left = 0, matched
	)
	for _, inst := range targets {
		ev := m.Event
		ev.ID = uuid.NewSHA1(ns, []byte(inst.ID())).String()
		d := &delivery{inst: inst, ev: ev, routed: true, inbox: ev.ID, fresh: fresh[inst]}
		d.done = func(_ Result, err error) {
			mu.Lock()
			if err == nil {
				processed++
			}
			left--
			last := left == 0
			p := processed
			mu.Unlock()
			if last {
				e.finishFanOut(ctx, cr, m, matched, p, report)
			}
		}
		e.enqueue(d)
	}
}

func (e *Engine) finishFanOut(ctx context.Context, cr *compRuntime, m Message, matched, processed int, report func(matched, processed int)) {
	if m.ID != "" && m.Origin != "api" {
		e.consume(ctx, m.ID)
	}
	e.emitFanOut(cr.def.Name, m, matched, processed)
	if report != nil {
		report(matched, processed)
	}
}

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
		if err := e.Settle(ctx); err != nil {
			return BroadcastResult{}, err
		}
	}
	ev := req.Event
	if err := cleanEvent(&ev); err != nil {
		return BroadcastResult{}, err
	}
	e.fillIDs(&ev)
	if ev.Source == "" {
		ev.Source = "api"
	}
	m := Message{ID: ev.ID, Kind: msgBroadcast, Component: req.Component, Machine: req.Machine, State: req.State, Event: ev, Origin: "api"}
	targets, _, err := e.targets(ctx, cr, m)
	if err != nil {
		return BroadcastResult{}, err
	}
	res := BroadcastResult{Matched: len(targets)}
	for _, inst := range targets {
		tev := ev
		if len(targets) > 1 {
			tev.ID = e.newID()
		}
		var err error
		if e.manual {
			_, err = e.process(ctx, &delivery{inst: inst, ev: tev, routed: true})
		} else {
			_, err = e.deliver(ctx, inst, tev, true, "")
		}
		if err == nil {
			res.Processed++
		} else if ctx.Err() != nil {
			return res, ctx.Err()
		}
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
	for _, r := range m.Rules {
		if _, ok := store.NormalOp(string(r.Operator)); !ok {
			return BroadcastResult{}, fmt.Errorf("rule on %s: unknown operator %q: %w", r.InstanceProperty, r.Operator, ErrInvalidMessage)
		}
		if r.InstanceProperty == "" {
			return BroadcastResult{}, fmt.Errorf("rule without instanceProperty: %w", ErrInvalidMessage)
		}
	}
	if e.manual {
		if err := e.Settle(ctx); err != nil {
			return BroadcastResult{}, err
		}
	}
	targets, fresh, err := e.targets(ctx, cr, m)
	if err != nil {
		return BroadcastResult{}, err
	}
	ns := messageSpace(m.ID)
	res := BroadcastResult{Matched: len(targets)}
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		failure error
		// Deliveries run concurrently (different instances), a bounded number at a time.
		slots = make(chan struct{}, routeConcurrency)
	)
	outcome := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			res.Processed++
		case errors.Is(err, ErrNotAccepted), errors.Is(err, ErrNotFound):
			// Refused by the target (or already applied to it): nothing to retry.
		case failure == nil:
			failure = err
		}
	}
	for _, inst := range targets {
		ev := m.Event
		ev.ID = uuid.NewSHA1(ns, []byte(inst.ID())).String()
		d := &delivery{inst: inst, ev: ev, routed: true, inbox: ev.ID, fresh: fresh[inst]}
		if e.manual {
			_, err := e.process(ctx, d)
			outcome(err)
			continue
		}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() {
				<-slots
				wg.Done()
			}()
			_, err := e.deliverWait(ctx, d)
			outcome(err)
		}()
	}
	wg.Wait()
	if failure != nil {
		return res, fmt.Errorf("deliver %s to %s/%s: %w", m.Event.Type, m.Component, m.Machine, failure)
	}
	e.emitFanOut(cr.def.Name, m, res.Matched, res.Processed)
	return res, nil
}

// routeConcurrency bounds the deliveries of one routed message in flight at a time.
const routeConcurrency = 32

// messageSpace is the UUID namespace of the per-target event ids of a routed message.
func messageSpace(id string) uuid.UUID {
	if u, err := uuid.Parse(id); err == nil {
		return u
	}
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte(id))
}
