package xcomponent

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/xcomponent/xcomponent/store"
)

// instance is a live instance: its committed record and its mailbox.
type instance struct {
	mr *machineRuntime

	// rec is the committed record. Records are immutable: a transition stores a new one.
	// The store may share the same pointer. It is nil while the instance is idle and kept
	// compact in cold instead (compact.go); one of the two is always set.
	rec  atomic.Pointer[store.Instance]
	cold atomic.Pointer[coldRecord]

	mu sync.Mutex // guards head, tail and running
	// head and tail are the queued deliveries, in arrival order (linked by next): two
	// pointers rather than a slice keep an idle instance small.
	head, tail *delivery
	running    bool // a goroutine is processing this instance's queue

	isEntryPoint bool
	timersArmed  atomic.Bool // the timer queue holds armings of this instance

	// inState is the list of its machine's instances in its state (nil when not live), and
	// prevInState, nextInState its neighbours there; guarded by the machine's mu.
	inState                  *stateList
	prevInState, nextInState *instance
}

// ID returns the instance id.
func (inst *instance) ID() string {
	for {
		if r := inst.rec.Load(); r != nil {
			return r.ID
		}
		if c := inst.cold.Load(); c != nil {
			return c.id
		}
	}
}

// record returns the committed record; read-only. The record of a compact instance is
// rebuilt for the caller (and not kept: reading an idle instance leaves it compact).
func (inst *instance) record() *store.Instance {
	// setRecord stores rec before clearing cold, and compaction stores cold before clearing
	// rec: one of them is set whenever the other is seen nil, and the loop ends.
	for {
		if r := inst.rec.Load(); r != nil {
			return r
		}
		if c := inst.cold.Load(); c != nil {
			return c.record(inst.mr)
		}
	}
}

// timerState returns whether the instance is live and its timers, without rebuilding the
// record of a compact instance.
func (inst *instance) timerState() (live bool, timers []store.Timer) {
	for {
		if r := inst.rec.Load(); r != nil {
			return isLive(r), r.Timers
		}
		if c := inst.cold.Load(); c != nil {
			return c.status == store.StatusActive, c.timers
		}
	}
}

// setRecord makes rec the committed record (the instance is no longer compact).
func (inst *instance) setRecord(rec *store.Instance) {
	inst.rec.Store(rec)
	if inst.cold.Load() != nil {
		inst.cold.Store(nil)
	}
}

// setIdleRecord makes rec the committed record of an instance that is not processing
// anything, kept compact unless the store keeps the record anyway or it cannot be compacted.
func (inst *instance) setIdleRecord(rec *store.Instance, compact bool) {
	if compact {
		if c := compactRecord(inst.mr, rec); c != nil {
			inst.cold.Store(c)
			inst.rec.Store(nil)
			return
		}
	}
	inst.setRecord(rec)
}

// Get returns an instance, live or not.
func (e *Engine) Get(ctx context.Context, id string) (Instance, error) {
	if inst := e.lookup(id); inst != nil {
		return View(inst.record(), inst.mr.publicMember, e.nowMs()), nil
	}
	rec, err := e.store.Instance(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Instance{}, fmt.Errorf("instance %s not found: %w", id, ErrNotFound)
	}
	if err != nil {
		return Instance{}, fmt.Errorf("instance %s: %w: %v", id, ErrStore, err)
	}
	return View(&rec, e.publicMember(rec.Component, rec.Machine), e.nowMs()), nil
}

func (e *Engine) publicMember(comp, machine string) bool {
	if cr := e.componentRuntime(comp); cr != nil {
		if mr := cr.machines[machine]; mr != nil {
			return mr.publicMember
		}
	}
	return false
}

// Live returns the live instances of a component (all components when empty), optionally of
// one machine. Completed instances are in the store (Search).
func (e *Engine) Live(component, machine string) []Instance {
	e.mu.RLock()
	insts := make([]*instance, 0, len(e.instances))
	for _, inst := range e.instances {
		if (component == "" || inst.mr.comp.def.Name == component) && (machine == "" || inst.mr.def.Name == machine) {
			insts = append(insts, inst)
		}
	}
	e.mu.RUnlock()
	now := e.nowMs()
	out := make([]Instance, len(insts))
	for i, inst := range insts {
		out[i] = View(inst.record(), inst.mr.publicMember, now)
	}
	sortInstances(out)
	return out
}

// InstanceCount returns how many instances are live.
func (e *Engine) InstanceCount() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return len(e.instances)
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// StateCount is how many live instances of a machine are in a state.
type StateCount struct {
	Component string `json:"componentName"`
	Machine   string `json:"machineName"`
	State     string `json:"state"`
	Count     int    `json:"count"`
}

// StateCounts counts the live instances per component, machine and state, cheaply (metrics,
// dashboard diagrams).
func (e *Engine) StateCounts() []StateCount {
	e.mu.RLock()
	crs := make([]*compRuntime, 0, len(e.components))
	for _, cr := range e.components {
		crs = append(crs, cr)
	}
	e.mu.RUnlock()
	var out []StateCount
	for _, cr := range crs {
		for _, m := range cr.def.StateMachines {
			mr := cr.machines[m.Name]
			mr.mu.RLock()
			for _, s := range m.States {
				if l := mr.byState[s.Name]; l != nil && l.n > 0 {
					out = append(out, StateCount{Component: cr.def.Name, Machine: m.Name, State: s.Name, Count: l.n})
				}
			}
			mr.mu.RUnlock()
		}
	}
	return out
}

func sortInstances(is []Instance) {
	sort.Slice(is, func(i, j int) bool {
		if is[i].CreatedAt != is[j].CreatedAt {
			return is[i].CreatedAt < is[j].CreatedAt
		}
		return is[i].ID < is[j].ID
	})
}

// Search returns a page of the stored instances matching q, live or not, as views (the
// store's own errors, such as store.ErrBadCursor, are wrapped), and the cursor of the next
// page ("" after the last).
func (e *Engine) Search(ctx context.Context, q store.Query) ([]Instance, string, error) {
	recs, next, err := e.store.Search(ctx, q)
	if err != nil {
		return nil, "", fmt.Errorf("search instances: %w", err)
	}
	now := e.nowMs()
	out := make([]Instance, len(recs))
	for i := range recs {
		out[i] = View(&recs[i], e.publicMember(recs[i].Component, recs[i].Machine), now)
	}
	return out, next, nil
}
