package xcomponent

// Event is something that happens to an instance: a type and a payload, plus the ids that tie
// it to what caused it.
type Event struct {
	Type    string         `json:"type"`
	Payload map[string]any `json:"payload,omitempty"`

	// ID identifies the event; generated when empty.
	ID string `json:"id,omitempty"`
	// CorrelationID is the id of the external request or root event of the chain; the event's
	// own id when empty.
	CorrelationID string `json:"correlationId,omitempty"`
	// CausationID is the id of the event whose processing produced this one.
	CausationID string `json:"causationId,omitempty"`
	// Actor says who sent it (API token name, "timer", "hook", a component …).
	Actor string `json:"actor,omitempty"`
	// Source says how it arrived (SourceAPI, SourceTimer …).
	Source Source `json:"source,omitempty"`
	// SourceComponent is set when the event came from another component.
	SourceComponent string `json:"sourceComponent,omitempty"`
	// Reason is why an operator sent it (free text given with the request), kept in the audit
	// trail; the events it causes do not inherit it.
	Reason string `json:"reason,omitempty"`
	// TraceParent is the W3C trace context (traceparent) of the operation that sent the
	// event, when tracing is on (Options.Tracer): the event's transition joins that trace.
	TraceParent string `json:"traceParent,omitempty"`
}

// Source says how an event arrived (Event.Source), or which effect produced a message
// (Message.Origin). The audit trail keeps it as a string.
type Source string

// Sources of events.
const (
	SourceAPI            Source = "api"             // a request: REST API, library call
	SourceTimer          Source = "timer"           // a timeout or auto transition
	SourceHook           Source = "hook"            // sent by a hook (Hook.Send)
	SourceCascade        Source = "cascade"         // a state's cascadingRules
	SourceInterMachine   Source = "inter_machine"   // created by an inter_machine transition
	SourceCrossComponent Source = "cross_component" // a cross_component transition
	SourceParent         Source = "parent"          // a child's notification of its parent
	SourceBroker         Source = "broker"          // a command received on the message broker
	SourceOperator       Source = "operator"        // an operator action: Engine.Terminate, Engine.RetryHook
)

// Result is what processing one event did to its instance.
type Result struct {
	Instance      Instance `json:"instance"`
	PreviousState string   `json:"previousState"`
	NewState      string   `json:"newState"`
	EventID       string   `json:"eventId"`
}
