package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode"

	"github.com/google/uuid"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/store"
)

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error  string          `json:"error"`
	Fields []xc.FieldError `json:"fields,omitempty"`
}

// apiError is an error of the HTTP layer itself, with its status.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &apiError{status: http.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

// statusOf maps an error to its HTTP status. It is the only place where errors become
// statuses.
func statusOf(err error) int {
	var ae *apiError
	var ce *xc.ContextError
	switch {
	case errors.As(err, &ae):
		return ae.status
	case errors.As(err, &ce):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, xc.ErrNotFound), errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, xc.ErrNotAccepted), errors.Is(err, xc.ErrSingleton), errors.Is(err, xc.ErrHookFailed), errors.Is(err, ErrInProgress):
		return http.StatusConflict
	case errors.Is(err, ErrNotImplemented):
		return http.StatusNotImplemented
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, xc.ErrStore), errors.Is(err, xc.ErrClosed), errors.Is(err, xc.ErrBusy), errors.Is(err, ErrUnavailable),
		errors.Is(err, store.ErrClosed), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// sentinels are trimmed from the end of messages: "no transition …: event not accepted"
// reads better as "no transition …".
var sentinels = []error{xc.ErrNotAccepted, xc.ErrNotFound, xc.ErrSingleton, store.ErrNotFound}

func message(err error) string {
	msg := err.Error()
	for _, s := range sentinels {
		msg = strings.TrimSuffix(msg, ": "+s.Error())
	}
	return msg
}

// writeError answers err with its status and {"error": message} (plus the fields of a
// contextSchema violation).
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	body := errorBody{Error: message(err)}
	var ce *xc.ContextError
	switch {
	case errors.As(err, &ce):
		body.Fields = ce.Fields
	case status == http.StatusInternalServerError:
		s.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		body.Error = "internal error"
	case status == http.StatusGatewayTimeout:
		body.Error = "timed out: " + body.Error
	case status == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="xcomponent"`)
	}
	_ = writeJSON(w, status, body)
}

// marshal encodes v as JSON without HTML escaping (diagrams keep their "-->"), with a final
// newline.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeJSON writes v as the JSON answer.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := marshal(v)
	if err != nil {
		return fmt.Errorf("encode answer: %w", err)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, err = w.Write(b)
	return err
}

// decode reads a JSON object body into v: at most MaxBodyBytes, one object, unknown fields
// ignored. An empty body leaves v as it is when allowEmpty. The content type was checked
// before (checkWrite: application/json only).
func (s *server) decode(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) error {
	bp, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	defer s.bufs.put(bp)
	return decodeBody(*bp, v, allowEmpty, s.opts.MaxBodyBytes)
}

// readBody reads a request body of at most MaxBodyBytes, checked not to be nested deeper
// than MaxJSONDepth, into a pooled buffer (give it back with s.bufs.put).
func (s *server) readBody(w http.ResponseWriter, r *http.Request) (*[]byte, error) {
	bp := s.bufs.get()
	body := http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	b := *bp
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			*bp = b
			s.bufs.put(bp)
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, bodyError(err, s.opts.MaxBodyBytes)
			}
			return nil, badRequest("reading the request body: %v", err)
		}
	}
	*bp = b
	if d := jsonDepth(b); d > MaxJSONDepth {
		s.bufs.put(bp)
		return nil, badRequest("request body nested %d levels deep: at most %d levels of objects and arrays are accepted", d, MaxJSONDepth)
	}
	return bp, nil
}

// decodeBody decodes a JSON object body into v (see decode).
func decodeBody(data []byte, v any, allowEmpty bool, limit int64) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // the engine keeps numbers exact or refuses them (never rounds silently)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) && allowEmpty {
			return nil
		}
		return bodyError(err, limit)
	}
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		return badRequest("malformed JSON: unexpected data after the object")
	}
	return nil
}

// MaxJSONDepth bounds the nesting of objects and arrays in request bodies: deeper data is no
// business data, and it breaks consumers that recurse (the dashboard's JSON.stringify,
// other languages' parsers).
const MaxJSONDepth = 64

// jsonDepth is the deepest nesting of objects and arrays in data (strings skipped); it does
// not validate the JSON (the decoder does).
func jsonDepth(data []byte) int {
	depth, max, inString, escaped := 0, 0, false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > max {
				max = depth
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return max
}

func bodyError(err error, limit int64) error {
	var ae *apiError
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &mbe):
		return &apiError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body larger than %d bytes", limit)}
	case errors.Is(err, io.EOF):
		return badRequest("empty request body: want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: unexpected end of the body")
	case errors.As(err, &se):
		return badRequest("malformed JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		if te.Field == "" {
			return badRequest("request body must be a JSON object, not %s", te.Value)
		}
		return badRequest("%s: want %s, got %s", te.Field, jsonType(te.Type.Kind().String()), te.Value)
	default:
		return badRequest("malformed JSON: %v", err)
	}
}

func jsonType(kind string) string {
	switch kind {
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "float64", "int", "int64":
		return "a number"
	default:
		return kind
	}
}

// maxName bounds names and event types given by clients.
const maxName = 256

// checkName validates a name or event type given by a client: not empty, at most maxName
// bytes, no control characters.
func checkName(what, v string) error {
	if v == "" {
		return badRequest("%s is required", what)
	}
	if len(v) > maxName {
		return badRequest("%s is longer than %d bytes", what, maxName)
	}
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return badRequest("%s contains control characters", what)
	}
	return nil
}

// checkID validates an instance (or correlation) id: ids are UUIDs, anything else is a bad
// request (400), so that a typo is not mistaken for a missing instance.
func checkID(v string) error {
	if len(v) != 36 {
		return badRequest("invalid id %q: want a UUID", truncate(v, 64))
	}
	if _, err := uuid.Parse(v); err != nil {
		return badRequest("invalid id %q: want a UUID", truncate(v, 64))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// pathID is the {id} of the path, lowercased: UUIDs are case-insensitive and stored in
// lowercase, so an id written in uppercase names the same instance.
func pathID(r *http.Request) string { return strings.ToLower(r.PathValue("id")) }
