package xcomponent

import (
	"context"
	"errors"
)

// Tracer lets a tracing library follow what the engine does: a span per transition (and per
// creation), per hook call and per store commit. The engine imports no tracing library;
// package internal/telemetry implements Tracer with OpenTelemetry. Options.Tracer is nil by
// default, and then the engine does no tracing work at all.
//
// Trace context crosses the outbox as a W3C traceparent string (Event.TraceParent): a message
// committed by a transition carries the transition span's context, so that what the message
// causes later, in this process or in another one, is part of the same trace.
type Tracer interface {
	// Start starts a span of kind op. Its parent is parent (a W3C traceparent) when not
	// empty, else the span in ctx, if any. The returned context carries the new span: the
	// engine passes it to hooks (a webhook call propagates it) and to the store.
	Start(ctx context.Context, op SpanOp, parent string) (context.Context, Span)
	// TraceParent returns the W3C traceparent of the span in ctx, "" when there is none.
	TraceParent(ctx context.Context) string
}

// Span is one operation started by a Tracer.
type Span interface {
	// TraceParent returns the span's W3C traceparent ("" when it has no valid context).
	TraceParent() string
	// TraceID returns the span's trace id in hex ("" when it has no valid context); the
	// engine records it with the event in the audit trail.
	TraceID() string
	// End ends the span with what the operation did.
	End(info *SpanInfo)
}

// SpanOp names the operations the engine traces.
type SpanOp uint8

// Operations traced by the engine.
const (
	SpanTransition SpanOp = iota + 1 // an event processed on an instance
	SpanCreate                       // an instance created
	SpanHook                         // a hook call
	SpanCommit                       // a store commit
)

// String returns the span name of op.
func (op SpanOp) String() string {
	switch op {
	case SpanTransition:
		return "xcomponent.transition"
	case SpanCreate:
		return "xcomponent.create"
	case SpanHook:
		return "xcomponent.hook"
	case SpanCommit:
		return "xcomponent.store.commit"
	}
	return "xcomponent.unknown"
}

// Span outcomes (SpanInfo.Outcome).
const (
	OutcomeApplied   = "applied"   // the transition (or creation) was committed
	OutcomeRefused   = "refused"   // not accepted: no transition, guard, veto, completed instance …
	OutcomeDuplicate = "duplicate" // its id was applied before
	OutcomeError     = "error"     // the store failed, or another error
)

// SpanInfo describes a finished operation; the fields that do not apply to it are empty.
type SpanInfo struct {
	Component, Machine, InstanceID string
	// Event is the event type, EventID its id.
	Event, EventID string
	// From and To are the transition's states (To alone for a creation).
	From, To string
	// Outcome is one of the Outcome* constants.
	Outcome string
	// Version is the instance's version after the transition.
	Version int64
	// HookKind and Method name a hook call.
	HookKind HookKind
	Method   string
	// Events, Instances, Outbox and Consumed are the sizes of a store commit.
	Events, Instances, Outbox, Consumed int
	// Err is the operation's error, if any.
	Err error
}

// outcomeOf classifies the error of a transition or creation.
func outcomeOf(err error) string {
	switch {
	case err == nil:
		return OutcomeApplied
	case errors.Is(err, ErrDuplicate):
		return OutcomeDuplicate
	case errors.Is(err, ErrNotAccepted), errors.Is(err, ErrNotFound), errors.Is(err, ErrSingleton),
		errors.Is(err, ErrInvalidContext), errors.Is(err, errTimerGone):
		return OutcomeRefused
	}
	var ce *ContextError
	if errors.As(err, &ce) {
		return OutcomeRefused
	}
	return OutcomeError
}

// spanTraceParent and spanTraceID are the span's context, "" without a span.
func spanTraceParent(s Span) string {
	if s == nil {
		return ""
	}
	return s.TraceParent()
}

func spanTraceID(s Span) string {
	if s == nil {
		return ""
	}
	return s.TraceID()
}
