package telemetry

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Messaging attributes (OpenTelemetry semantic conventions).
const (
	attrMessagingSystem      = attribute.Key("messaging.system")
	attrMessagingDestination = attribute.Key("messaging.destination.name")
	attrMessagingOperation   = attribute.Key("messaging.operation.type")
	attrMessageID            = attribute.Key("messaging.message.id")
	attrHTTPMethod           = attribute.Key("http.request.method")
	attrHTTPRoute            = attribute.Key("http.route")
	attrHTTPStatus           = attribute.Key("http.response.status_code")
)

var noopSpan trace.Span = noop.Span{}

// StartConsume starts the span of a message consumed from the broker on channel: a child of
// the trace context its headers carry, or the root of a new trace when they carry none (the
// messages of xcomponent-ai). With a nil tp it returns ctx and a no-op span.
func StartConsume(ctx context.Context, tp trace.TracerProvider, channel, messageID string, headers map[string]string) (context.Context, trace.Span) {
	if tp == nil {
		return ctx, noopSpan
	}
	ctx = Extract(ctx, headers)
	return tracer(tp).Start(ctx, "consume "+channel, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attrMessagingSystem.String("rabbitmq"), attrMessagingDestination.String(channel),
			attrMessagingOperation.String("process"), attrMessageID.String(messageID)))
}

// StartPublish starts the span of a message published on channel, a child of parent (a W3C
// traceparent: the transition that committed the message) when given, else of ctx's span.
// Inject the returned context into the message's headers.
func StartPublish(ctx context.Context, tp trace.TracerProvider, channel, messageID, parent string) (context.Context, trace.Span) {
	if tp == nil {
		return ctx, noopSpan
	}
	if parent != "" {
		if sc := ParseTraceParent(parent); sc.IsValid() {
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
	}
	return tracer(tp).Start(ctx, "publish "+channel, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attrMessagingSystem.String("rabbitmq"), attrMessagingDestination.String(channel),
			attrMessagingOperation.String("publish"), attrMessageID.String(messageID)))
}

// End ends span, recording err (when not nil) as its error.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// HTTPTrace returns the request hook of the HTTP API (httpapi.Options.Trace): a server span
// per request, a child of the caller's traceparent header when it sends one. nil when tp is
// nil.
func HTTPTrace(tp trace.TracerProvider) func(r *http.Request) (*http.Request, func(route string, status int)) {
	if tp == nil {
		return nil
	}
	t := tracer(tp)
	return func(r *http.Request) (*http.Request, func(string, int)) {
		ctx := propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.Start(ctx, "HTTP "+r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attrHTTPMethod.String(metricMethod(r.Method))))
		return r.WithContext(ctx), func(route string, status int) {
			if route != "" {
				span.SetName(route) // a pattern of the route table ("POST /api/instances/{id}/trigger")
				span.SetAttributes(attrHTTPRoute.String(route))
			}
			span.SetAttributes(attrHTTPStatus.Int(status))
			if status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
			span.End()
		}
	}
}

// metricMethod bounds the method attribute to the standard methods.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// StartClient starts the span of an outgoing HTTP call (a webhook) and injects its trace
// context into the request's headers. With a nil tp it injects ctx's trace context, if any.
func StartClient(ctx context.Context, tp trace.TracerProvider, name string, req *http.Request) (context.Context, trace.Span) {
	if tp == nil {
		InjectHTTP(ctx, req.Header)
		return ctx, noopSpan
	}
	ctx, span := tracer(tp).Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attrHTTPMethod.String(metricMethod(req.Method))))
	InjectHTTP(ctx, req.Header)
	return ctx, span
}
