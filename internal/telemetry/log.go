package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// Log formats (--log-format).
const (
	FormatText = "text"
	FormatJSON = "json"
)

// NewLogger returns the logger of a command: one line per record on w, in format (text or
// json), at level and above, with the trace id and span id on the records logged inside a
// traced operation (logged with a context carrying a span: slog's *Context methods).
func NewLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if format == FormatJSON {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(LogHandler(h))
}

// ParseFormat checks a --log-format value.
func ParseFormat(f string) (string, error) {
	switch f {
	case FormatText, FormatJSON:
		return f, nil
	}
	return "", fmt.Errorf("log format %q: want text or json", f)
}

// LogHandler wraps h: records logged with a context that carries a valid span get its
// trace_id and span_id attributes.
func LogHandler(h slog.Handler) slog.Handler { return traceHandler{h} }

type traceHandler struct{ h slog.Handler }

func (t traceHandler) Enabled(ctx context.Context, l slog.Level) bool { return t.h.Enabled(ctx, l) }

func (t traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			r = r.Clone()
			r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
		}
	}
	return t.h.Handle(ctx, r)
}

func (t traceHandler) WithAttrs(as []slog.Attr) slog.Handler { return traceHandler{t.h.WithAttrs(as)} }
func (t traceHandler) WithGroup(name string) slog.Handler    { return traceHandler{t.h.WithGroup(name)} }
