package xcomponent

import (
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

// RuntimeEventKind names what a RuntimeEvent reports. The values are the event names of
// docs/semantics.md ("Runtime events") and of the live stream.
type RuntimeEventKind string

// The kinds of runtime events the engine emits, each with its payload type.
const (
	EvInstanceCreated    RuntimeEventKind = "instance_created"     // InstanceCreated
	EvStateChange        RuntimeEventKind = "state_change"         // StateChanged
	EvInstanceCompleted  RuntimeEventKind = "instance_completed"   // InstanceCompleted
	EvEventIgnored       RuntimeEventKind = "event_ignored"        // EventIgnored
	EvHookError          RuntimeEventKind = "hook_error"           // HookError
	EvInstanceError      RuntimeEventKind = "instance_error"       // InstanceError
	EvTimeoutFired       RuntimeEventKind = "timeout_fired"        // TimeoutFired
	EvBroadcastCompleted RuntimeEventKind = "broadcast_completed"  // BroadcastCompleted
	EvCascadeCompleted   RuntimeEventKind = "cascade_completed"    // CascadeCompleted
	EvCrossComponentSent RuntimeEventKind = "cross_component_sent" // CrossComponentSent
)

// RuntimeEvent is something the engine did, for subscribers (Subscribe, Options.Listener):
// library users, the live stream of serve, the broker publisher of the distributed runtime.
// Data holds the kind's payload (a StateChanged for EvStateChange …); each transport turns it
// into its own JSON.
type RuntimeEvent struct {
	Component string
	// InstanceID is the instance concerned: the source instance of a fan-out, "" for a
	// broadcast sent through the API.
	InstanceID string
	// Timestamp is when it happened, ms since the Unix epoch.
	Timestamp int64
	Data      RuntimeEventData
}

// Kind is the kind of Data ("" when Data is nil).
func (ev RuntimeEvent) Kind() RuntimeEventKind {
	if ev.Data == nil {
		return ""
	}
	return ev.Data.Kind()
}

// RuntimeEventData is the payload of a RuntimeEvent: one of the types below for the events of
// the engine. Other packages may define their own (a dashboard's runtime_connected).
type RuntimeEventData interface {
	Kind() RuntimeEventKind
}

// InstanceCreated: an instance was created (Version is 0).
type InstanceCreated struct {
	InstanceID       string
	MachineName      string
	CurrentState     string
	Context          map[string]any
	Status           store.Status
	Version          int64
	IsEntryPoint     bool
	ParentInstanceID string
}

// StateChanged: an event fired a transition. Version is the instance's version after it.
type StateChanged struct {
	InstanceID    string
	MachineName   string
	PreviousState string
	NewState      string
	// StateType is the type of NewState ("" when not known, e.g. decoded from the wire).
	StateType component.StateType
	// Event is the event that fired the transition (its ID is the causation of what follows).
	Event           Event
	Context         map[string]any
	PendingTimeouts []PendingTimeout
	Status          store.Status
	Version         int64
}

// InstanceCompleted: a transition reached a final or error state. It follows the
// StateChanged of that transition and has its Version.
type InstanceCompleted struct {
	InstanceID  string
	MachineName string
	FinalState  string
	Status      store.Status
	Context     map[string]any
	Version     int64
}

// EventIgnored: an event was refused; the instance is unchanged.
type EventIgnored struct {
	InstanceID   string
	MachineName  string
	Event        Event
	CurrentState string
	Reason       string
}

// HookError: a hook failed; the transition was kept (see the instance's history note).
type HookError struct {
	InstanceID  string
	MachineName string
	State       string
	Error       string
}

// InstanceError: processing an event failed on an instance (a guard that cannot be evaluated).
type InstanceError struct {
	InstanceID  string
	MachineName string
	Event       Event
	Error       string
}

// TimeoutFired: a timer fired a transition. It follows that transition's StateChanged and
// has its Version.
type TimeoutFired struct {
	InstanceID  string
	MachineName string
	// Event is the timer's event (Event.Type is the transition's event).
	Event     Event
	FromState string
	ToState   string
	Version   int64
}

// BroadcastCompleted: an event broadcast to the instances of a machine was delivered to all
// its targets. TargetComponent and SourceComponent are set for broadcasts sent by an
// instance's transition, empty for Engine.Broadcast.
type BroadcastCompleted struct {
	MachineName     string
	Event           Event
	Matched         int
	Processed       int
	TargetComponent string
	SourceComponent string
}

// CascadeCompleted: a cascade (an instance's event routed to instances of its component) was
// delivered to all its targets; fields as BroadcastCompleted.
type CascadeCompleted BroadcastCompleted

// CrossComponentSent: a message of an instance to another component was handled, as Delivery
// says.
type CrossComponentSent struct {
	Delivery        CrossDelivery
	TargetComponent string
	TargetMachine   string
	// SourceComponent is the sender's component (RuntimeEvent.Component, except for
	// CrossDelivered, reported by the target's component).
	SourceComponent string
	Event           Event
	// MessageKind is the message's kind for CrossForwarded ("create", "event", "broadcast" …).
	MessageKind string
	// CreatedInstanceID is the instance created, for CrossCreated.
	CreatedInstanceID string
	// Matched and Processed count the targets, for CrossDelivered.
	Matched, Processed int
}

// CrossDelivery says what became of a cross-component message.
type CrossDelivery string

// What became of a cross-component message.
const (
	// CrossForwarded: handed to the Remote (another process holds the component).
	CrossForwarded CrossDelivery = "forwarded"
	// CrossCreated: it created an instance in this process.
	CrossCreated CrossDelivery = "created"
	// CrossDelivered: delivered to the matching instances in this process.
	CrossDelivered CrossDelivery = "delivered"
)

// Kind implements RuntimeEventData.
func (InstanceCreated) Kind() RuntimeEventKind { return EvInstanceCreated }

// Kind implements RuntimeEventData.
func (StateChanged) Kind() RuntimeEventKind { return EvStateChange }

// Kind implements RuntimeEventData.
func (InstanceCompleted) Kind() RuntimeEventKind { return EvInstanceCompleted }

// Kind implements RuntimeEventData.
func (EventIgnored) Kind() RuntimeEventKind { return EvEventIgnored }

// Kind implements RuntimeEventData.
func (HookError) Kind() RuntimeEventKind { return EvHookError }

// Kind implements RuntimeEventData.
func (InstanceError) Kind() RuntimeEventKind { return EvInstanceError }

// Kind implements RuntimeEventData.
func (TimeoutFired) Kind() RuntimeEventKind { return EvTimeoutFired }

// Kind implements RuntimeEventData.
func (BroadcastCompleted) Kind() RuntimeEventKind { return EvBroadcastCompleted }

// Kind implements RuntimeEventData.
func (CascadeCompleted) Kind() RuntimeEventKind { return EvCascadeCompleted }

// Kind implements RuntimeEventData.
func (CrossComponentSent) Kind() RuntimeEventKind { return EvCrossComponentSent }
