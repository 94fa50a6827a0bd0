package xcomponent

import (
	"fmt"
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

// countsAsEntry reports whether a record occupies the component's entry point: the
// entry-point instance, or any instance of a singleton entry machine.
func (cr *compRuntime) countsAsEntry(rec *store.Instance) bool {
	return rec.IsEntryPoint || (rec.Machine == cr.def.EntryMachine && cr.def.EntryMachineMode == component.EntrySingleton)
}

// register makes a committed record live: instance map, machine sets, indexes and timers.
func (e *Engine) register(cr *compRuntime, rec *store.Instance) (*instance, error) {
	mr := cr.machines[rec.Machine]
	if mr == nil {
		return nil, fmt.Errorf("machine %s not found in component %s", rec.Machine, cr.def.Name)
	}
	if mr.def.State(rec.State) == nil {
		return nil, fmt.Errorf("state %s not found in machine %s", rec.State, rec.Machine)
	}
	inst := &instance{isEntryPoint: rec.IsEntryPoint, mr: mr}
	inst.setRecord(rec)
	if !isLive(rec) && !rec.IsEntryPoint {
		return inst, nil
	}
	e.mu.Lock()
	if old := e.instances[rec.ID]; old != nil { // registered meanwhile (loaded on demand)
		e.mu.Unlock()
		return old, nil
	}
	e.instances[rec.ID] = inst
	e.mu.Unlock()
	if isLive(rec) {
		mr.add(inst, rec)
		e.timers.set(inst, rec.Timers)
	}
	return inst, nil
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

func (mr *machineRuntime) inStateLocked(inst *instance, state string) bool {
	if state == "" {
		return true
	}
	_, ok := mr.byState[state][inst]
	return ok
}
