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
	// Source says how it arrived: api, timer, hook, cascade, inter_machine, cross_component, parent …
	Source string `json:"source,omitempty"`
	// SourceComponent is set when the event came from another component.
	SourceComponent string `json:"sourceComponent,omitempty"`
	// TraceParent is the W3C trace context (traceparent) of the operation that sent the
	// event, when tracing is on (Options.Tracer): the event's transition joins that trace.
	TraceParent string `json:"traceParent,omitempty"`
}

// Result is what processing one event did to its instance.
type Result struct {
	Instance      Instance `json:"instance"`
	PreviousState string   `json:"previousState"`
	NewState      string   `json:"newState"`
	EventID       string   `json:"eventId"`
}
