package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Setup decides whether traces are exported and builds the tracer provider.
//
// Tracing is off by default. It is on when force is true (the --tracing flag), or when the
// standard environment asks for it: OTEL_TRACES_EXPORTER=otlp, or OTEL_EXPORTER_OTLP_ENDPOINT
// or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set. OTEL_TRACES_EXPORTER=none and OTEL_SDK_DISABLED=true
// turn it off (even with force). Spans are exported in batches with OTLP over HTTP
// (http/protobuf; default endpoint http://localhost:4318); the exporter reads the other
// OTEL_EXPORTER_OTLP_* variables (headers, timeout, certificates, insecure), the SDK the
// sampler (OTEL_TRACES_SAMPLER, default parentbased_always_on) and the batch settings
// (OTEL_BSP_*), and the resource OTEL_SERVICE_NAME (default service) and
// OTEL_RESOURCE_ATTRIBUTES.
//
// It returns a nil provider when tracing is off, and a shutdown function that flushes the
// spans still buffered (a no-op when off).
func Setup(ctx context.Context, force bool, service string, getenv func(string) string, log *slog.Logger) (trace.TracerProvider, func(context.Context) error, error) {
	none := func(context.Context) error { return nil }
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return nil, none, nil
	}
	exporter := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")))
	switch exporter {
	case "none":
		return nil, none, nil
	case "", "otlp":
	default:
		return nil, none, fmt.Errorf("OTEL_TRACES_EXPORTER %q: want otlp or none", exporter)
	}
	on := force || exporter == "otlp" || getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	if !on {
		return nil, none, nil
	}
	proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if proto != "" && proto != "http/protobuf" {
		return nil, none, fmt.Errorf("OTLP protocol %q: only http/protobuf is supported (the collector's port 4318)", proto)
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, none, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx, resource.WithAttributes(attribute.String("service.name", service)), resource.WithFromEnv(),
		resource.WithTelemetrySDK())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, none, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	endpoint := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if endpoint == "" {
		endpoint = getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	if endpoint == "" {
		endpoint = "http://localhost:4318"
	}
	log.Info("tracing on: OTLP over HTTP", "endpoint", endpoint, "service", serviceName(res, service))
	return tp, func(ctx context.Context) error {
		if err := tp.Shutdown(ctx); err != nil {
			return fmt.Errorf("flush traces: %w", err)
		}
		return nil
	}, nil
}

func serviceName(res *resource.Resource, def string) string {
	if v, ok := res.Set().Value("service.name"); ok {
		return v.AsString()
	}
	return def
}
