package httpapi

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	xc "github.com/xcomponent/xcomponent"
)

// The answers of the hot endpoints (an event, a create, a page of instances) are encoded by
// hand into pooled buffers: encoding/json spends most of its time in reflection and in
// sorting map keys through interfaces, and allocates its output for every request. The
// bytes are exactly those encoding/json writes (SetEscapeHTML(false), final newline):
// fastjson_test.go compares the two on generated values. A value of a type the encoder does
// not know (what a hook may put in the data) goes through encoding/json.

// bufPool holds answer buffers; buffers grown beyond maxPooledBuf are dropped.
type bufPool struct{ p sync.Pool }

const maxPooledBuf = 64 << 10

func (bp *bufPool) get() *[]byte {
	if b, ok := bp.p.Get().(*[]byte); ok {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, 1024)
	return &b
}

func (bp *bufPool) put(b *[]byte) {
	if cap(*b) <= maxPooledBuf {
		bp.p.Put(b)
	}
}

// writeEncoded writes an answer whose JSON enc appends to a pooled buffer; an encoding
// error (a value encoding/json refuses too, such as NaN set by a hook) is returned unwritten.
func (s *server) writeEncoded(w http.ResponseWriter, status int, enc func([]byte) ([]byte, error)) error {
	bp := s.bufs.get()
	defer s.bufs.put(bp)
	b, err := enc(*bp)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	*bp = b
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, err = w.Write(b)
	return err
}

// appendEventAnswer is the answer of the event endpoints: {"eventId", "instance",
// "newState", "previousState", "success": true} (the key order of the map it replaced).
func appendEventAnswer(b []byte, res *xc.Result) ([]byte, error) {
	b = append(b, `{"eventId":`...)
	b = appendString(b, res.EventID)
	b = append(b, `,"instance":`...)
	b, err := appendInstanceItem(b, &res.Instance)
	if err != nil {
		return b, err
	}
	b = append(b, `,"newState":`...)
	b = appendString(b, res.NewState)
	b = append(b, `,"previousState":`...)
	b = appendString(b, res.PreviousState)
	return append(b, `,"success":true}`...), nil
}

// appendCreateAnswer is the answer of a create: {"instance", "instanceId", "success": true}.
func appendCreateAnswer(b []byte, in *xc.Instance) ([]byte, error) {
	b = append(b, `{"instance":`...)
	b, err := appendInstanceItem(b, in)
	if err != nil {
		return b, err
	}
	b = append(b, `,"instanceId":`...)
	b = appendString(b, in.ID)
	return append(b, `,"success":true}`...), nil
}

// appendListAnswer is a page of instances: {"instances": [...], "nextCursor"}.
func appendListAnswer(b []byte, ins []xc.Instance, next string) ([]byte, error) {
	b = append(b, `{"instances":[`...)
	for i := range ins {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendInstanceItem(b, &ins[i]); err != nil {
			return b, err
		}
	}
	b = append(b, `],"nextCursor":`...)
	b = appendString(b, next)
	return append(b, '}'), nil
}

// appendInstanceItem appends an instanceItem: the fields of xc.Instance in their order and
// with their omitempty rules, then instanceId.
func appendInstanceItem(b []byte, in *xc.Instance) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendString(b, in.ID)
	b = append(b, `,"componentName":`...)
	b = appendString(b, in.ComponentName)
	b = append(b, `,"machineName":`...)
	b = appendString(b, in.MachineName)
	b = append(b, `,"currentState":`...)
	b = appendString(b, in.CurrentState)
	b = append(b, `,"context":`...)
	b, err := appendMap(b, in.Context)
	if err != nil {
		return b, err
	}
	if len(in.PublicMember) > 0 {
		b = append(b, `,"publicMember":`...)
		if b, err = appendMap(b, in.PublicMember); err != nil {
			return b, err
		}
	}
	b = append(b, `,"status":`...)
	b = appendString(b, string(in.Status))
	if in.IsEntryPoint {
		b = append(b, `,"isEntryPoint":true`...)
	}
	if in.ParentInstanceID != "" {
		b = append(b, `,"parentInstanceId":`...)
		b = appendString(b, in.ParentInstanceID)
	}
	if in.ParentMachineName != "" {
		b = append(b, `,"parentMachineName":`...)
		b = appendString(b, in.ParentMachineName)
	}
	b = append(b, `,"createdAt":`...)
	b = strconv.AppendInt(b, in.CreatedAt, 10)
	b = append(b, `,"updatedAt":`...)
	b = strconv.AppendInt(b, in.UpdatedAt, 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, in.Version, 10)
	b = append(b, `,"pendingTimeouts":`...)
	if in.PendingTimeouts == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range in.PendingTimeouts {
			if i > 0 {
				b = append(b, ',')
			}
			t := &in.PendingTimeouts[i]
			b = append(b, `{"event":`...)
			b = appendString(b, t.Event)
			b = append(b, `,"targetState":`...)
			b = appendString(b, t.TargetState)
			b = append(b, `,"dueAt":`...)
			b = strconv.AppendInt(b, t.DueAt, 10)
			b = append(b, `,"remainingMs":`...)
			b = strconv.AppendInt(b, t.RemainingMs, 10)
			b = append(b, `,"totalMs":`...)
			b = strconv.AppendInt(b, t.TotalMs, 10)
			b = append(b, `,"kind":`...)
			b = appendString(b, t.Kind)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"instanceId":`...)
	b = appendString(b, in.ID)
	return append(b, '}'), nil
}

// appendMap appends a map with its keys sorted, as encoding/json does (nil is null).
func appendMap(b []byte, m map[string]any) ([]byte, error) {
	if m == nil {
		return append(b, "null"...), nil
	}
	var stack [16]string
	keys := stack[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		var err error
		if b, err = appendValue(b, m[k]); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

// appendValue appends one value of instance data: the types decoded JSON holds are encoded
// here, any other through encoding/json.
func appendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, x), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			break // encoding/json's error
		}
		return appendFloat(b, x), nil
	case map[string]any:
		return appendMap(b, x)
	case []any:
		if x == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendValue(b, e); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return b, err
	}
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})...), nil
}

// appendFloat formats a float64 as encoding/json does (ES6 number formatting).
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json does without HTML
// escaping: quotes, backslashes and control characters, invalid UTF-8 as U+FFFD, and U+2028,
// U+2029 (which JavaScript does not accept in string literals).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
