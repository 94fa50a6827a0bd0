// Package webhook serves hook methods over HTTP: the optional hook endpoint of the runtime and
// serve binaries (--hooks-url).
//
// For every hook it handles, the endpoint receives a POST with a JSON body
//
//	{"hook": "onEntry|onExit|triggeredMethod", "method": "…", "component": "…", "machine": "…",
//	 "instanceId": "…", "state": "…", "from": "…", "to": "…",
//	 "event": {"type": "…", "payload": {…}, "id": "…", "correlationId": "…"},
//	 "context": {…}}
//
// and may answer (any 2xx status; 204 or an empty body means "nothing to do")
//
//	{"context": {"key": value, "gone": null},   // shallow patch of the instance data; null deletes
//	 "send": [
//	   {"type": "NEXT", "payload": {…}},                                  // to the instance itself
//	   {"type": "PING", "instanceId": "…"},                               // to another instance
//	   {"type": "PING", "instanceId": "…", "component": "…"},             // in another component
//	   {"type": "WAKE", "broadcast": {"machine": "…", "state": "…", "component": "…"}}
//	 ],
//	 "error": "veto message"}
//
// A non-empty error is the hook's error: it vetoes an onExit or triggeredMethod hook, and is
// recorded for an onEntry hook (the transition stands); nothing else of that answer is applied.
// Sends, like every hook send, are dispatched after the transition commits.
//
// Failing to get a usable answer — a transport error, a timeout, a status other than 2xx, an
// answer that is not the JSON above or larger than 1 MiB — is an error too, so it vetoes the
// transition as well: an unreachable endpoint never lets a transition through without the
// work its hooks were meant to do. The error names the URL (without credentials or query) and
// the status.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/internal/redact"
	"github.com/xcomponent/xcomponent/internal/telemetry"
)

// DefaultTimeout bounds one call to the endpoint when Options.Timeout is not set.
const DefaultTimeout = 5 * time.Second

// MaxResponseBytes is the largest answer read from the endpoint.
const MaxResponseBytes = 1 << 20

// ErrEndpoint marks the errors that come from not getting a usable answer from the endpoint
// (as opposed to a veto the endpoint answered).
var ErrEndpoint = errors.New("hooks endpoint failed")

// VetoError is the error an endpoint answered: its message is the endpoint's "error".
type VetoError struct{ Message string }

func (e *VetoError) Error() string { return e.Message }

// Options configure the hook endpoint client. The zero value is usable.
type Options struct {
	// Client sends the requests; a plain http.Client when nil.
	Client *http.Client
	// Timeout bounds each call (on top of the hook's context); DefaultTimeout when <= 0.
	Timeout time.Duration
	// Headers are added to every request, e.g. an Authorization header for the endpoint.
	Headers http.Header
	// Logger receives debug and failure logs; slog.Default() when nil.
	Logger *slog.Logger
}

// request is the body POSTed to the endpoint.
type request struct {
	Hook       xc.HookKind    `json:"hook"`
	Method     string         `json:"method"`
	Component  string         `json:"component"`
	Machine    string         `json:"machine"`
	InstanceID string         `json:"instanceId"`
	State      string         `json:"state"`
	From       string         `json:"from"`
	To         string         `json:"to"`
	Event      event          `json:"event"`
	Context    map[string]any `json:"context"`
}

type event struct {
	Type          string         `json:"type"`
	Payload       map[string]any `json:"payload,omitempty"`
	ID            string         `json:"id,omitempty"`
	CorrelationID string         `json:"correlationId,omitempty"`
}

// reply is what the endpoint may answer.
type reply struct {
	Context map[string]any `json:"context"`
	Send    []sendItem     `json:"send"`
	Error   string         `json:"error"`
}

type sendItem struct {
	Type       string         `json:"type"`
	Payload    map[string]any `json:"payload"`
	InstanceID string         `json:"instanceId"`
	Component  string         `json:"component"`
	Broadcast  *broadcast     `json:"broadcast"`
}

type broadcast struct {
	Machine   string `json:"machine"`
	State     string `json:"state"`
	Component string `json:"component"`
}

// New returns a hook handler that asks the endpoint at rawURL (typically set as
// xcomponent.Options.DefaultHook, so that it serves every method without a Go handler).
func New(rawURL string, opts Options) xc.HookFunc {
	client := opts.Client
	if client == nil {
		client = &http.Client{}
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	headers := opts.Headers.Clone()
	shown := redact.URL(rawURL)

	return func(ctx context.Context, h *xc.Hook) error {
		body, err := json.Marshal(request{
			Hook: h.Kind, Method: h.Method, Component: h.Component, Machine: h.Machine,
			InstanceID: h.InstanceID, State: h.State, From: h.From, To: h.To,
			Event:   event{Type: h.Event.Type, Payload: h.Event.Payload, ID: h.Event.ID, CorrelationID: h.Event.CorrelationID},
			Context: h.Data,
		})
		if err != nil {
			return fmt.Errorf("hooks endpoint %s: encode request: %w", shown, err)
		}
		callCtx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(callCtx, http.MethodPost, rawURL, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrEndpoint, shown, stripURLError(err))
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", "xcomponent-hooks")
		for name, values := range headers {
			if http.CanonicalHeaderKey(name) == "Host" && len(values) > 0 {
				req.Host = values[0]
				continue
			}
			req.Header[http.CanonicalHeaderKey(name)] = values
		}
		// The hook's span (when tracing is on): the endpoint can join the trace.
		telemetry.InjectHTTP(ctx, req.Header)

		resp, err := client.Do(req)
		if err != nil {
			err = stripURLError(err)
			if errors.Is(err, context.DeadlineExceeded) && callCtx.Err() != nil && ctx.Err() == nil {
				err = fmt.Errorf("no answer within %s", timeout)
			}
			log.WarnContext(ctx, "hooks endpoint unreachable", "url", shown, "method", h.Method, "instance", h.InstanceID, "err", err)
			return fmt.Errorf("%w: %s: %v", ErrEndpoint, shown, err)
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
		if err != nil {
			return fmt.Errorf("%w: %s: %s: read answer: %v", ErrEndpoint, shown, resp.Status, stripURLError(err))
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			log.Warn("hooks endpoint error", "url", shown, "status", resp.StatusCode, "method", h.Method, "instance", h.InstanceID, "body", snippet(raw))
			return fmt.Errorf("%w: %s: %s", ErrEndpoint, shown, resp.Status)
		}
		if len(raw) > MaxResponseBytes {
			return fmt.Errorf("%w: %s: %s: answer larger than %d bytes", ErrEndpoint, shown, resp.Status, MaxResponseBytes)
		}
		if resp.StatusCode == http.StatusNoContent || len(bytes.TrimSpace(raw)) == 0 {
			return nil
		}
		var r reply
		if err := decodeReply(raw, &r); err != nil {
			log.Warn("hooks endpoint answer is not valid", "url", shown, "method", h.Method, "instance", h.InstanceID, "body", snippet(raw))
			return fmt.Errorf("%w: %s: %s: malformed answer: %v", ErrEndpoint, shown, resp.Status, err)
		}
		if r.Error != "" {
			return &VetoError{Message: r.Error}
		}
		if len(r.Send) > 0 && h.Send == nil {
			return fmt.Errorf("%w: %s: answer sends events but the hook has no sender", ErrEndpoint, shown)
		}
		if err := validate(r.Send); err != nil {
			return fmt.Errorf("%w: %s: %s: malformed answer: %v", ErrEndpoint, shown, resp.Status, err)
		}
		apply(h, &r)
		return nil
	}
}

// decodeReply decodes an answer keeping its numbers exact, then applies the engine's data
// checks to what it sets: an integer beyond 2^53 is refused (a malformed answer, so a veto)
// instead of being stored rounded, and the data become float64 numbers as everywhere else.
func decodeReply(raw []byte, r *reply) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(r); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON value")
	}
	var err error
	if r.Context, err = xc.CheckData(r.Context); err != nil {
		return err
	}
	for i := range r.Send {
		if r.Send[i].Payload, err = xc.CheckData(r.Send[i].Payload); err != nil {
			return fmt.Errorf("send[%d].payload: %w", i, err)
		}
	}
	return nil
}

// validate checks every send before any is queued, so an answer is applied whole or not at all.
func validate(sends []sendItem) error {
	for i, s := range sends {
		if s.Type == "" {
			return fmt.Errorf("send[%d]: no event type", i)
		}
		if s.Broadcast != nil {
			if s.Broadcast.Machine == "" {
				return fmt.Errorf("send[%d]: broadcast without machine", i)
			}
			if s.InstanceID != "" {
				return fmt.Errorf("send[%d]: both broadcast and instanceId", i)
			}
			continue
		}
		if s.Component != "" && s.InstanceID == "" {
			return fmt.Errorf("send[%d]: component without instanceId", i)
		}
	}
	return nil
}

func apply(h *xc.Hook, r *reply) {
	if h.Data == nil && len(r.Context) > 0 {
		h.Data = make(map[string]any, len(r.Context))
	}
	for k, v := range r.Context {
		if v == nil {
			delete(h.Data, k)
		} else {
			h.Data[k] = v
		}
	}
	for _, s := range r.Send {
		ev := xc.Event{Type: s.Type, Payload: s.Payload}
		switch {
		case s.Broadcast != nil:
			h.Send.Broadcast(s.Broadcast.Machine, ev, s.Broadcast.State, s.Broadcast.Component)
		case s.InstanceID == "":
			h.Send.SendToSelf(ev)
		case s.Component != "":
			h.Send.SendToComponent(s.Component, s.InstanceID, ev)
		default:
			h.Send.SendTo(s.InstanceID, ev)
		}
	}
}

// stripURLError drops the *url.Error wrapper, whose message repeats the URL with its query.
func stripURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func snippet(b []byte) string {
	const max = 200
	if len(b) > max {
		return strings.ToValidUTF8(string(b[:max]), "") + "…"
	}
	return strings.ToValidUTF8(string(b), "?")
}

// ParseHeader parses a "Name: value" header line, as given to --hooks-header. Errors do not
// echo the line: it often holds a credential.
func ParseHeader(line string) (name, value string, err error) {
	name, value, ok := strings.Cut(line, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") {
		return "", "", errors.New("hooks header: want 'Name: value'")
	}
	if strings.ContainsAny(value, "\r\n") {
		return "", "", fmt.Errorf("hooks header %s: value has a line break", name)
	}
	return http.CanonicalHeaderKey(name), strings.TrimSpace(value), nil
}

// CheckURL says whether rawURL can be an endpoint: an absolute http or https URL. The error
// does not echo credentials.
func CheckURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("hooks URL %s: want http://host/… or https://host/…", redact.URL(rawURL))
	}
	return nil
}
