package xcomponent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

// Message kinds: what a committed transition still has to deliver.
const (
	msgSend   = "send"   // an event to one instance
	msgCreate = "create" // a new instance
	// msgBroadcast routes an event to the live instances of a machine: by Rules when given,
	// else by the matching rules of the machine's transitions on the event, else to all of
	// them (in State when given). Broadcasts, cascades and cross-component events use it.
	msgBroadcast = "broadcast"
)

// Message is an outbox entry, and what travels to other processes in distributed mode.
type Message struct {
	ID         string         `json:"id"`
	Kind       string         `json:"kind"`
	Component  string         `json:"component,omitempty"` // target component ("" = wherever the instance is)
	Machine    string         `json:"machine,omitempty"`
	State      string         `json:"state,omitempty"`
	InstanceID string         `json:"instanceId,omitempty"`
	Event      Event          `json:"event"`
	Data       map[string]any `json:"data,omitempty"`
	Rules      []Rule         `json:"rules,omitempty"`
	// Origin says which effect produced it (hook, cascade, parent, cross_component …), for
	// the runtime events that report it.
	Origin           string `json:"origin,omitempty"`
	ParentID         string `json:"parentId,omitempty"`
	ParentMachine    string `json:"parentMachine,omitempty"`
	SourceComponent  string `json:"sourceComponent,omitempty"`
	SourceInstanceID string `json:"sourceInstanceId,omitempty"`
}

func decodeMessage(sm store.Message) (Message, error) {
	var m Message
	if err := json.Unmarshal(sm.Body, &m); err != nil {
		return Message{}, fmt.Errorf("decode outbox message %s: %w", sm.ID, err)
	}
	m.ID = sm.ID
	return m, nil
}

// effects are what a transition produces besides its own record.
type effects struct {
	children     []*store.Instance
	childRuntime []*compRuntime
	messages     []Message
}

func needsEffects(t *component.Transition, target *component.State, rec *store.Instance, m *component.Machine) bool {
	return t.Type == component.InterMachine || t.Type == component.CrossComponent ||
		len(target.CascadingRules) > 0 ||
		(rec.ParentID != "" && (t.NotifyParent != nil || (m.ParentLink != nil && m.ParentLink.Enabled && m.ParentLink.OnStateChange != "")))
}

// buildEffects adds a transition's effects to its commit: child instances and their creation
// events, and outbox messages for everything delivered later.
func (e *Engine) buildEffects(mr *machineRuntime, rec, next *store.Instance, t *component.Transition, target *component.State, d *delivery, sends *sendQueue, now int64, c *store.Commit) effects {
	var fx effects
	comp := mr.comp.def.Name
	// cause is the template of every event this transition produces.
	cause := Event{CorrelationID: d.ev.CorrelationID, CausationID: d.ev.ID, SourceComponent: comp}
	add := func(m Message) {
		m.ID = e.newID()
		m.Event.ID = m.ID
		m.Event.CorrelationID = cause.CorrelationID
		m.Event.CausationID = cause.CausationID
		if m.Event.Source == "" {
			m.Event.Source = m.Origin
		}
		if m.Event.Actor == "" {
			m.Event.Actor = comp
		}
		m.SourceComponent = comp
		m.SourceInstanceID = rec.ID
		body, err := json.Marshal(m)
		if err != nil {
			e.log.Error("effect dropped: not encodable", "instance", rec.ID, "kind", m.Kind, "err", err)
			return
		}
		c.Outbox = append(c.Outbox, store.Message{ID: m.ID, Component: comp, Kind: m.Kind, Body: body, CreatedAt: now})
		fx.messages = append(fx.messages, m)
	}

	if sends != nil {
		for _, m := range sends.msgs {
			m.Origin = "hook"
			if m.Kind == msgSend && m.Component == comp {
				m.Component = ""
			}
			add(m)
		}
	}

	// merged is what contextMapping reads: the data with the payload over it.
	merged := next.Data
	if len(t.MatchingRules) > 0 && len(d.ev.Payload) > 0 {
		merged = copyMap(next.Data)
		for k, v := range d.ev.Payload {
			merged[k] = v
		}
	}
	switch t.Type {
	case component.InterMachine:
		cm := mr.comp.machines[t.TargetMachine]
		if cm != nil {
			child, created := e.newInstanceRecord(mr.comp, cm, mapContext(t.ContextMapping, merged), now, creation{
				causationID: d.ev.ID, correlationID: d.ev.CorrelationID, trigger: d.ev.Type,
				actor: comp, source: "inter_machine", parentID: rec.ID, parentMachine: rec.Machine,
				entryPoint: cm.def.Name == mr.comp.def.EntryMachine && mr.comp.def.EntryMachineMode == component.EntrySingleton,
			})
			c.Instances = append(c.Instances, store.InstanceWrite{Instance: child, ExpectVersion: -1})
			c.Events = append(c.Events, created)
			fx.children = append(fx.children, child)
			fx.childRuntime = append(fx.childRuntime, mr.comp)
		}
	case component.CrossComponent:
		data := mapContext(t.ContextMapping, merged)
		if t.TargetEvent == "" {
			add(Message{Kind: msgCreate, Component: t.TargetComponent, Machine: t.TargetMachine, Data: data,
				Origin: "cross_component", Event: Event{Type: d.ev.Type}})
		} else {
			add(Message{Kind: msgBroadcast, Component: t.TargetComponent, Machine: t.TargetMachine,
				Event: Event{Type: t.TargetEvent, Payload: data}, Rules: resolveRules(t.MatchingRules, data),
				Origin: "cross_component"})
		}
	}

	if rec.ParentID != "" {
		m := mr.def
		var np *component.NotifyParent
		switch {
		case t.NotifyParent != nil:
			np = t.NotifyParent
		case m.ParentLink != nil && m.ParentLink.Enabled && m.ParentLink.OnStateChange != "":
			np = &component.NotifyParent{Event: m.ParentLink.OnStateChange, IncludeState: true}
		}
		if np != nil && np.Event != "" {
			payload := map[string]any{"childInstanceId": rec.ID, "childMachine": rec.Machine, "previousState": rec.State}
			if np.IncludeState {
				payload["newState"] = next.State
			}
			if np.IncludeContext {
				payload["childContext"] = next.Data
			}
			add(Message{Kind: msgSend, InstanceID: rec.ParentID, Event: Event{Type: np.Event, Payload: payload}, Origin: "parent"})
		}
	}

	for _, r := range target.CascadingRules {
		payload := expandTemplates(r.Payload, next.Data)
		msg := Message{Kind: msgBroadcast, Component: r.TargetComponent, Machine: r.TargetMachine,
			State: r.TargetState, Event: Event{Type: r.Event, Payload: payload}, Origin: "cascade"}
		if msg.Component == "" {
			msg.Component = comp
		}
		if len(r.MatchingRules) > 0 {
			msg.Rules = resolveRules(r.MatchingRules, payload)
		}
		add(msg)
	}
	return fx
}

// mapContext applies a contextMapping (target key → source dot path) to data; no mapping
// means a copy of everything.
func mapContext(mapping map[string]string, data map[string]any) map[string]any {
	if len(mapping) == 0 {
		return copyMap(data)
	}
	out := make(map[string]any, len(mapping))
	for key, path := range mapping {
		if v, ok := store.LookupPath(data, path); ok {
			out[key] = v
		}
	}
	return out
}

// expandTemplates replaces whole-string "{{path}}" values by the value at path in data,
// keeping its type; maps and lists are expanded recursively.
func expandTemplates(payload map[string]any, data map[string]any) map[string]any {
	if payload == nil {
		return map[string]any{}
	}
	out := make(map[string]any, len(payload))
	for k, v := range payload {
		if val, ok := expandValue(v, data); ok {
			out[k] = val
		}
	}
	return out
}

// expandValue expands one value; a template whose path is missing has no value (its key is
// left out, as contextMapping does; in a list it becomes null).
func expandValue(v any, data map[string]any) (any, bool) {
	switch x := v.(type) {
	case string:
		s := strings.TrimSpace(x)
		if strings.HasPrefix(s, "{{") && strings.HasSuffix(s, "}}") && strings.Count(s, "{{") == 1 {
			path := strings.TrimSpace(s[2 : len(s)-2])
			path = strings.TrimPrefix(path, "context.")
			return store.LookupPath(data, path)
		}
		return x, true
	case map[string]any:
		return expandTemplates(x, data), true
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i], _ = expandValue(x[i], data)
		}
		return out, true
	}
	return v, true
}

// dispatch delivers a committed message: locally when the target is here, else through the
// Remote. It runs in the goroutine that committed the transition, message after message, so
// that effects happen in the order they were produced (a creation before the cascade that
// targets the new instance). Events are queued, not awaited; the message is settled when its
// effect commits.
func (e *Engine) dispatch(m Message) {
	ctx := e.baseCtx
	switch m.Kind {
	case msgSend:
		inst := e.lookupOrLoad(ctx, m.InstanceID)
		if inst == nil || (m.Component != "" && inst.mr.comp.def.Name != m.Component) {
			if m.Component != "" && e.componentRuntime(m.Component) == nil && e.remote != nil {
				e.forward(ctx, m)
				return
			}
			e.log.Warn("event to unknown instance dropped", "instance", m.InstanceID, "event", m.Event.Type, "origin", m.Origin)
			e.consume(ctx, m.ID)
			return
		}
		e.enqueue(&delivery{inst: inst, ev: m.Event, consumed: m.ID})
	case msgCreate:
		cr := e.componentRuntime(m.Component)
		if cr == nil {
			e.forward(ctx, m)
			return
		}
		e.createFromMessage(ctx, cr, m)
	case msgBroadcast:
		cr := e.componentRuntime(m.Component)
		if cr == nil {
			e.forward(ctx, m)
			return
		}
		e.fanOut(ctx, cr, m, nil)
	default:
		e.log.Error("outbox: unknown message kind dropped", "id", m.ID, "kind", m.Kind)
		e.consume(ctx, m.ID)
	}
}

func (e *Engine) forward(ctx context.Context, m Message) {
	if e.remote == nil {
		e.log.Warn("message for a component that is not loaded dropped", "component", m.Component, "kind", m.Kind, "origin", m.Origin)
		e.consume(ctx, m.ID)
		return
	}
	err := e.remote.Deliver(ctx, m)
	switch {
	case errors.Is(err, ErrRelayed): // the relay marks it sent once delivered
	case err != nil:
		// The message stays in the outbox; it is redelivered at the next start.
		e.log.Error("remote delivery failed", "component", m.Component, "kind", m.Kind, "id", m.ID, "err", err)
		return
	default:
		e.consume(ctx, m.ID)
	}
	if m.Origin == "cross_component" {
		e.emit(RuntimeEvent{Component: m.SourceComponent, InstanceID: m.SourceInstanceID, Data: CrossComponentSent{
			Delivery: CrossForwarded, TargetComponent: m.Component, TargetMachine: m.Machine, SourceComponent: m.SourceComponent,
			Event: m.Event, MessageKind: m.Kind}})
	}
}

// createFromMessage creates the instance a message asks for, settling the message in the same
// commit so that a redelivery cannot create it twice.
func (e *Engine) createFromMessage(ctx context.Context, cr *compRuntime, m Message) {
	machine := m.Machine
	if machine == "" {
		machine = cr.def.EntryMachine
	}
	mr := cr.machines[machine]
	if mr == nil {
		e.log.Warn("create for unknown machine dropped", "component", cr.def.Name, "machine", machine)
		e.consume(ctx, m.ID)
		return
	}
	singleton := machine == cr.def.EntryMachine && cr.def.EntryMachineMode == component.EntrySingleton
	if singleton {
		cr.createMu.Lock()
		defer cr.createMu.Unlock()
		if cr.entryExists {
			e.log.Warn("create refused: singleton exists", "component", cr.def.Name, "machine", machine)
			e.consume(ctx, m.ID)
			return
		}
	}
	// The message id becomes the creation event's id: a redelivered message cannot create a
	// second instance (the event id is unique).
	rec, created := e.newInstanceRecord(cr, mr, copyMap(m.Data), e.nowMs(), creation{
		eventID: m.ID, causationID: m.Event.CausationID, correlationID: m.Event.CorrelationID,
		trigger: m.Event.Type, actor: m.Event.Actor, source: m.Origin, sourceComponent: m.SourceComponent,
		parentID: m.ParentID, parentMachine: m.ParentMachine, entryPoint: singleton,
	})
	c := &store.Commit{
		Events:    []store.Event{created},
		Instances: []store.InstanceWrite{{Instance: rec, ExpectVersion: -1}},
		Consumed:  []string{m.ID},
	}
	if err := e.commit(ctx, c); err != nil {
		if errors.Is(err, store.ErrEntryPointExists) { // another process created it first
			e.log.Warn("create refused: singleton exists", "component", cr.def.Name, "machine", machine)
			cr.entryExists = true // createMu is held
			e.consume(ctx, m.ID)
			return
		}
		e.log.Error("create from message", "component", cr.def.Name, "machine", machine, "err", err)
		return
	}
	if _, err := e.register(cr, rec); err != nil {
		e.log.Error("register created instance", "instance", rec.ID, "err", err)
		return
	}
	if singleton {
		cr.entryExists = true // createMu is held
	}
	e.emitCreated(rec)
	if m.Origin == "cross_component" {
		e.emit(RuntimeEvent{Component: m.SourceComponent, InstanceID: m.SourceInstanceID, Data: CrossComponentSent{
			Delivery: CrossCreated, TargetComponent: cr.def.Name, TargetMachine: machine, SourceComponent: m.SourceComponent,
			Event: m.Event, CreatedInstanceID: rec.ID}})
	}
}

// routeTargets fixes the list of instances a routed message goes to.
func (e *Engine) routeTargets(cr *compRuntime, m Message) []*instance {
	mr := cr.machines[m.Machine]
	if m.Machine == "" {
		mr = cr.machines[cr.def.EntryMachine]
	}
	if mr == nil {
		return nil
	}
	if len(m.Rules) > 0 {
		var out []*instance
		for _, inst := range mr.candidates(m.State, m.Rules) {
			rec := inst.record()
			if isLive(rec) && resolvedPass(m.Rules, rec.Data) {
				out = append(out, inst)
			}
		}
		return out
	}
	// No rules of its own: route by the rules of the machine's transitions on the event.
	routed := 0
	for _, t := range mr.def.TransitionsOn(m.Event.Type) {
		if (m.State == "" || t.From == m.State) && len(t.MatchingRules) > 0 {
			routed++
		}
	}
	if routed == 0 {
		return mr.candidates(m.State, nil)
	}
	var seen map[*instance]bool // only needed when several transitions route
	if routed > 1 {
		seen = make(map[*instance]bool)
	}
	var out []*instance
	for _, t := range mr.def.TransitionsOn(m.Event.Type) {
		if (m.State != "" && t.From != m.State) || len(t.MatchingRules) == 0 {
			continue
		}
		rules := resolveRules(t.MatchingRules, m.Event.Payload)
		for _, inst := range mr.candidates(t.From, rules) {
			if seen[inst] {
				continue
			}
			rec := inst.record()
			if rec.State == t.From && resolvedPass(rules, rec.Data) {
				if seen != nil {
					seen[inst] = true
				}
				out = append(out, inst)
			}
		}
	}
	return out
}

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
