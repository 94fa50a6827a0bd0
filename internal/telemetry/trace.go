// Package telemetry connects xcomponent to OpenTelemetry: the engine's Tracer, spans of HTTP
// requests, of the broker's messages (W3C trace context in AMQP headers) and of webhook
// calls, the SDK set up from the standard OTEL_* environment, and a slog handler that puts
// the trace id on the lines logged inside a traced operation.
//
// Everything here takes a trace.TracerProvider; a nil one (tracing off) makes every helper a
// no-op that costs a nil check.
package telemetry

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	xc "github.com/xcomponent/xcomponent"
)

// ScopeName is the instrumentation scope of xcomponent's spans.
const ScopeName = "github.com/xcomponent/xcomponent"

// Attribute keys of xcomponent's spans.
const (
	AttrComponent     = attribute.Key("xcomponent.component")
	AttrMachine       = attribute.Key("xcomponent.machine")
	AttrInstanceID    = attribute.Key("xcomponent.instance_id")
	AttrEvent         = attribute.Key("xcomponent.event")
	AttrEventID       = attribute.Key("xcomponent.event_id")
	AttrFrom          = attribute.Key("xcomponent.from_state")
	AttrTo            = attribute.Key("xcomponent.to_state")
	AttrOutcome       = attribute.Key("xcomponent.outcome")
	AttrVersion       = attribute.Key("xcomponent.version")
	AttrHookKind      = attribute.Key("xcomponent.hook.kind")
	AttrHookMethod    = attribute.Key("xcomponent.hook.method")
	AttrBatchSize     = attribute.Key("xcomponent.commit.batch_size")
	AttrCommitEvents  = attribute.Key("xcomponent.commit.events")
	AttrCommitOutbox  = attribute.Key("xcomponent.commit.outbox")
	AttrCommandID     = attribute.Key("xcomponent.command_id")
	AttrCorrelationID = attribute.Key("xcomponent.correlation_id")
	AttrRuntime       = attribute.Key("xcomponent.runtime")
	AttrQueue         = attribute.Key("xcomponent.queue")
)

// propagator is the W3C trace-context propagator (a value: no global state).
var propagator = propagation.TraceContext{}

// tracer returns xcomponent's tracer of tp, nil when tp is nil.
func tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(ScopeName)
}

// Engine returns the engine's Tracer over tp; nil (tracing off) when tp is nil.
func Engine(tp trace.TracerProvider) xc.Tracer {
	if tp == nil {
		return nil
	}
	return engineTracer{t: tracer(tp)}
}

type engineTracer struct{ t trace.Tracer }

func (et engineTracer) Start(ctx context.Context, op xc.SpanOp, parent string) (context.Context, xc.Span) {
	if parent != "" {
		if sc := ParseTraceParent(parent); sc.IsValid() {
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
	}
	ctx, s := et.t.Start(ctx, op.String(), trace.WithSpanKind(trace.SpanKindInternal))
	return ctx, engineSpan{s}
}

func (et engineTracer) TraceParent(ctx context.Context) string {
	return FormatTraceParent(trace.SpanContextFromContext(ctx))
}

type engineSpan struct{ s trace.Span }

func (s engineSpan) TraceParent() string { return FormatTraceParent(s.s.SpanContext()) }

func (s engineSpan) TraceID() string {
	sc := s.s.SpanContext()
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

func (s engineSpan) End(info *xc.SpanInfo) {
	if s.s.IsRecording() {
		attrs := make([]attribute.KeyValue, 0, 12)
		str := func(k attribute.Key, v string) {
			if v != "" {
				attrs = append(attrs, k.String(v))
			}
		}
		str(AttrComponent, info.Component)
		str(AttrMachine, info.Machine)
		str(AttrInstanceID, info.InstanceID)
		str(AttrEvent, info.Event)
		str(AttrEventID, info.EventID)
		str(AttrFrom, info.From)
		str(AttrTo, info.To)
		str(AttrOutcome, info.Outcome)
		str(AttrHookKind, string(info.HookKind))
		str(AttrHookMethod, info.Method)
		if info.Version > 0 {
			attrs = append(attrs, AttrVersion.Int64(info.Version))
		}
		if n := info.Events + info.Instances + info.Outbox + info.Consumed; n > 0 {
			attrs = append(attrs, AttrBatchSize.Int(n), AttrCommitEvents.Int(info.Events), AttrCommitOutbox.Int(info.Outbox))
		}
		s.s.SetAttributes(attrs...)
		if info.Outcome == xc.OutcomeError && info.Err != nil {
			s.s.RecordError(info.Err)
			s.s.SetStatus(codes.Error, info.Err.Error())
		}
	}
	s.s.End()
}

// ParseTraceParent decodes a W3C traceparent value; an invalid SpanContext when it is not one.
func ParseTraceParent(tp string) trace.SpanContext {
	ctx := propagator.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
	return trace.SpanContextFromContext(ctx)
}

// FormatTraceParent encodes sc as a W3C traceparent value, "" when sc is not valid.
func FormatTraceParent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagator.Inject(trace.ContextWithSpanContext(context.Background(), sc), c)
	return c["traceparent"]
}

// Inject writes the trace context of ctx's span into headers (traceparent, tracestate) and
// returns them (a new map when headers is nil); headers unchanged when ctx has no span.
func Inject(ctx context.Context, headers map[string]string) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return headers
	}
	if headers == nil {
		headers = make(map[string]string, 2)
	}
	propagator.Inject(ctx, propagation.MapCarrier(headers))
	return headers
}

// Extract returns ctx with the remote span context found in headers, if any.
func Extract(ctx context.Context, headers map[string]string) context.Context {
	if headers["traceparent"] == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier(headers))
}

// InjectHTTP writes the trace context of ctx's span into an outgoing request's headers.
func InjectHTTP(ctx context.Context, h http.Header) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// TraceID returns the trace id of ctx's span in hex, "" when there is none.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}
