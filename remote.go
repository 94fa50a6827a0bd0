package xcomponent

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/google/uuid"

	"github.com/xcomponent/xcomponent/store"
)

// This file is what the engine offers to processes that share its work: routing against a
// shared store, and the entry points of the distributed runtime (messages from and to other
// processes).

// ErrRelayed is what a Remote's Deliver returns when it took a message over and will mark it
// sent in the outbox itself once delivered (see Remote).
var ErrRelayed = errors.New("message taken over by the relay")

// ErrInvalidMessage: a message from another process that can never be applied (unknown
// operator in a rule, no target component …). A broker consumer dead-letters it.
var ErrInvalidMessage = errors.New("invalid message")

// Kinds of Message.
const (
	// MessageSend is an event to one instance (InstanceID, in Component when set).
	MessageSend = msgSend
	// MessageCreate asks for a new instance of Machine (default: the entry machine) in
	// Component, with Data.
	MessageCreate = msgCreate
	// MessageBroadcast routes Event to the live instances of Component / Machine (in State when
	// set): by Rules when given, else by the rules of the machine's transitions on the event,
	// else to all of them. Cross-component events, cascades and broadcasts use it.
	MessageBroadcast = msgBroadcast
)

// DecodeMessage decodes an outbox row written by an engine.
func DecodeMessage(sm store.Message) (Message, error) { return decodeMessage(sm) }

// Redeliver dispatches again a message read from the outbox of a component loaded here — one
// a process that shares the store committed but did not deliver before it died (Load does the
// same at start). It is idempotent: the delivery settles the outbox row in the commit of its
// effect, and a row already settled makes that commit fail as a duplicate, applying nothing.
func (e *Engine) Redeliver(m Message) {
	if e.closed.Load() {
		return
	}
	e.dispatch(m)
}

// Hosts says whether a component is loaded in this engine.
func (e *Engine) Hosts(component string) bool { return e.componentRuntime(component) != nil }

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

// targets fixes the list of instances a routed message goes to: from the in-memory indexes,
// or, when the store is shared with other processes, from the store itself, which sees the
// instances they created and their latest data. The list is sorted by id.
//
// fresh holds, for the instances read from the store, the record read: newer than the
// engine's copy when another process changed the instance (deliveries carry it, see
// delivery.fresh).
func (e *Engine) targets(ctx context.Context, cr *compRuntime, m Message) (out []*instance, fresh map[*instance]*store.Instance, err error) {
	if e.matcher == nil {
		t := e.routeTargets(cr, m)
		sortTargets(t)
		return t, nil, nil
	}
	mr := cr.machines[m.Machine]
	if m.Machine == "" {
		mr = cr.machines[cr.def.EntryMachine]
	}
	if mr == nil {
		return nil, nil, nil
	}
	// The same choice as routeTargets: the message's rules, else those of the machine's
	// transitions on the event (each in its from-state), else every live instance.
	type query struct {
		state string
		rules []Rule
	}
	var queries []query
	if len(m.Rules) > 0 {
		queries = append(queries, query{m.State, m.Rules})
	} else {
		for _, t := range mr.def.TransitionsOn(m.Event.Type) {
			if (m.State == "" || t.From == m.State) && len(t.MatchingRules) > 0 {
				queries = append(queries, query{t.From, resolveRules(t.MatchingRules, m.Event.Payload)})
			}
		}
		if len(queries) == 0 {
			queries = append(queries, query{m.State, nil})
		}
	}
	seen := make(map[string]bool)
	fresh = make(map[*instance]*store.Instance)
	for _, q := range queries {
		conds := make([]store.Cond, 0, len(q.rules))
		missing := false
		for _, r := range q.rules {
			missing = missing || r.Missing
			conds = append(conds, store.Cond{Path: r.InstanceProperty, Op: string(r.Operator), Value: r.Value})
		}
		if missing {
			continue // a rule without an event value never holds
		}
		recs, err := e.matcher.Match(ctx, store.MatchQuery{Component: cr.def.Name, Machine: mr.def.Name, State: q.state, Conds: conds})
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			return nil, nil, fmt.Errorf("route %s to %s/%s: %w: %v", m.Event.Type, cr.def.Name, mr.def.Name, ErrStore, err)
		}
		for i := range recs {
			rec := &recs[i]
			// Checked again with the engine's own semantics.
			if seen[rec.ID] || (q.state != "" && rec.State != q.state) || !resolvedPass(q.rules, rec.Data) {
				continue
			}
			seen[rec.ID] = true
			if inst := e.adopt(cr, rec); inst != nil {
				out = append(out, inst)
				fresh[inst] = rec
			}
		}
	}
	sortTargets(out)
	return out, fresh, nil
}

// adopt returns the live instance of a record read from the shared store, registered here if
// another process created it. A copy older than rec is refreshed by the delivery (fresh).
func (e *Engine) adopt(cr *compRuntime, rec *store.Instance) *instance {
	if inst := e.lookup(rec.ID); inst != nil {
		return inst
	}
	inst, err := e.register(cr, rec)
	if err != nil {
		e.log.Warn("routing: instance of the store skipped", "component", cr.def.Name, "instance", rec.ID, "err", err)
		return nil
	}
	return inst
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

// ensureRouteIndexes asks a shared store to index the instance properties the loaded
// components' equality rules look at (store.RouteIndexer), so that routing against the store
// stays an index lookup. A failure only makes routing slower: it is logged.
func (e *Engine) ensureRouteIndexes(ctx context.Context) {
	ix, ok := e.store.(store.RouteIndexer)
	if !e.shared || !ok {
		return
	}
	seen := map[string]bool{}
	var paths []string
	e.mu.RLock()
	for _, cr := range e.components {
		for _, mr := range cr.machines {
			mr.mu.RLock()
			for p := range mr.index {
				if !seen[p] {
					seen[p] = true
					paths = append(paths, p)
				}
			}
			mr.mu.RUnlock()
		}
	}
	e.mu.RUnlock()
	sort.Strings(paths)
	if err := ix.EnsureRouteIndexes(ctx, paths); err != nil {
		e.log.Warn("route indexes not created: routing against the store scans the live instances", "properties", paths, "err", err)
	}
}
