package xcomponent

import (
	"context"
	"errors"
	"fmt"

	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

// HookKind says when a hook runs.
type HookKind string

// Hook kinds: onExit of the source state, triggeredMethod of the transition, onEntry of the
// target state.
const (
	HookOnExit    HookKind = "onExit"
	HookTriggered HookKind = "triggeredMethod"
	HookOnEntry   HookKind = "onEntry"
)

// HookFunc handles a hook method named in the YAML. Returning an error from an onExit or
// triggeredMethod hook vetoes the transition; from onEntry it is recorded and the transition
// stands.
type HookFunc func(ctx context.Context, h *Hook) error

// Hook is what a hook handler gets: the instance, the event, the instance data (which it may
// change) and a Sender for further events.
type Hook struct {
	Kind       HookKind
	Method     string
	Component  string
	Machine    string
	InstanceID string
	// State is the instance's state when the hook runs (the source state for onExit and
	// triggeredMethod, the target state for onEntry).
	State string
	// From and To are the transition's states.
	From, To string
	Event    Event
	// Data is the instance data. Changes are kept if the transition commits.
	Data map[string]any
	// Send queues events; they are dispatched after the transition commits, and are lost only
	// if the transition is not.
	Send Sender
}

// Sender queues events from a hook. Nothing is sent until the current transition commits.
type Sender interface {
	// SendToSelf sends an event to the hook's own instance.
	SendToSelf(ev Event)
	// SendTo sends an event to an instance of the same component (or any loaded one).
	SendTo(instanceID string, ev Event)
	// SendToComponent sends an event to an instance of another component.
	SendToComponent(component, instanceID string, ev Event)
	// Broadcast sends an event to the instances of a machine (in state when not empty) of this
	// component, or of component when not empty, routed by the transitions' matching rules.
	Broadcast(machine string, ev Event, state, component string)
	// CreateInstance creates an instance of a machine of this component.
	CreateInstance(machine string, data map[string]any)
	// CreateInstanceInComponent creates an instance in another component.
	CreateInstanceInComponent(component, machine string, data map[string]any)
}

// sendQueue collects a hook's sends as outbox messages.
type sendQueue struct {
	self      string
	component string
	msgs      []Message
}

func (q *sendQueue) SendToSelf(ev Event) { q.SendTo(q.self, ev) }

func (q *sendQueue) SendTo(instanceID string, ev Event) {
	q.msgs = append(q.msgs, Message{Kind: msgSend, InstanceID: instanceID, Event: ev})
}

func (q *sendQueue) SendToComponent(component, instanceID string, ev Event) {
	q.msgs = append(q.msgs, Message{Kind: msgSend, Component: component, InstanceID: instanceID, Event: ev})
}

func (q *sendQueue) Broadcast(machine string, ev Event, state, component string) {
	if component == "" {
		component = q.component
	}
	q.msgs = append(q.msgs, Message{Kind: msgBroadcast, Component: component, Machine: machine, State: state, Event: ev})
}

func (q *sendQueue) CreateInstance(machine string, data map[string]any) {
	q.CreateInstanceInComponent(q.component, machine, data)
}

func (q *sendQueue) CreateInstanceInComponent(component, machine string, data map[string]any) {
	q.msgs = append(q.msgs, Message{Kind: msgCreate, Component: component, Machine: machine, Data: copyMap(data)})
}

func (e *Engine) runHook(ctx context.Context, kind HookKind, method string, rec *store.Instance, t *component.Transition, d *delivery, data map[string]any, sends *sendQueue, state string) error {
	h := &Hook{
		Kind: kind, Method: method, Component: rec.Component, Machine: rec.Machine,
		InstanceID: rec.ID, State: state, From: t.From, To: t.To, Event: d.ev, Data: data, Send: sends,
	}
	fn := e.hook(method)
	if fn == nil {
		fn = e.fallback
	}
	if fn == nil {
		e.log.Debug("hook without handler", "method", method, "kind", kind, "component", rec.Component,
			"machine", rec.Machine, "instance", rec.ID)
		return errNoHandler
	}
	if e.tracer == nil {
		return safeHook(ctx, fn, h)
	}
	ctx, span := e.tracer.Start(ctx, SpanHook, "")
	err := safeHook(ctx, fn, h)
	info := SpanInfo{Component: rec.Component, Machine: rec.Machine, InstanceID: rec.ID, Event: d.ev.Type,
		EventID: d.ev.ID, From: t.From, To: t.To, HookKind: kind, Method: method, Outcome: OutcomeApplied, Err: err}
	if err != nil {
		info.Outcome = OutcomeError
	}
	span.End(&info)
	return err
}

// errNoHandler: a hook method has no handler. It does nothing, and the audit trail says so.
var errNoHandler = errors.New("no handler")

// safeHook runs a hook, turning a panic into an error.
func safeHook(ctx context.Context, fn HookFunc, h *Hook) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return fn(ctx, h)
}

func (e *Engine) reportHookError(rec *store.Instance, err error) {
	e.log.Warn("hook error", "component", rec.Component, "machine", rec.Machine, "instance", rec.ID, "err", err)
	if e.observer != nil {
		e.observer.HookError(rec.Component, rec.Machine)
	}
	e.emit(RuntimeEvent{Component: rec.Component, InstanceID: rec.ID,
		Data: HookError{InstanceID: rec.ID, MachineName: rec.Machine, State: rec.State, Error: err.Error()}})
}
