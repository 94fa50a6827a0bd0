package component

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// contextSchema decodes a machine's contextSchema: a mapping field → definition, in file order.
func (l *loader) contextSchema(m *Machine, o *object) {
	m.ContextSchema = make(map[string]*SchemaField, len(o.order))
	for _, name := range o.order {
		fo := l.object(o.vals[name], o.sub(name), schemaFieldKeys)
		if fo == nil {
			continue
		}
		f := l.schemaField(fo)
		m.ContextSchema[name] = f
		m.SchemaOrder = append(m.SchemaOrder, name)
	}
}

func (l *loader) schemaField(o *object) *SchemaField {
	f := &SchemaField{Pos: l.pos(o.node)}
	l.remember(f, o)
	if f.Type = o.required("type"); f.Type != "" && !l.checkEnum(o, "type", f.Type, fieldTypes) {
		f.Type = ""
	}
	f.Label, _ = o.str("label")
	f.Placeholder, _ = o.str("placeholder")
	f.Description, _ = o.str("description")
	f.Required, _ = o.boolean("required")
	f.Min = o.number("min")
	f.Max = o.number("max")
	if f.Min != nil && f.Max != nil && *f.Min > *f.Max {
		l.errorf(o.loc("max"), "max (%v) is less than min (%v)", *f.Max, *f.Min)
	}
	if p, ok := o.str("pattern"); ok {
		re, err := regexp.Compile(p)
		if err != nil {
			l.errorf(o.loc("pattern"), "invalid pattern %q: %s", p, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		} else {
			f.Pattern, f.re = p, re
		}
	}
	for i, on := range o.list("options") {
		if opt, ok := l.schemaOption(on, index(o.sub("options"), i)); ok {
			f.Options = append(f.Options, opt)
		}
	}
	switch {
	case f.Type == "select" && len(f.Options) == 0 && !o.has("options"):
		l.errorf(loc{l.pos(o.node), o.sub("options")}, "select field needs options")
	case f.Type == "select" && len(f.Options) == 0 && o.value("options").Kind == yaml.SequenceNode:
		l.errorf(o.loc("options"), "select field needs at least one option")
	case f.Type != "select" && f.Type != "" && o.has("options"):
		l.warnf(o.keyLoc("options"), "options are only used by select fields; ignored on a %s field", f.Type)
	}
	if o.has("default") {
		f.Default = o.any("default")
		if f.Type != "" && f.Default != nil {
			if _, msg := f.check(f.Default); msg != "" {
				l.errorf(o.loc("default"), "default %s", msg)
			}
		}
	}
	return f
}

func (l *loader) schemaOption(n *yaml.Node, path string) (SchemaOption, bool) {
	if n.Kind == yaml.ScalarNode {
		if isNull(n) {
			l.errorf(l.locOf(n, path), "an option must be a value or {value, label}, got null")
			return SchemaOption{}, false
		}
		return SchemaOption{Value: l.generic(n, path), Label: n.Value}, true
	}
	o := l.object(n, path, schemaOptionKeys)
	if o == nil {
		return SchemaOption{}, false
	}
	if !o.has("value") {
		o.required("value")
		return SchemaOption{}, false
	}
	opt := SchemaOption{Value: o.any("value")}
	if label, ok := o.str("label"); ok {
		opt.Label = label
	} else {
		opt.Label = fmt.Sprint(opt.Value)
	}
	return opt, true
}

// ValidateContext checks instance data against the machine's contextSchema. It returns a new
// map (data is not modified) with defaults applied and values coerced to the field types
// (numbers and booleans given as strings), and the violations in schema order. Keys the
// schema does not describe are kept as they are. A machine without schema returns a copy.
func (m *Machine) ValidateContext(data map[string]any) (map[string]any, []FieldError) {
	out := make(map[string]any, len(data)+len(m.ContextSchema))
	for k, v := range data {
		out[k] = v
	}
	var errs []FieldError
	for _, name := range m.schemaOrder() {
		f := m.ContextSchema[name]
		if f == nil {
			continue
		}
		v, present := data[name]
		if !present || v == nil || v == "" {
			switch {
			case f.Default != nil:
				out[name] = deepCopy(f.Default)
			case f.Required:
				errs = append(errs, FieldError{Field: name, Message: "is required"})
			}
			continue
		}
		val, msg := f.check(v)
		if msg != "" {
			errs = append(errs, FieldError{Field: name, Message: msg})
			continue
		}
		out[name] = val
	}
	return out, errs
}

// ValidatePayload checks the fields an event payload sets against the machine's
// contextSchema, before the payload is merged into the instance data: each described field
// present in payload must pass its type and constraints, and a required field cannot be set
// to null or "". It returns a copy of payload with values coerced as ValidateContext does,
// and the violations in schema order. Fields the payload does not set are not checked
// (data already stored was checked when it entered).
func (m *Machine) ValidatePayload(payload map[string]any) (map[string]any, []FieldError) {
	if len(m.ContextSchema) == 0 {
		return payload, nil
	}
	out := make(map[string]any, len(payload))
	for k, v := range payload {
		out[k] = v
	}
	var errs []FieldError
	for _, name := range m.schemaOrder() {
		f := m.ContextSchema[name]
		v, present := payload[name]
		if f == nil || !present {
			continue
		}
		if v == nil || v == "" {
			if f.Required {
				errs = append(errs, FieldError{Field: name, Message: "is required and cannot be set to " + describe(v)})
			}
			continue
		}
		val, msg := f.check(v)
		if msg != "" {
			errs = append(errs, FieldError{Field: name, Message: msg})
			continue
		}
		out[name] = val
	}
	return out, errs
}

// schemaOrder is SchemaOrder, or the sorted field names for a schema built in code.
func (m *Machine) schemaOrder() []string {
	if len(m.SchemaOrder) == len(m.ContextSchema) {
		return m.SchemaOrder
	}
	names := make([]string, 0, len(m.ContextSchema))
	for k := range m.ContextSchema {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// check validates one present value against the field and returns it coerced to the field's
// type, or a message saying what is wrong.
func (f *SchemaField) check(v any) (any, string) {
	switch f.Type {
	case "text", "string":
		s, ok := v.(string)
		if !ok {
			return nil, "must be a string, got " + describe(v)
		}
		n := float64(utf8.RuneCountInString(s))
		if f.Min != nil && n < *f.Min {
			return nil, "must be at least " + formatNumber(*f.Min) + " characters long"
		}
		if f.Max != nil && n > *f.Max {
			return nil, "must be at most " + formatNumber(*f.Max) + " characters long"
		}
		if msg := f.checkPattern(s); msg != "" {
			return nil, msg
		}
		return s, ""
	case "number":
		n, ok := toNumber(v)
		if !ok {
			return nil, "must be a number, got " + describe(v)
		}
		if f.Min != nil && n < *f.Min {
			return nil, "must be at least " + formatNumber(*f.Min)
		}
		if f.Max != nil && n > *f.Max {
			return nil, "must be at most " + formatNumber(*f.Max)
		}
		if s, isString := v.(string); isString {
			if msg := f.checkPattern(s); msg != "" {
				return nil, msg
			}
			return n, ""
		}
		if _, isJSON := v.(json.Number); isJSON {
			return n, ""
		}
		return v, ""
	case "boolean":
		switch x := v.(type) {
		case bool:
			return x, ""
		case string:
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "true":
				return true, ""
			case "false":
				return false, ""
			}
		}
		return nil, "must be true or false, got " + describe(v)
	case "select":
		for _, opt := range f.Options {
			if sameValue(opt.Value, v) {
				return opt.Value, ""
			}
		}
		vals := make([]string, len(f.Options))
		for i, opt := range f.Options {
			vals[i] = fmt.Sprint(opt.Value)
		}
		return nil, fmt.Sprintf("must be one of %s, got %v", strings.Join(vals, ", "), v)
	case "array":
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			return nil, "must be a list, got " + describe(v)
		}
		n := float64(rv.Len())
		if f.Min != nil && n < *f.Min {
			return nil, fmt.Sprintf("must have at least %v items", *f.Min)
		}
		if f.Max != nil && n > *f.Max {
			return nil, fmt.Sprintf("must have at most %v items", *f.Max)
		}
		return v, ""
	}
	return v, ""
}

func (f *SchemaField) checkPattern(s string) string {
	re := f.re
	if re == nil && f.Pattern != "" {
		var err error
		if re, err = regexp.Compile(f.Pattern); err != nil {
			return fmt.Sprintf("cannot be checked: invalid pattern %q", f.Pattern)
		}
	}
	if re != nil && !re.MatchString(s) {
		return fmt.Sprintf("does not match pattern %s", f.Pattern)
	}
	return ""
}

// toNumber reads a number of any Go numeric type or a numeric string.
func toNumber(v any) (float64, bool) {
	if s, ok := v.(string); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, false
		}
		return f, true
	}
	f, ok := Number(v)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// sameValue compares a select option with a given value: numbers by value whatever their Go
// type, and a string against the option's text (forms send strings).
func sameValue(opt, v any) bool {
	if a, ok := Number(opt); ok {
		if b, ok := toNumber(v); ok {
			return a == b
		}
		return false
	}
	if s, ok := v.(string); ok {
		return fmt.Sprint(opt) == s
	}
	return reflect.DeepEqual(opt, v)
}

// deepCopy copies the maps and lists of a decoded value, so that a default handed to an
// instance can be changed without touching the schema.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}

// formatNumber writes a bound for people: no exponent, thousands grouped (1000000 →
// "1,000,000", 0.5 → "0.5").
func formatNumber(n float64) string {
	s := strconv.FormatFloat(n, 'f', -1, 64)
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	intPart, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if hasFrac {
		return sign + b.String() + "." + frac
	}
	return sign + b.String()
}
