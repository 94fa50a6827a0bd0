package xcomponent

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// maxExactInt is 2^53: integers beyond it cannot all be represented by a float64, the type
// instance data holds numbers in (and JavaScript, the other runtime, too).
const maxExactInt = 1 << 53

// cleanData checks data entering the engine from outside (create context, event payloads)
// and returns a copy safe to store on every store:
//   - strings and keys must not contain NUL (U+0000): PostgreSQL's jsonb and text refuse it,
//     so the same input would be accepted by SQLite and be an outage on PostgreSQL;
//   - json.Number values (decoded with UseNumber) become float64 when that is exact enough:
//     an integer beyond ±2^53 or a number out of float64's range is refused rather than
//     rounded, so data is never changed silently.
//
// Violations are returned with the path of the value at fault ("address.city", "items[2]").
func cleanData(data map[string]any) (map[string]any, []FieldError) {
	if data == nil {
		return nil, nil
	}
	var errs []FieldError
	out := cleanValue("", data, &errs)
	if len(errs) > 0 {
		return nil, errs
	}
	m, _ := out.(map[string]any)
	return m, nil
}

func cleanValue(path string, v any, errs *[]FieldError) any {
	if len(*errs) >= 20 { // enough to say what is wrong
		return nil
	}
	switch x := v.(type) {
	case string:
		if strings.IndexByte(x, 0) >= 0 {
			*errs = append(*errs, FieldError{Field: fieldPath(path), Message: "must not contain a NUL character (\\u0000)"})
		}
		return v // not x: boxing x again would allocate a copy of the string header
	case json.Number:
		f, msg := exactNumber(string(x))
		if msg != "" {
			*errs = append(*errs, FieldError{Field: fieldPath(path), Message: msg})
		}
		return f
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			*errs = append(*errs, FieldError{Field: fieldPath(path), Message: "must be a finite number"})
		}
		return v
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if strings.IndexByte(k, 0) >= 0 {
				*errs = append(*errs, FieldError{Field: strings.ReplaceAll(p, "\x00", `\u0000`), Message: "key must not contain a NUL character (\\u0000)"})
				continue
			}
			m[k] = cleanValue(p, e, errs)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = cleanValue(fmt.Sprintf("%s[%d]", path, i), e, errs)
		}
		return s
	}
	return v
}

func fieldPath(p string) string {
	if p == "" {
		return "(value)"
	}
	return p
}

// exactNumber converts a JSON number literal to float64, or says why it cannot be kept
// exactly.
func exactNumber(lit string) (float64, string) {
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, fmt.Sprintf("number %s is out of range", short(lit))
	}
	if strings.ContainsAny(lit, ".eE") {
		return f, "" // a fraction or exponent form: float64 is what was meant
	}
	// An integer literal: f may already be rounded (2^53+1 parses as 2^53), so check the
	// literal itself.
	if i, err := strconv.ParseInt(lit, 10, 64); err != nil || i > maxExactInt || i < -maxExactInt {
		return 0, fmt.Sprintf("integer %s is beyond ±2^53 (9007199254740992) and cannot be kept exactly; send it as a string", short(lit))
	}
	return f, ""
}

func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// cleanEvent checks an event from outside: its payload (see cleanData) and its strings.
func cleanEvent(ev *Event) error {
	var errs []FieldError
	for _, f := range [...]struct{ name, v string }{
		{"type", ev.Type}, {"id", ev.ID}, {"actor", ev.Actor}, {"correlationId", ev.CorrelationID},
		{"causationId", ev.CausationID}, {"sourceComponent", ev.SourceComponent}, {"reason", ev.Reason},
	} {
		if strings.IndexByte(f.v, 0) >= 0 {
			errs = append(errs, FieldError{Field: f.name, Message: "must not contain a NUL character (\\u0000)"})
		}
	}
	payload, perrs := cleanData(ev.Payload)
	for _, fe := range perrs {
		errs = append(errs, FieldError{Field: "payload." + fe.Field, Message: fe.Message})
	}
	if len(errs) > 0 {
		return &ContextError{Subject: "event " + strconv.Quote(strings.ReplaceAll(ev.Type, "\x00", `\u0000`)), Fields: errs}
	}
	if ev.Payload != nil {
		ev.Payload = payload
	}
	return nil
}

// CheckData applies the engine's checks on data from outside (see cleanData) for a process
// that forwards it to another runtime (the distributed dashboard): it returns the data to
// send, or a *ContextError naming the values no store could keep as sent.
func CheckData(data map[string]any) (map[string]any, error) {
	out, ferrs := cleanData(data)
	if len(ferrs) > 0 {
		return nil, &ContextError{Subject: "context", Fields: ferrs}
	}
	return out, nil
}

// CheckEvent is CheckData for an event: its payload and its strings. ev.Payload is replaced
// by the checked copy.
func CheckEvent(ev *Event) error { return cleanEvent(ev) }
