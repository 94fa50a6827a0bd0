package sqlstore

import (
	"encoding/json"

	"github.com/xcomponent/xcomponent/store"
)

// DecodeTimers decodes a pending_timeouts column (a JSON array of store.Timer): what
// json.Unmarshal gives, errors included. The common shape — objects with exactly the field
// names of store.Timer, strings without escapes, integers, true and false — is read here, 5×
// cheaper than encoding/json's reflection (a restore reads one per instance with a timer);
// anything else (other or differently cased names, null, escapes, fractions, exponents, numbers
// of more than 18 digits, malformed text) is handed to encoding/json.
func DecodeTimers(b []byte, in *Interner) ([]store.Timer, error) {
	if ts, ok := decodeTimersFast(b, in); ok {
		return ts, nil
	}
	var ts []store.Timer
	if err := json.Unmarshal(b, &ts); err != nil {
		return nil, err
	}
	return ts, nil
}

func decodeTimersFast(b []byte, in *Interner) ([]store.Timer, bool) {
	d := fastDecoder{b: b, in: in}
	d.skipSpace()
	if d.i >= len(d.b) || d.b[d.i] != '[' {
		return nil, false
	}
	d.i++
	d.skipSpace()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		d.skipSpace()
		return []store.Timer{}, d.i == len(d.b)
	}
	var ts []store.Timer
	for {
		d.skipSpace()
		if d.i >= len(d.b) || d.b[d.i] != '{' {
			return nil, false
		}
		t, ok := d.timer()
		if !ok {
			return nil, false
		}
		ts = append(ts, t)
		if end, ok := d.separator(']'); !ok {
			return nil, false
		} else if end {
			break
		}
	}
	d.skipSpace()
	return ts, d.i == len(d.b)
}

// timer reads one store.Timer object; d.b[d.i] is '{'.
func (d *fastDecoder) timer() (store.Timer, bool) {
	var t store.Timer
	d.i++
	d.skipSpace()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return t, true
	}
	for {
		d.skipSpace()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return t, false
		}
		key, ok := d.stringBytes()
		if !ok {
			return t, false
		}
		d.skipSpace()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return t, false
		}
		d.i++
		d.skipSpace()
		switch string(key) {
		case "event":
			t.Event, ok = d.str()
		case "targetState":
			t.TargetState, ok = d.str()
		case "kind":
			t.Kind, ok = d.str()
		case "causationId":
			t.CausationID, ok = d.str()
		case "correlationId":
			t.CorrelationID, ok = d.str()
		case "dueAt":
			t.DueAt, ok = d.int()
		case "totalMs":
			t.TotalMs, ok = d.int()
		case "armedAt":
			t.ArmedAt, ok = d.int()
		case "transition":
			var n int64
			n, ok = d.int()
			t.Transition = int(n)
		case "spent":
			switch {
			case d.i < len(d.b) && d.b[d.i] == 't':
				t.Spent, ok = true, d.literal("true")
			case d.i < len(d.b) && d.b[d.i] == 'f':
				t.Spent, ok = false, d.literal("false")
			default:
				ok = false
			}
		default:
			ok = false // another name, or one that matches only without case: encoding/json
		}
		if !ok {
			return t, false
		}
		if end, ok := d.separator('}'); !ok {
			return t, false
		} else if end {
			return t, true
		}
	}
}

// str reads a string without escapes (stringBytes).
func (d *fastDecoder) str() (string, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return "", false
	}
	s, ok := d.stringBytes()
	if !ok {
		return "", false
	}
	return d.in.Bytes(s), true
}

// int reads an integer of at most 18 digits (which int64 holds): JSON's grammar, no fraction,
// no exponent.
func (d *fastDecoder) int() (int64, bool) {
	j := d.i
	neg := j < len(d.b) && d.b[j] == '-'
	if neg {
		j++
	}
	start := j
	var n int64
	for j < len(d.b) && d.b[j] >= '0' && d.b[j] <= '9' {
		n = n*10 + int64(d.b[j]-'0')
		j++
	}
	digits := j - start
	if digits == 0 || digits > 18 || (d.b[start] == '0' && digits > 1) {
		return 0, false
	}
	if j < len(d.b) && (d.b[j] == '.' || d.b[j] == 'e' || d.b[j] == 'E') {
		return 0, false
	}
	d.i = j
	if neg {
		n = -n
	}
	return n, true
}
