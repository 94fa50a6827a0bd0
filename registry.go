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

	mu sync.RWMutex
	// byState lists the live instances in each state (lists linked through the instances:
	// moving an instance to another state hashes nothing and allocates nothing).
	byState map[string]*stateList
	// index: instance property → typed value → instances. Only properties named by an
	// equality rule targeting this machine are indexed.
	index map[string]*valueIndex
	// unindexable: instance property → instances whose value cannot be a map key (objects,
	// arrays); always checked one by one.
	unindexable map[string]map[*instance]struct{}
	count       int

	keySets keySets // the key sets of its compact instances' contexts
}

func newCompRuntime(def *component.Component, order int) *compRuntime {
	cr := &compRuntime{def: def, order: order, machines: make(map[string]*machineRuntime)}
	for _, m := range def.StateMachines {
		cr.machines[m.Name] = &machineRuntime{
			def: m, comp: cr, publicMember: m.PublicMemberType != "",
			byState:     make(map[string]*stateList),
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
	if !isLive(rec) && !rec.IsEntryPoint {
		inst.setRecord(rec)
		return inst, nil
	}
	// Not yet visible to any other goroutine, and waiting for its first event: compact.
	inst.setIdleRecord(rec, e.compactIdle)
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
	mr.stateList(rec.State).push(inst)
	for prop := range mr.index {
		mr.indexOne(prop, inst, rec.Data, true)
	}
}

func (mr *machineRuntime) removeLocked(inst *instance, rec *store.Instance) {
	inst.unlistState()
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
		mr.stateList(cur.State).push(inst)
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
	l := inst.inState
	return l != nil && l == mr.byState[state]
}

// stateList returns the list of the instances in state, created when missing. mr.mu is held.
func (mr *machineRuntime) stateList(state string) *stateList {
	l := mr.byState[state]
	if l == nil {
		l = &stateList{}
		mr.byState[state] = l
	}
	return l
}

// stateList is the live instances of a machine in one state, in the order they entered it,
// linked through their prevInState and nextInState. Its machine's mu guards it.
type stateList struct {
	head, tail *instance
	n          int
}

// push appends inst, taking it out of the list it was in.
func (l *stateList) push(inst *instance) {
	inst.unlistState()
	inst.inState, inst.prevInState = l, l.tail
	if l.tail == nil {
		l.head = inst
	} else {
		l.tail.nextInState = inst
	}
	l.tail = inst
	l.n++
}

// each calls f with every instance of the list.
func (l *stateList) each(f func(*instance)) {
	if l == nil {
		return
	}
	for inst := l.head; inst != nil; inst = inst.nextInState {
		f(inst)
	}
}

// unlistState takes inst out of its state list, if it is in one.
func (inst *instance) unlistState() {
	l := inst.inState
	if l == nil {
		return
	}
	if inst.prevInState == nil {
		l.head = inst.nextInState
	} else {
		inst.prevInState.nextInState = inst.nextInState
	}
	if inst.nextInState == nil {
		l.tail = inst.prevInState
	} else {
		inst.nextInState.prevInState = inst.prevInState
	}
	inst.inState, inst.prevInState, inst.nextInState = nil, nil, nil
	l.n--
}
