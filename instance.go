package xcomponent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

// instance is a live instance: its committed record and its mailbox.
type instance struct {
	mr *machineRuntime

	// rec is the committed record. Records are immutable: a transition stores a new one.
	// The store may share the same pointer.
	rec atomic.Pointer[store.Instance]

	mu      sync.Mutex // guards queue and running
	queue   []*delivery
	running bool // a goroutine is processing this instance's queue

	isEntryPoint bool
	timersArmed  atomic.Bool // the timer queue holds armings of this instance
}

// ID returns the instance id.
func (inst *instance) ID() string { return inst.rec.Load().ID }

// record returns the committed record; read-only.
func (inst *instance) record() *store.Instance { return inst.rec.Load() }

func (inst *instance) setRecord(rec *store.Instance) { inst.rec.Store(rec) }

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

// CreateRequest asks for a new instance.
type CreateRequest struct {
	Component string
	// Machine defaults to the component's entry machine.
	Machine string
	Data    map[string]any
	// Validate enforces the machine's contextSchema (required fields, types, defaults); the
	// API sets it.
	Validate bool
	// Event carries the ids and actor of the request; its Type is recorded as the trigger.
	Event Event
	// Parent links the new instance to a parent instance.
	ParentID, ParentMachine string
	// InstanceID, when set, is the new instance's id (a distributed command fixes it before
	// routing the command to the instance's partition); generated when empty.
	InstanceID string
}

// Create creates an instance in its machine's initial state and arms that state's timers.
// The initial state's onEntry hook is not run.
func (e *Engine) Create(ctx context.Context, req CreateRequest) (Instance, error) {
	if e.closed.Load() {
		return Instance{}, ErrClosed
	}
	cr := e.componentRuntime(req.Component)
	if cr == nil {
		return Instance{}, fmt.Errorf("component %s: %w", req.Component, ErrNotFound)
	}
	data, ferrs := cleanData(req.Data)
	if len(ferrs) > 0 {
		return Instance{}, &ContextError{Subject: "context", Fields: ferrs}
	}
	req.Data = data
	if err := cleanEvent(&req.Event); err != nil {
		return Instance{}, err
	}
	if e.manual {
		if err := e.Settle(ctx); err != nil {
			return Instance{}, err
		}
	}
	inst, err := e.create(ctx, cr, req, false)
	if err != nil {
		return Instance{}, err
	}
	return View(inst.record(), inst.mr.publicMember, e.nowMs()), nil
}

func (e *Engine) create(ctx context.Context, cr *compRuntime, req CreateRequest, entryPoint bool) (*instance, error) {
	def := cr.def
	machine := req.Machine
	if machine == "" {
		machine = def.EntryMachine
		if machine == "" {
			return nil, fmt.Errorf("component %s has no entryMachine: machineName is required", def.Name)
		}
	}
	mr := cr.machines[machine]
	if mr == nil {
		return nil, fmt.Errorf("machine %s not found in component %s: %w", machine, def.Name, ErrNotFound)
	}
	data := req.Data
	if req.Validate {
		clean, ferrs := mr.def.ValidateContext(data)
		if len(ferrs) > 0 {
			ce := &ContextError{Machine: machine}
			for _, f := range ferrs {
				ce.Fields = append(ce.Fields, FieldError(f))
			}
			return nil, ce
		}
		data = clean
	} else {
		data = copyMap(data)
	}
	isEntry := machine == def.EntryMachine
	singleton := isEntry && def.EntryMachineMode == component.EntrySingleton
	if entryPoint || singleton {
		cr.createMu.Lock()
		defer cr.createMu.Unlock()
		if singleton && cr.entryExists {
			return nil, fmt.Errorf("machine %s of component %s is a singleton entry point and already has an instance: %w", machine, def.Name, ErrSingleton)
		}
	}
	now := e.nowMs()
	ev := req.Event
	e.fillIDs(&ev)
	if ev.Source == "" {
		ev.Source = "api"
	}
	why := fromRequest(&ev)
	why.parentID, why.parentMachine, why.entryPoint = req.ParentID, req.ParentMachine, entryPoint || singleton
	rec, created := e.newInstanceRecord(cr, mr, data, now, why)
	if req.InstanceID != "" {
		rec.ID, created.InstanceID = req.InstanceID, req.InstanceID
	}
	c := &store.Commit{
		Events:    []store.Event{created},
		Instances: []store.InstanceWrite{{Instance: rec, ExpectVersion: -1}},
		InboxID:   req.Event.ID, // a request with its own id creates at most one instance
	}
	if err := e.commit(ctx, c); err != nil {
		if errors.Is(err, store.ErrDuplicate) {
			return nil, fmt.Errorf("create request %s already applied: %w (%w)", req.Event.ID, ErrNotAccepted, ErrDuplicate)
		}
		if req.InstanceID != "" && errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("instance %s already exists: %w", req.InstanceID, ErrNotAccepted)
		}
		if errors.Is(err, store.ErrEntryPointExists) {
			// Another process sharing the store created it first (createMu is held).
			cr.entryExists = true
			return nil, fmt.Errorf("machine %s of component %s already has its entry-point instance (created by another runtime): %w", machine, def.Name, ErrSingleton)
		}
		return nil, err
	}
	inst, err := e.register(cr, rec)
	if err != nil {
		return nil, err
	}
	if entryPoint || singleton {
		cr.entryExists = true // createMu is held
	}
	e.emitCreated(rec)
	return inst, nil
}

// creation says why an instance is created: the ids and actor of its INSTANCE_CREATED event.
type creation struct {
	eventID         string // id of the creation event; generated when empty
	causationID     string // the event that caused it ("" for an external request)
	correlationID   string // the chain it belongs to; its own event id when empty
	trigger         string // the event type that asked for it
	actor, source   string
	sourceComponent string
	parentID        string
	parentMachine   string
	entryPoint      bool
}

// fromRequest describes a creation asked for by an external request: the root of its chain,
// its event taking the request's id.
func fromRequest(ev *Event) creation {
	return creation{eventID: ev.ID, correlationID: ev.CorrelationID, causationID: ev.CausationID,
		trigger: ev.Type, actor: ev.Actor, source: ev.Source, sourceComponent: ev.SourceComponent}
}

// newInstanceRecord builds a new instance record in the initial state, with its timers armed,
// and its INSTANCE_CREATED event.
func (e *Engine) newInstanceRecord(cr *compRuntime, mr *machineRuntime, data map[string]any, now int64, why creation) (*store.Instance, store.Event) {
	m := mr.def
	rec := &store.Instance{
		ID: e.newID(), Component: cr.def.Name, Machine: m.Name, State: m.InitialState,
		Data: data, Status: store.StatusActive, IsEntryPoint: why.entryPoint,
		ParentID: why.parentID, ParentMachine: why.parentMachine, CreatedAt: now, UpdatedAt: now,
	}
	id := why.eventID
	if id == "" {
		id = e.newID()
	}
	correlation := why.correlationID
	if correlation == "" {
		correlation = id
	}
	rec.Timers = armState(m.State(m.InitialState), nil, &Event{ID: id, CorrelationID: correlation}, now)
	trigger := why.trigger
	if trigger == "" {
		trigger = store.EventCreated
	}
	ev := store.Event{
		ID: id, InstanceID: rec.ID, Component: cr.def.Name, Machine: m.Name, Type: store.EventCreated,
		Payload: store.CreationPayload(data, trigger, why.parentID, why.parentMachine),
		ToState: m.InitialState, Data: data, SourceComponent: why.sourceComponent,
		CorrelationID: correlation, CausationID: why.causationID,
		Actor: why.actor, Source: why.source, PersistedAt: now,
	}
	return rec, ev
}

// fillIDs gives an external event its id and makes it the root of its correlation.
func (e *Engine) fillIDs(ev *Event) {
	if ev.ID == "" {
		ev.ID = e.newID()
	}
	if ev.CorrelationID == "" {
		ev.CorrelationID = ev.ID
	}
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
				if n := len(mr.byState[s.Name]); n > 0 {
					out = append(out, StateCount{Component: cr.def.Name, Machine: m.Name, State: s.Name, Count: n})
				}
			}
			mr.mu.RUnlock()
		}
	}
	return out
}
