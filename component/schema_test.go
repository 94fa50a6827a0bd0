package component

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestValidateContext(t *testing.T) {
	m := load(t, "approval.yaml").Machine("ExpenseRequest")
	valid := map[string]any{
		"requestId":    "EXP-42",
		"employeeName": "Alice",
		"amount":       1200,
		"category":     "travel",
	}
	cases := []struct {
		name   string
		change map[string]any // applied to valid; a nil value deletes the key
		want   map[string]any // expected values in the result (nil: absent)
		errs   []FieldError
	}{
		{name: "valid, defaults applied",
			want: map[string]any{"amount": 1200, "urgent": false, "currency": "EUR", "attachments": nil}},
		{name: "number from a string", change: map[string]any{"amount": "42.5"},
			want: map[string]any{"amount": 42.5}},
		{name: "number from JSON", change: map[string]any{"amount": json.Number("7")},
			want: map[string]any{"amount": 7.0}},
		{name: "float64 kept", change: map[string]any{"amount": 99.5},
			want: map[string]any{"amount": 99.5}},
		{name: "boolean from a string", change: map[string]any{"urgent": "true"},
			want: map[string]any{"urgent": true}},
		{name: "boolean false from a string", change: map[string]any{"urgent": "False"},
			want: map[string]any{"urgent": false}},
		{name: "select, list of strings", change: map[string]any{"currency": "USD"},
			want: map[string]any{"currency": "USD"}},
		{name: "array", change: map[string]any{"attachments": []any{"a.pdf"}},
			want: map[string]any{"attachments": []any{"a.pdf"}}},
		{name: "unknown fields kept", change: map[string]any{"note": map[string]any{"x": 1}},
			want: map[string]any{"note": map[string]any{"x": 1}}},
		{name: "required missing, nil and empty", change: map[string]any{"requestId": nil, "employeeName": "", "category": deleteMe},
			errs: []FieldError{{"requestId", "is required"}, {"employeeName", "is required"}, {"category", "is required"}}},
		{name: "wrong types", change: map[string]any{"requestId": 42, "amount": "lots", "urgent": "yes", "attachments": "a.pdf"},
			errs: []FieldError{
				{"requestId", "must be a string, got a number"},
				{"amount", "must be a number, got a string"},
				{"urgent", "must be true or false, got a string"},
				{"attachments", "must be a list, got a string"},
			}},
		{name: "pattern", change: map[string]any{"requestId": "REQ-1"},
			errs: []FieldError{{"requestId", "does not match pattern ^EXP-[0-9]+$"}}},
		{name: "string length", change: map[string]any{"employeeName": "A"},
			errs: []FieldError{{"employeeName", "must be at least 2 characters long"}}},
		{name: "number bounds", change: map[string]any{"amount": 0},
			errs: []FieldError{{"amount", "must be at least 1"}}},
		{name: "number bounds from a string", change: map[string]any{"amount": "100001"},
			errs: []FieldError{{"amount", "must be at most 100,000"}}},
		{name: "array length", change: map[string]any{"attachments": []any{1, 2, 3, 4}},
			errs: []FieldError{{"attachments", "must have at most 3 items"}}},
		{name: "select option", change: map[string]any{"category": "food"},
			errs: []FieldError{{"category", "must be one of travel, equipment, other, got food"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := map[string]any{}
			for k, v := range valid {
				in[k] = v
			}
			for k, v := range tc.change {
				if v == deleteMe {
					delete(in, k)
				} else {
					in[k] = v
				}
			}
			before := snapshot(in)
			out, errs := m.ValidateContext(in)
			if !reflect.DeepEqual(snapshot(in), before) {
				t.Error("ValidateContext changed its input")
			}
			if !reflect.DeepEqual(errs, tc.errs) {
				t.Errorf("errors = %v, want %v", errs, tc.errs)
			}
			for k, want := range tc.want {
				got, ok := out[k]
				if want == nil && ok {
					t.Errorf("%s = %#v, want absent", k, got)
				} else if want != nil && !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", k, got, want)
				}
			}
		})
	}
}

// deleteMe marks a key to delete in a test case.
var deleteMe = &struct{}{}

func snapshot(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}

func TestValidateContextDefaultsAreCopied(t *testing.T) {
	src := `name: D
stateMachines:
  - name: M
    initialState: A
    contextSchema:
      tags:
        type: array
        default: [a, b]
      level:
        type: select
        options:
          - {value: 1, label: Low}
          - {value: 2, label: High}
        default: 1
    states: [{name: A}]
`
	c, err := Parse([]byte(src), "d.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := c.StateMachines[0]
	out, errs := m.ValidateContext(nil)
	if errs != nil || !reflect.DeepEqual(out, map[string]any{"tags": []any{"a", "b"}, "level": 1}) {
		t.Fatalf("out = %#v, errs = %v", out, errs)
	}
	out["tags"].([]any)[0] = "changed"
	if again, _ := m.ValidateContext(nil); again["tags"].([]any)[0] != "a" {
		t.Error("a default was shared with an instance")
	}
	// Select options keep their YAML type.
	if opts := m.ContextSchema["level"].Options; opts[0].Value != 1 {
		t.Errorf("options = %#v", opts)
	}
	c2, err := Parse([]byte(strings.Replace(src, "- {value: 1, label: Low}\n          - {value: 2, label: High}", "[1, 2]", 1)), "d2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if opts := c2.StateMachines[0].ContextSchema["level"].Options; !reflect.DeepEqual(opts, []SchemaOption{{1, "1"}, {2, "2"}}) {
		t.Errorf("scalar options = %#v", opts)
	}
	// Select options match numbers whatever their type, and the text a form sends.
	for _, v := range []any{2, 2.0, int64(2), "2"} {
		out, errs := m.ValidateContext(map[string]any{"level": v})
		if errs != nil || out["level"] != 2 {
			t.Errorf("level %#v: out %#v errs %v", v, out["level"], errs)
		}
	}
}

func TestValidateContextWithoutSchema(t *testing.T) {
	m := &Machine{Name: "M"}
	in := map[string]any{"a": 1}
	out, errs := m.ValidateContext(in)
	if errs != nil || !reflect.DeepEqual(out, in) {
		t.Fatalf("out = %v, errs = %v", out, errs)
	}
	out["b"] = 2
	if _, ok := in["b"]; ok {
		t.Error("the result must be a copy")
	}
	if out, _ := m.ValidateContext(nil); out == nil {
		t.Error("nil data must give an empty map")
	}
}

func TestValidateContextSchemaBuiltInCode(t *testing.T) {
	min := 3.0
	m := &Machine{ContextSchema: map[string]*SchemaField{
		"code": {Type: "text", Pattern: "^[A-Z]+$", Min: &min},
		"age":  {Type: "number", Required: true},
	}}
	_, errs := m.ValidateContext(map[string]any{"code": "ab"})
	want := []FieldError{{"age", "is required"}, {"code", "must be at least 3 characters long"}}
	if !reflect.DeepEqual(errs, want) {
		t.Errorf("errs = %v, want %v (sorted by name without SchemaOrder)", errs, want)
	}
	if _, errs := m.ValidateContext(map[string]any{"code": "abc", "age": 1}); len(errs) != 1 || errs[0].Message != "does not match pattern ^[A-Z]+$" {
		t.Errorf("errs = %v", errs)
	}
}

func TestFieldErrorString(t *testing.T) {
	if got := (FieldError{Field: "amount", Message: "is required"}).Error(); got != "amount is required" {
		t.Errorf("Error() = %q", got)
	}
}

func TestFormatNumber(t *testing.T) {
	for n, want := range map[float64]string{1e6: "1,000,000", 100: "100", 0.5: "0.5", -12345.25: "-12,345.25", 1000: "1,000"} {
		if got := formatNumber(n); got != want {
			t.Errorf("formatNumber(%v) = %q, want %q", n, got, want)
		}
	}
}
