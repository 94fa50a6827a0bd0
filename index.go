package xcomponent

import (
	"context"
	"sort"

	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

// indexRoutedProperties decides which instance properties are indexed: those of equality
// rules in transitions, cascades and cross-component transitions of every loaded component.
func (e *Engine) indexRoutedProperties() {
	e.mu.RLock()
	defer e.mu.RUnlock()
	want := func(comp, machine string, rules []*component.MatchingRule) {
		cr := e.components[comp]
		if cr == nil {
			return
		}
		if machine == "" {
			machine = cr.def.EntryMachine
		}
		mr := cr.machines[machine]
		if mr == nil {
			return
		}
		for _, r := range rules {
			if r.Operator == component.OpEq {
				mr.addIndex(r.InstanceProperty)
			}
		}
	}
	for _, cr := range e.components {
		for _, m := range cr.def.StateMachines {
			for _, t := range m.Transitions {
				want(cr.def.Name, m.Name, t.MatchingRules)
				if t.Type == component.CrossComponent && t.TargetEvent != "" {
					want(t.TargetComponent, t.TargetMachine, t.MatchingRules)
				}
			}
			for _, s := range m.States {
				for _, c := range s.CascadingRules {
					target := c.TargetComponent
					if target == "" {
						target = cr.def.Name
					}
					want(target, c.TargetMachine, c.MatchingRules)
				}
			}
		}
	}
}

// addIndex starts indexing a property, indexing the instances already there.
func (mr *machineRuntime) addIndex(prop string) {
	mr.mu.Lock()
	defer mr.mu.Unlock()
	if _, ok := mr.index[prop]; ok {
		return
	}
	mr.index[prop] = newValueIndex()
	for _, l := range mr.byState {
		l.each(func(inst *instance) { mr.indexOne(prop, inst, inst.record().Data, true) })
	}
}

func (mr *machineRuntime) indexOne(prop string, inst *instance, data map[string]any, add bool) {
	v, ok := store.LookupPath(data, prop)
	if !ok {
		return
	}
	key, ok := indexKey(v)
	if !ok {
		set := mr.unindexable[prop]
		if add {
			if set == nil {
				set = make(map[*instance]struct{})
				mr.unindexable[prop] = set
			}
			set[inst] = struct{}{}
		} else if set != nil {
			delete(set, inst)
		}
		return
	}
	mr.index[prop].update(key, inst, add)
}

// valueIndex maps typed values to instances, with one map per kind of value so that string
// keys need no boxing.
type valueIndex struct {
	strings map[string]instSet
	numbers map[float64]instSet
	bools   map[bool]instSet
}

func newValueIndex() *valueIndex {
	return &valueIndex{strings: map[string]instSet{}, numbers: map[float64]instSet{}, bools: map[bool]instSet{}}
}

func updateSet[K comparable](m map[K]instSet, k K, inst *instance, add bool) {
	set := m[k]
	if add {
		m[k] = set.add(inst)
		return
	}
	if set = set.remove(inst); set.empty() {
		delete(m, k)
	} else {
		m[k] = set
	}
}

func (vi *valueIndex) update(key any, inst *instance, add bool) {
	switch k := key.(type) {
	case string:
		updateSet(vi.strings, k, inst, add)
	case float64:
		updateSet(vi.numbers, k, inst, add)
	case bool:
		updateSet(vi.bools, k, inst, add)
	}
}

func (vi *valueIndex) get(key any) instSet {
	switch k := key.(type) {
	case string:
		return vi.strings[k]
	case float64:
		return vi.numbers[k]
	case bool:
		return vi.bools[k]
	}
	return instSet{}
}

// instSet is a set of instances that costs no allocation while it holds one: most indexed
// values (ids, references) belong to a single instance.
type instSet struct {
	one  *instance
	many map[*instance]struct{}
}

func (s instSet) add(inst *instance) instSet {
	switch {
	case s.many != nil:
		s.many[inst] = struct{}{}
	case s.one == nil || s.one == inst:
		s.one = inst
	default:
		s.many = map[*instance]struct{}{s.one: {}, inst: {}}
		s.one = nil
	}
	return s
}

func (s instSet) remove(inst *instance) instSet {
	if s.many != nil {
		delete(s.many, inst)
		return s
	}
	if s.one == inst {
		s.one = nil
	}
	return s
}

func (s instSet) empty() bool { return s.one == nil && len(s.many) == 0 }

func (s instSet) each(f func(*instance)) {
	if s.one != nil {
		f(s.one)
	}
	for inst := range s.many {
		f(inst)
	}
}

// indexKey turns a value into a map key with typed equality: every number becomes a float64
// (42 == 42.0), strings and booleans stay themselves; other values are not indexable.
func indexKey(v any) (any, bool) {
	switch x := v.(type) {
	case string, bool:
		return x, true
	case nil:
		return nil, false
	}
	if f, ok := component.Number(v); ok {
		return f, true
	}
	return nil, false
}

// candidates returns the live instances (optionally only in state) that may satisfy rules,
// using the index for the first indexed equality rule; the caller checks the rules.
func (mr *machineRuntime) candidates(state string, rules []Rule) []*instance {
	mr.mu.RLock()
	defer mr.mu.RUnlock()
	for _, r := range rules {
		if r.Operator != component.OpEq || r.Missing {
			continue
		}
		byVal, ok := mr.index[r.InstanceProperty]
		if !ok {
			continue
		}
		var out []*instance
		if key, ok := indexKey(r.Value); ok {
			byVal.get(key).each(func(inst *instance) {
				if mr.inStateLocked(inst, state) {
					out = append(out, inst)
				}
			})
		}
		for inst := range mr.unindexable[r.InstanceProperty] {
			if mr.inStateLocked(inst, state) {
				out = append(out, inst)
			}
		}
		return out
	}
	var out []*instance
	add := func(inst *instance) { out = append(out, inst) }
	if state != "" {
		mr.byState[state].each(add)
		return out
	}
	for _, l := range mr.byState {
		l.each(add)
	}
	return out
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
