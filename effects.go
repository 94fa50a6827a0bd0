package xcomponent

import (
	"encoding/json"
	"strings"

	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

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
	cause := Event{CorrelationID: d.ev.CorrelationID, CausationID: d.ev.ID, SourceComponent: comp, TraceParent: spanTraceParent(d.span)}
	add := func(m Message) {
		m.ID = e.newID()
		m.Event.ID = m.ID
		m.Event.CorrelationID = cause.CorrelationID
		m.Event.CausationID = cause.CausationID
		m.Event.TraceParent = cause.TraceParent
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
			m.Origin = SourceHook
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
				actor: comp, source: SourceInterMachine, parentID: rec.ID, parentMachine: rec.Machine,
				entryPoint: cm.def.Name == mr.comp.def.EntryMachine && mr.comp.def.EntryMachineMode == component.EntrySingleton,
			})
			created.TraceID = spanTraceID(d.span)
			c.Instances = append(c.Instances, store.InstanceWrite{Instance: child, ExpectVersion: -1})
			c.Events = append(c.Events, created)
			fx.children = append(fx.children, child)
			fx.childRuntime = append(fx.childRuntime, mr.comp)
		}
	case component.CrossComponent:
		data := mapContext(t.ContextMapping, merged)
		if t.TargetEvent == "" {
			add(Message{Kind: msgCreate, Component: t.TargetComponent, Machine: t.TargetMachine, Data: data,
				Origin: SourceCrossComponent, Event: Event{Type: d.ev.Type}})
		} else {
			add(Message{Kind: msgBroadcast, Component: t.TargetComponent, Machine: t.TargetMachine,
				Event: Event{Type: t.TargetEvent, Payload: data}, Rules: resolveRules(t.MatchingRules, data),
				Origin: SourceCrossComponent})
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
			add(Message{Kind: msgSend, InstanceID: rec.ParentID, Event: Event{Type: np.Event, Payload: payload}, Origin: SourceParent})
		}
	}

	for _, r := range target.CascadingRules {
		payload := expandTemplates(r.Payload, next.Data)
		msg := Message{Kind: msgBroadcast, Component: r.TargetComponent, Machine: r.TargetMachine,
			State: r.TargetState, Event: Event{Type: r.Event, Payload: payload}, Origin: SourceCascade}
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
