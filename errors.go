package xcomponent

import (
	"errors"
	"fmt"
)

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

// ErrInvalidMessage: a message from another process that can never be applied (unknown
// operator in a rule, no target component …). A broker consumer dead-letters it.
var ErrInvalidMessage = errors.New("invalid message")

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
