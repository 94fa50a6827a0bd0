package xcomponent

import (
	"sort"
	"sync"

	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

// compRuntime is a loaded component and its live instances, per machine.
type compRuntime struct {
	def      *component.Component
	order    int
	machines map[string]*machineRuntime
	createMu sync.Mutex // serialises creations of entry-machine instances
	// entryExists: an entry-point instance (or, in singleton mode, any instance of the entry
	// machine) is registered. Guarded by createMu.
	entryExists bool
}

// machineRuntime holds the live instances of one machine, by state and by the values of the
// properties that equality matching rules look at.
type machineRuntime struct {
	def          *component.Machine
	comp         *compRuntime
	publicMember bool

	mu      sync.RWMutex
	byState map[string]map[*instance]struct{}
	// index: instance property → typed value → instances. Only properties named by an
	// equality rule targeting this machine are indexed.
	index map[string]*valueIndex
	// unindexable: instance property → instances whose value cannot be a map key (objects,
	// arrays); always checked one by one.
	unindexable map[string]map[*instance]struct{}
	count       int
}

func newCompRuntime(def *component.Component, order int) *compRuntime {
	cr := &compRuntime{def: def, order: order, machines: make(map[string]*machineRuntime)}
	for _, m := range def.StateMachines {
		cr.machines[m.Name] = &machineRuntime{
			def: m, comp: cr, publicMember: m.PublicMemberType != "",
			byState:     make(map[string]map[*instance]struct{}),
			index:       make(map[string]*valueIndex),
			unindexable: make(map[string]map[*instance]struct{}),
		}
	}
	return cr
}

func sortComponents(cs []*component.Component, by map[string]*compRuntime) {
	sort.Slice(cs, func(i, j int) bool { return by[cs[i].Name].order < by[cs[j].Name].order })
}

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
	for _, set := range mr.byState {
		for inst := range set {
			mr.indexOne(prop, inst, inst.record().Data, true)
		}
	}
}

// add puts an instance in the live sets. The caller holds no lock on mr.
func (mr *machineRuntime) add(inst *instance, rec *store.Instance) {
	mr.mu.Lock()
	defer mr.mu.Unlock()
	mr.addLocked(inst, rec)
	mr.count++
}

func (mr *machineRuntime) addLocked(inst *instance, rec *store.Instance) {
	set := mr.byState[rec.State]
	if set == nil {
		set = make(map[*instance]struct{})
		mr.byState[rec.State] = set
	}
	set[inst] = struct{}{}
	for prop := range mr.index {
		mr.indexOne(prop, inst, rec.Data, true)
	}
}

func (mr *machineRuntime) removeLocked(inst *instance, rec *store.Instance) {
	if set := mr.byState[rec.State]; set != nil {
		delete(set, inst)
	}
	for prop := range mr.index {
		mr.indexOne(prop, inst, rec.Data, false)
	}
}

// update moves an instance from its old record to its new one in the live sets; dataChanged
// says whether the data map was replaced. A record that is no longer live is removed.
func (mr *machineRuntime) update(inst *instance, old, cur *store.Instance, dataChanged bool) {
	live := isLive(cur)
	if old.State == cur.State && !dataChanged && live {
		return
	}
	mr.mu.Lock()
	defer mr.mu.Unlock()
	if !live {
		mr.removeLocked(inst, old)
		mr.count--
		return
	}
	if !dataChanged {
		if set := mr.byState[old.State]; set != nil {
			delete(set, inst)
		}
		set := mr.byState[cur.State]
		if set == nil {
			set = make(map[*instance]struct{})
			mr.byState[cur.State] = set
		}
		set[inst] = struct{}{}
		return
	}
	mr.removeLocked(inst, old)
	mr.addLocked(inst, cur)
}

// isLive reports whether an instance takes part in routing, broadcasts and timers. Completed
// entry points stay registered (to be found and refused) but are not routed to.
func isLive(rec *store.Instance) bool { return rec.Status == store.StatusActive }

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

func (mr *machineRuntime) inStateLocked(inst *instance, state string) bool {
	if state == "" {
		return true
	}
	_, ok := mr.byState[state][inst]
	return ok
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
	if state != "" {
		for inst := range mr.byState[state] {
			out = append(out, inst)
		}
		return out
	}
	for _, set := range mr.byState {
		for inst := range set {
			out = append(out, inst)
		}
	}
	return out
}
