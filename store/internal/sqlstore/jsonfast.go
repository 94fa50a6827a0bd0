package sqlstore

import (
	"strconv"
	"unicode/utf8"
)

// Interner hands out one copy of each short string it has seen (context keys, machine and
// state names): a restore of a million instances then allocates each key once instead of a
// million times, and the restored records share them. It is bounded, so that a column of
// distinct values cannot make it grow without limit. Not safe for concurrent use.
type Interner struct {
	m map[string]string
}

// internMax bounds an Interner; internLen is the longest string it keeps.
const (
	internMax = 4096
	internLen = 64
)

// Bytes returns b as a string, the interned copy when there is one.
func (in *Interner) Bytes(b []byte) string {
	if in == nil || len(b) > internLen {
		return string(b)
	}
	if s, ok := in.m[string(b)]; ok { // no allocation: the compiler recognises the lookup
		return s
	}
	s := string(b)
	if in.m == nil {
		in.m = make(map[string]string)
	}
	if len(in.m) < internMax {
		in.m[s] = s
	}
	return s
}

// DecodeMapInterned is DecodeMap with keys (and short string values) interned in in. It
// decodes the common shapes itself — objects, arrays, strings without escapes, numbers,
// true, false, null — into exactly what encoding/json produces (float64 numbers,
// map[string]any, []any), and hands anything else (escapes, invalid UTF-8, malformed text)
// to encoding/json, so that the result, errors included, is always encoding/json's.
func DecodeMapInterned(b []byte, in *Interner) (map[string]any, error) {
	return DecodeMapReusing(nil, b, in)
}

// DecodeMapReusing is DecodeMapInterned decoding into reuse, an empty map, when it is not nil
// and the fast reader decodes b (the result is then reuse).
func DecodeMapReusing(reuse map[string]any, b []byte, in *Interner) (map[string]any, error) {
	if len(b) == 0 || string(b) == "null" || string(b) == "{}" {
		if reuse != nil {
			return reuse, nil
		}
		return map[string]any{}, nil
	}
	d := fastDecoder{b: b, in: in, reuse: reuse}
	d.skipSpace()
	if d.i < len(d.b) && d.b[d.i] == '{' {
		if m, ok := d.object(0); ok {
			d.skipSpace()
			if d.i == len(d.b) {
				return m, nil
			}
		}
	}
	return DecodeMap(b)
}

// fastDecoder is a JSON reader for the common case; every method returns ok false when the
// input is outside what it handles, and the caller falls back to encoding/json.
type fastDecoder struct {
	b  []byte
	i  int
	in *Interner
	// reuse, when not nil, is the empty map the top-level object is decoded into (a failed
	// decoding may leave members in it: the caller falls back to encoding/json and a new map).
	reuse map[string]any
}

// maxDepth stays well under encoding/json's nesting limit (10000), so that what fails there
// is never accepted here.
const maxDepth = 64

func (d *fastDecoder) skipSpace() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// object reads {…}; d.b[d.i] is '{'.
func (d *fastDecoder) object(depth int) (map[string]any, bool) {
	if depth > maxDepth {
		return nil, false
	}
	d.i++
	m := d.reuse
	if m == nil || depth > 0 {
		m = make(map[string]any, 8)
	}
	d.skipSpace()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return m, true
	}
	for {
		d.skipSpace()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return nil, false
		}
		kb, ok := d.stringBytes()
		if !ok {
			return nil, false
		}
		key := d.in.Bytes(kb)
		d.skipSpace()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return nil, false
		}
		d.i++
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		m[key] = v
		if end, ok := d.separator('}'); !ok {
			return nil, false
		} else if end {
			return m, true
		}
	}
}

// array reads […]; d.b[d.i] is '['.
func (d *fastDecoder) array(depth int) ([]any, bool) {
	if depth > maxDepth {
		return nil, false
	}
	d.i++
	out := []any{}
	d.skipSpace()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return out, true
	}
	for {
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		out = append(out, v)
		if end, ok := d.separator(']'); !ok {
			return nil, false
		} else if end {
			return out, true
		}
	}
}

// separator reads what follows a member or an element: ',' (more follow) or closing (end).
func (d *fastDecoder) separator(closing byte) (end, ok bool) {
	d.skipSpace()
	if d.i >= len(d.b) {
		return false, false
	}
	switch d.b[d.i] {
	case ',':
		d.i++
		return false, true
	case closing:
		d.i++
		return true, true
	}
	return false, false
}

func (d *fastDecoder) value(depth int) (any, bool) {
	d.skipSpace()
	if d.i >= len(d.b) {
		return nil, false
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.object(depth + 1)
	case c == '[':
		return d.array(depth + 1)
	case c == '"':
		sb, ok := d.stringBytes()
		if !ok {
			return nil, false
		}
		return d.in.Bytes(sb), true
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	}
	return nil, false
}

func (d *fastDecoder) literal(lit string) bool {
	if len(d.b)-d.i < len(lit) || string(d.b[d.i:d.i+len(lit)]) != lit {
		return false
	}
	d.i += len(lit)
	return true
}

// stringBytes reads a string without escapes and returns its contents; d.b[d.i] is '"'.
// Escapes, control characters and invalid UTF-8 (which encoding/json replaces) are left to
// encoding/json.
func (d *fastDecoder) stringBytes() ([]byte, bool) {
	start := d.i + 1
	ascii := true
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			s := d.b[start:j]
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			d.i = j + 1
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= 0x80:
			ascii = false
		}
	}
	return nil, false
}

// number reads a number with JSON's grammar, as encoding/json does into an any: float64.
func (d *fastDecoder) number() (any, bool) {
	start := d.i
	j := d.i
	if d.b[j] == '-' {
		j++
	}
	digits := func() bool {
		k := j
		for j < len(d.b) && d.b[j] >= '0' && d.b[j] <= '9' {
			j++
		}
		return j > k
	}
	switch {
	case j < len(d.b) && d.b[j] == '0':
		j++
	case !digits():
		return nil, false
	}
	if j < len(d.b) && d.b[j] == '.' {
		j++
		if !digits() {
			return nil, false
		}
	}
	if j < len(d.b) && (d.b[j] == 'e' || d.b[j] == 'E') {
		j++
		if j < len(d.b) && (d.b[j] == '+' || d.b[j] == '-') {
			j++
		}
		if !digits() {
			return nil, false
		}
	}
	f, err := strconv.ParseFloat(string(d.b[start:j]), 64)
	if err != nil { // out of range: encoding/json's error
		return nil, false
	}
	d.i = j
	return f, true
}
