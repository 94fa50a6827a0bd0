package xcomponent

import (
	"context"
	"errors"
	"fmt"

	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

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
		if err := e.settle(ctx); err != nil {
			return Instance{}, err
		}
	}
	inst, rec, err := e.create(ctx, cr, req, false)
	if err != nil {
		return Instance{}, err
	}
	return View(rec, inst.mr.publicMember, e.nowMs()), nil
}

// create creates an instance and returns it with its record (the record of a compact instance
// would otherwise be rebuilt for the caller).
func (e *Engine) create(ctx context.Context, cr *compRuntime, req CreateRequest, entryPoint bool) (*instance, *store.Instance, error) {
	if e.tracer == nil {
		return e.createInstance(ctx, cr, req, entryPoint, nil)
	}
	parent := req.Event.TraceParent
	if parent == "" {
		parent = e.tracer.TraceParent(ctx)
	}
	ctx, span := e.tracer.Start(ctx, SpanCreate, parent)
	inst, rec, err := e.createInstance(ctx, cr, req, entryPoint, span)
	info := SpanInfo{Component: cr.def.Name, Machine: req.Machine, Event: req.Event.Type, EventID: req.Event.ID,
		Outcome: outcomeOf(err), Err: err}
	if rec != nil {
		info.Machine, info.InstanceID, info.To = rec.Machine, rec.ID, rec.State
	}
	span.End(&info)
	return inst, rec, err
}

// createInstance is create; span, when not nil, is its creation span.
func (e *Engine) createInstance(ctx context.Context, cr *compRuntime, req CreateRequest, entryPoint bool, span Span) (*instance, *store.Instance, error) {
	def := cr.def
	machine := req.Machine
	if machine == "" {
		machine = def.EntryMachine
		if machine == "" {
			return nil, nil, fmt.Errorf("component %s has no entryMachine: machineName is required", def.Name)
		}
	}
	mr := cr.machines[machine]
	if mr == nil {
		return nil, nil, fmt.Errorf("machine %s not found in component %s: %w", machine, def.Name, ErrNotFound)
	}
	data := req.Data
	if req.Validate {
		clean, ferrs := mr.def.ValidateContext(data)
		if len(ferrs) > 0 {
			ce := &ContextError{Machine: machine}
			for _, f := range ferrs {
				ce.Fields = append(ce.Fields, FieldError(f))
			}
			return nil, nil, ce
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
			return nil, nil, fmt.Errorf("machine %s of component %s is a singleton entry point and already has an instance: %w", machine, def.Name, ErrSingleton)
		}
	}
	now := e.nowMs()
	ev := req.Event
	e.fillIDs(&ev)
	if ev.Source == "" {
		ev.Source = SourceAPI
	}
	why := fromRequest(&ev)
	why.parentID, why.parentMachine, why.entryPoint = req.ParentID, req.ParentMachine, entryPoint || singleton
	rec, created := e.newInstanceRecord(cr, mr, data, now, why)
	if req.InstanceID != "" {
		rec.ID, created.InstanceID = req.InstanceID, req.InstanceID
	}
	created.TraceID = spanTraceID(span)
	c := &store.Commit{
		Events:    []store.Event{created},
		Instances: []store.InstanceWrite{{Instance: rec, ExpectVersion: -1}},
		InboxID:   req.Event.ID, // a request with its own id creates at most one instance
	}
	if err := e.commit(ctx, c); err != nil {
		if errors.Is(err, store.ErrDuplicate) {
			return nil, nil, fmt.Errorf("create request %s already applied: %w (%w)", req.Event.ID, ErrNotAccepted, ErrDuplicate)
		}
		if req.InstanceID != "" && errors.Is(err, store.ErrConflict) {
			return nil, nil, fmt.Errorf("instance %s already exists: %w", req.InstanceID, ErrNotAccepted)
		}
		if errors.Is(err, store.ErrEntryPointExists) {
			// Another process sharing the store created it first (createMu is held).
			cr.entryExists = true
			return nil, nil, fmt.Errorf("machine %s of component %s already has its entry-point instance (created by another runtime): %w", machine, def.Name, ErrSingleton)
		}
		return nil, nil, err
	}
	inst, err := e.register(cr, rec)
	if err != nil {
		return nil, nil, err
	}
	if entryPoint || singleton {
		cr.entryExists = true // createMu is held
	}
	e.emitCreated(rec)
	return inst, rec, nil
}

// creation says why an instance is created: the ids and actor of its INSTANCE_CREATED event.
type creation struct {
	eventID         string // id of the creation event; generated when empty
	causationID     string // the event that caused it ("" for an external request)
	correlationID   string // the chain it belongs to; its own event id when empty
	trigger         string // the event type that asked for it
	actor           string
	source          Source
	sourceComponent string
	reason          string
	parentID        string
	parentMachine   string
	entryPoint      bool
}

// fromRequest describes a creation asked for by an external request: the root of its chain,
// its event taking the request's id.
func fromRequest(ev *Event) creation {
	return creation{eventID: ev.ID, correlationID: ev.CorrelationID, causationID: ev.CausationID,
		trigger: ev.Type, actor: ev.Actor, source: ev.Source, sourceComponent: ev.SourceComponent, reason: ev.Reason}
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
		Actor: why.actor, Source: string(why.source), PersistedAt: now, Reason: why.reason,
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
