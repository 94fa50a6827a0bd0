package xcomponent

import (
	"errors"
	"fmt"

	"github.com/xcomponent/xcomponent/store"
)

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
}

// Result is what processing one event did to its instance.
type Result struct {
	Instance      Instance `json:"instance"`
	PreviousState string   `json:"previousState"`
	NewState      string   `json:"newState"`
	EventID       string   `json:"eventId"`
}

// Errors returned by the engine. Test with errors.Is; messages carry the details.
var (
	// ErrNotFound: unknown instance, machine or component.
	ErrNotFound = errors.New("not found")
	// ErrNotAccepted: the event was refused (no transition, guard false, hook veto, completed
	// instance). The instance is unchanged.
	ErrNotAccepted = errors.New("event not accepted")
	// ErrDuplicate: an event or create request with this id was applied before (it also
	// wraps ErrNotAccepted); nothing was done again.
	ErrDuplicate = errors.New("already applied")
	// ErrSingleton: a second instance of a singleton entry machine was requested.
	ErrSingleton = errors.New("singleton already exists")
	// ErrInvalidContext: create data failed the machine's contextSchema (see *ContextError).
	ErrInvalidContext = errors.New("invalid context")
	// ErrStore: the store failed; nothing was applied.
	ErrStore = errors.New("store unavailable")
	// ErrClosed: the engine is shut down.
	ErrClosed = errors.New("engine closed")
	// ErrBusy: other processes kept changing the instance while this event was retried;
	// nothing was applied and the event can be sent again.
	ErrBusy = errors.New("instance busy")
)

// ContextError lists the contextSchema violations of a create request or of the data an
// event would leave, and the data refused because no store could keep it as sent (NUL
// characters, integers beyond 2^53).
type ContextError struct {
	Machine string
	// Subject, when set, names what is invalid ("event \"SUBMIT\"", "context"); the
	// message then does not speak of the schema.
	Subject string
	Fields  []FieldError
	refused bool // an event was refused by the engine (see Unwrap)
}

// FieldError is one contextSchema violation.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *ContextError) Error() string {
	msg := fmt.Sprintf("context does not match the schema of %s:", e.Machine)
	if e.Subject != "" {
		msg = e.Subject + " is invalid:"
	}
	for _, f := range e.Fields {
		msg += fmt.Sprintf(" %s: %s;", f.Field, f.Message)
	}
	return msg[:len(msg)-1]
}

// Unwrap makes errors.Is(err, ErrInvalidContext) true, and errors.Is(err, ErrNotAccepted)
// for an event refused because of its payload (the instance is unchanged).
func (e *ContextError) Unwrap() []error {
	if e.refused {
		return []error{ErrInvalidContext, ErrNotAccepted}
	}
	return []error{ErrInvalidContext}
}

// Instance is a read-only view of one instance, in the JSON shape of the API.
type Instance struct {
	ID                string           `json:"id"`
	ComponentName     string           `json:"componentName"`
	MachineName       string           `json:"machineName"`
	CurrentState      string           `json:"currentState"`
	Context           map[string]any   `json:"context"`
	PublicMember      map[string]any   `json:"publicMember,omitempty"`
	Status            store.Status     `json:"status"`
	IsEntryPoint      bool             `json:"isEntryPoint,omitempty"`
	ParentInstanceID  string           `json:"parentInstanceId,omitempty"`
	ParentMachineName string           `json:"parentMachineName,omitempty"`
	CreatedAt         int64            `json:"createdAt"`
	UpdatedAt         int64            `json:"updatedAt"`
	Version           int64            `json:"version"`
	PendingTimeouts   []PendingTimeout `json:"pendingTimeouts"`
}

// PendingTimeout is an armed timer as shown to users.
type PendingTimeout struct {
	Event       string `json:"event"`
	TargetState string `json:"targetState"`
	DueAt       int64  `json:"dueAt"`
	RemainingMs int64  `json:"remainingMs"`
	TotalMs     int64  `json:"totalMs"`
	Kind        string `json:"kind"`
}

// View turns a stored record into the API view; publicMember is set when the machine declares
// publicMemberType. now (ms epoch) computes remainingMs.
func View(rec *store.Instance, publicMember bool, now int64) Instance {
	v := Instance{
		ID: rec.ID, ComponentName: rec.Component, MachineName: rec.Machine,
		CurrentState: rec.State, Context: rec.Data, Status: rec.Status,
		IsEntryPoint: rec.IsEntryPoint, ParentInstanceID: rec.ParentID,
		ParentMachineName: rec.ParentMachine, CreatedAt: rec.CreatedAt,
		UpdatedAt: rec.UpdatedAt, Version: rec.Version,
		PendingTimeouts: pendingTimeouts(rec, now),
	}
	if v.Context == nil {
		v.Context = map[string]any{}
	}
	if publicMember {
		v.PublicMember = v.Context
	}
	return v
}
