package xcomponent

import (
	"context"
	"fmt"
	"sort"

	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

// Rule is a matching rule with the event side already resolved to a value: it holds for an
// instance when data[InstanceProperty] OP Value. It is what cross-component events carry.
type Rule struct {
	EventProperty    string             `json:"eventProperty,omitempty"`
	InstanceProperty string             `json:"instanceProperty"`
	Operator         component.Operator `json:"operator"`
	Value            any                `json:"value"`
	// Missing says the event had no value at EventProperty: the rule can never hold.
	Missing bool `json:"missing,omitempty"`
}

// compare evaluates instanceValue OP eventValue: the store's comparison, so that routing in
// memory and routing in the database agree.
func compare(instanceValue any, op component.Operator, eventValue any) bool {
	return store.CompareValues(instanceValue, string(op), eventValue)
}

// rulesPass reports whether every rule holds between an event payload and instance data.
func rulesPass(rules []*component.MatchingRule, payload, data map[string]any) bool {
	for _, r := range rules {
		ev, ok := store.LookupPath(payload, r.EventProperty)
		if !ok {
			return false
		}
		iv, ok := store.LookupPath(data, r.InstanceProperty)
		if !ok {
			return false
		}
		if !compare(iv, r.Operator, ev) {
			return false
		}
	}
	return true
}

func resolveRules(rules []*component.MatchingRule, payload map[string]any) []Rule {
	out := make([]Rule, len(rules))
	for i, r := range rules {
		v, ok := store.LookupPath(payload, r.EventProperty)
		out[i] = Rule{EventProperty: r.EventProperty, InstanceProperty: r.InstanceProperty, Operator: r.Operator, Value: v, Missing: !ok}
	}
	return out
}

func resolvedPass(rules []Rule, data map[string]any) bool {
	for _, r := range rules {
		if r.Missing {
			return false
		}
		iv, ok := store.LookupPath(data, r.InstanceProperty)
		if !ok || !compare(iv, r.Operator, r.Value) {
			return false
		}
	}
	return true
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

// sortTargets orders routed targets by instance id (UUIDv7: creation order) so that fan-outs
// are deterministic.
func sortTargets(ts []*instance) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].ID() < ts[j].ID() })
}
