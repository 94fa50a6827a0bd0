package xcomponent

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

var fuzzOps = []component.Operator{component.OpEq, component.OpNe, component.OpGt, component.OpLt, component.OpGte, component.OpLte, "==", "!=", ""}

// FuzzRouting exercises the matching and templating of cross-component and cascade payloads
// on arbitrary payloads, instance data and rules. Properties:
//   - a rule checked against the payload (rulesPass) and the same rule resolved first, as a
//     cross-component event carries it (resolveRules, resolvedPass), agree;
//   - the memory index finds what the comparison accepts: two indexable values have the same
//     index key exactly when they are === (else candidates() would miss instances);
//   - store.CompareValues is an order: === reflexive and symmetric, !== its negation, a < b
//     iff b > a, a <= b iff a < b or a === b (for two numbers or two strings);
//   - templates expand once: a payload without "{{…}}" strings is copied unchanged, a
//     "{{path}}" becomes the value at path (kept out when missing), and a value taken from the
//     data is never expanded again (instance data cannot inject templates);
//   - contextMapping copies exactly the mapped paths;
//   - an idle instance's compact record gives back the record, whatever its data.
func FuzzRouting(f *testing.F) {
	mr := compactMachine(f)
	f.Add([]byte(`{"orderId":"o1","amount":42,"nested":{"ref":"a"}}`), []byte(`{"orderId":"o1","amount":42.0,"nested":{"ref":"a"},"t":"{{orderId}}"}`),
		"orderId", "nested.ref", uint8(0))
	f.Add([]byte(`{"n":2,"s":"b","l":[1,"{{n}}"],"m":{"x":"{{ s }}"}}`), []byte(`{"n":3,"s":"a","tpl":"{{context.n}}"}`), "n", "s", uint8(2))
	f.Add([]byte(`{"v":true}`), []byte(`{"v":1}`), "v", "v", uint8(1))
	f.Add([]byte(`{"v":null}`), []byte(`{"v":null}`), "v", "v", uint8(0))
	f.Add([]byte(`{"v":[1,{"a":2}]}`), []byte(`{"v":[1.0,{"a":2}]}`), "v", "v", uint8(0))
	f.Add([]byte(`{"a.b":1,"a":{"b":2}}`), []byte(`{"a":{"b":1}}`), "a.b", "a.b", uint8(4))
	f.Fuzz(func(t *testing.T, payloadJSON, dataJSON []byte, eventProp, instanceProp string, op uint8) {
		var payload, data map[string]any
		if json.Unmarshal(payloadJSON, &payload) != nil || json.Unmarshal(dataJSON, &data) != nil {
			return
		}
		rule := &component.MatchingRule{EventProperty: eventProp, InstanceProperty: instanceProp, Operator: fuzzOps[int(op)%len(fuzzOps)]}
		rules := []*component.MatchingRule{rule}
		if a, b := rulesPass(rules, payload, data), resolvedPass(resolveRules(rules, payload), data); a != b {
			t.Fatalf("rulesPass = %v but resolvedPass = %v for %+v", a, b, *rule)
		}

		vals := leaves(payload, leaves(data, nil))
		for _, a := range vals {
			checkOrder(t, a, a)
			for _, b := range vals {
				checkOrder(t, a, b)
				ka, okA := indexKey(a)
				kb, okB := indexKey(b)
				if okA && okB && (ka == kb) != store.CompareValues(a, "===", b) {
					t.Fatalf("index keys %#v, %#v (equal %v) but %#v === %#v is %v", ka, kb, ka == kb, a, b, store.CompareValues(a, "===", b))
				}
			}
		}

		// Templates: the payload is the template, the data fills it.
		out := expandTemplates(payload, data)
		checkExpanded(t, payload, out, data)

		rec := &store.Instance{ID: "i", Component: "Compact", Machine: "M", State: "A", Status: store.StatusActive, Data: data}
		if c := compactRecord(mr, rec); c == nil || !reflect.DeepEqual(c.record(mr), rec) {
			t.Fatalf("compact record of data %v not rebuilt exactly", data)
		}

		mapping := map[string]string{"x": eventProp, "y": instanceProp}
		mapped := mapContext(mapping, data)
		for k, path := range mapping {
			want, ok := store.LookupPath(data, path)
			got, gok := mapped[k]
			if ok != gok || !reflect.DeepEqual(got, want) {
				t.Fatalf("mapContext %s <- %q = %#v, %v; want %#v, %v", k, path, got, gok, want, ok)
			}
		}
	})
}

// leaves appends every value of v (maps and lists included) to out.
func leaves(v any, out []any) []any {
	if len(out) > 64 {
		return out
	}
	out = append(out, v)
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			out = leaves(e, out)
		}
	case []any:
		for _, e := range x {
			out = leaves(e, out)
		}
	}
	return out
}

func checkOrder(t *testing.T, a, b any) {
	t.Helper()
	cmp := func(x any, op string, y any) bool { return store.CompareValues(x, op, y) }
	eq := cmp(a, "===", b)
	if eq != cmp(b, "===", a) || eq == cmp(a, "!==", b) || eq != cmp(a, "==", b) || eq != cmp(a, "", b) {
		t.Fatalf("=== / !== inconsistent on %#v, %#v", a, b)
	}
	if !cmp(a, "===", a) {
		t.Fatalf("%#v !== itself", a)
	}
	if cmp(a, "<", b) != cmp(b, ">", a) || cmp(a, "<=", b) != cmp(b, ">=", a) {
		t.Fatalf("< and > inconsistent on %#v, %#v", a, b)
	}
	_, an := component.Number(a)
	_, bn := component.Number(b)
	_, as := a.(string)
	_, bs := b.(string)
	if (an && bn) || (as && bs) {
		if cmp(a, "<=", b) != (cmp(a, "<", b) || eq) {
			t.Fatalf("<= is not < or === on %#v, %#v", a, b)
		}
		if !cmp(a, "<", b) && !cmp(b, "<", a) && !eq {
			t.Fatalf("%#v and %#v are neither ordered nor equal", a, b)
		}
	} else if cmp(a, "<", b) || cmp(a, ">", b) || cmp(a, "<=", b) || cmp(a, ">=", b) {
		t.Fatalf("%#v and %#v are ordered but are not two numbers or two strings", a, b)
	}
}

// checkExpanded checks out = expandTemplates(tpl, data).
func checkExpanded(t *testing.T, tpl, out, data map[string]any) {
	t.Helper()
	for k, v := range tpl {
		got, ok := out[k]
		want, wok := expected(v, data)
		if ok != wok || !reflect.DeepEqual(got, want) {
			t.Fatalf("template %q: %#v expanded to %#v, %v; want %#v, %v", k, v, got, ok, want, wok)
		}
	}
	if len(out) > len(tpl) {
		t.Fatalf("expansion added keys: %v", out)
	}
}

// expected is the reference expansion of one template value.
func expected(v any, data map[string]any) (any, bool) {
	switch x := v.(type) {
	case string:
		s := strings.TrimSpace(x)
		if strings.HasPrefix(s, "{{") && strings.HasSuffix(s, "}}") && strings.Count(s, "{{") == 1 {
			return store.LookupPath(data, strings.TrimPrefix(strings.TrimSpace(s[2:len(s)-2]), "context."))
		}
		return x, true
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if ev, ok := expected(e, data); ok {
				out[k] = ev
			}
		}
		return out, true
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i], _ = expected(e, data)
		}
		return out, true
	}
	return v, true
}
