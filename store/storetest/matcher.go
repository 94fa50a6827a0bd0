package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/xcomponent/xcomponent/store"
)

// RunMatcher checks a store.Matcher against the matching-rule semantics (typed equality,
// numeric and byte-wise orderings, missing values, nested paths), the live-set filters
// (component, machine, state, status) and data changes. open returns a new, empty store.
func RunMatcher(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	m, ok := s.(store.Matcher)
	if !ok {
		t.Fatalf("%T does not implement store.Matcher", s)
	}
	comp, machine := unique("Shop"), "Order"
	mk := func(name, state string, data map[string]any) store.Instance {
		in := newInstance(comp, machine, state, data, base)
		mustCreate(t, s, in)
		return in
	}
	a := mk("a", "Open", map[string]any{"orderId": "o1", "amount": 42, "nested": map[string]any{"k": "x"}, "flag": true,
		"tags": []any{"a", "b"}, "obj": map[string]any{"p": 1}})
	b := mk("b", "Paid", map[string]any{"orderId": "o2", "amount": 42.5, "nested": map[string]any{"k": "y"}, "flag": false})
	c := mk("c", "Open", map[string]any{"orderId": "42", "amount": "42"})
	g := mk("g", "Open", map[string]any{"orderId": nil})
	h := mk("h", "Open", map[string]any{"o'k": map[string]any{`a"b\\`: 1}})
	names := map[string]string{a.ID: "a", b.ID: "b", c.ID: "c", g.ID: "g", h.ID: "h"}

	// Not live, or not this machine / component: never matched.
	done := newInstance(comp, machine, "Done", map[string]any{"orderId": "o1", "amount": 42}, base)
	done.Status = store.StatusCompleted
	mustCreate(t, s, done)
	mustCreate(t, s, newInstance(comp, "Other", "Open", map[string]any{"orderId": "o1", "amount": 42}, base))
	mustCreate(t, s, newInstance(unique("Elsewhere"), machine, "Open", map[string]any{"orderId": "o1", "amount": 42}, base))

	eq := func(path string, v any) store.Cond { return store.Cond{Path: path, Op: store.OpEq, Value: v} }
	cases := []struct {
		state string
		conds []store.Cond
		want  []string
	}{
		{"", []store.Cond{eq("orderId", "o1")}, []string{"a"}},
		{"", []store.Cond{{Path: "orderId", Op: "==", Value: "o1"}}, []string{"a"}},
		{"", []store.Cond{eq("orderId", "42")}, []string{"c"}},
		{"", []store.Cond{eq("amount", 42)}, []string{"a"}},
		{"", []store.Cond{eq("amount", 42.0)}, []string{"a"}},
		{"", []store.Cond{eq("amount", int64(42))}, []string{"a"}},
		{"", []store.Cond{eq("amount", "42")}, []string{"c"}},
		{"", []store.Cond{eq("nested.k", "x")}, []string{"a"}},
		{"", []store.Cond{eq("nested.zz", "x")}, nil},
		{"", []store.Cond{eq("flag", true)}, []string{"a"}},
		{"", []store.Cond{eq("flag", false)}, []string{"b"}},
		{"", []store.Cond{eq("flag", 1)}, nil},
		{"", []store.Cond{eq("tags", []any{"a", "b"})}, []string{"a"}},
		{"", []store.Cond{eq("tags", []any{"a"})}, nil},
		{"", []store.Cond{eq("obj", map[string]any{"p": 1})}, []string{"a"}},
		{"", []store.Cond{eq("obj", map[string]any{})}, nil},
		{"", []store.Cond{eq("orderId", nil)}, []string{"g"}},
		{"", []store.Cond{{Path: "orderId", Op: store.OpNe, Value: "o1"}}, []string{"b", "c", "g"}},
		{"", []store.Cond{{Path: "orderId", Op: "!=", Value: "o1"}}, []string{"b", "c", "g"}},
		{"", []store.Cond{{Path: "amount", Op: store.OpGt, Value: 41}}, []string{"a", "b"}},
		{"", []store.Cond{{Path: "amount", Op: store.OpGte, Value: 42}}, []string{"a", "b"}},
		{"", []store.Cond{{Path: "amount", Op: store.OpLt, Value: 42.5}}, []string{"a"}},
		{"", []store.Cond{{Path: "amount", Op: store.OpLte, Value: 42.5}}, []string{"a", "b"}},
		{"", []store.Cond{{Path: "amount", Op: store.OpGt, Value: "4"}}, []string{"c"}},
		{"", []store.Cond{{Path: "orderId", Op: store.OpGt, Value: "o1"}}, []string{"b"}},
		{"", []store.Cond{{Path: "orderId", Op: store.OpLt, Value: "o"}}, []string{"c"}},
		{"", []store.Cond{{Path: "flag", Op: store.OpGte, Value: true}}, nil},
		{"", []store.Cond{eq("orderId", "o1"), {Path: "amount", Op: store.OpGt, Value: 40}}, []string{"a"}},
		{"", []store.Cond{eq("orderId", "o1"), {Path: "amount", Op: store.OpGt, Value: 50}}, nil},
		{"Open", []store.Cond{eq("orderId", "o1")}, []string{"a"}},
		{"Paid", []store.Cond{eq("orderId", "o1")}, nil},
		{"", []store.Cond{eq(`o'k.a"b\\`, 1)}, []string{"h"}},
		{"Open", nil, []string{"a", "c", "g", "h"}},
		{"", nil, []string{"a", "b", "c", "g", "h"}},
	}
	match := func(state string, conds []store.Cond) []string {
		t.Helper()
		got, err := m.Match(context.Background(), store.MatchQuery{Component: comp, Machine: machine, State: state, Conds: conds})
		if err != nil {
			t.Fatalf("match %v: %v", conds, err)
		}
		var out []string
		for _, in := range got {
			n, ok := names[in.ID]
			if !ok {
				t.Fatalf("match %v returned an instance it must not: %+v", conds, in)
			}
			out = append(out, n)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range cases {
		if got := match(tc.state, tc.conds); !slices.Equal(got, tc.want) {
			t.Errorf("match state=%q %s: got %v, want %v", tc.state, describe(tc.conds), got, tc.want)
		}
		// The reference semantics agree.
		var ref []string
		for _, in := range []store.Instance{a, b, c, g, h} {
			if (tc.state == "" || in.State == tc.state) && store.MatchData(tc.conds, in.Data) {
				ref = append(ref, names[in.ID])
			}
		}
		slices.Sort(ref)
		if !slices.Equal(ref, tc.want) {
			t.Errorf("MatchData state=%q %s: got %v, want %v", tc.state, describe(tc.conds), ref, tc.want)
		}
	}

	// Records come back whole, and a data change is seen at once.
	got, err := m.Match(context.Background(), store.MatchQuery{Component: comp, Machine: machine, Conds: []store.Cond{eq("orderId", "o1")}})
	if err != nil || len(got) != 1 {
		t.Fatalf("match: %v %v", got, err)
	}
	checkInstance(t, a, got[0])
	cm, _ := step(a, "EDIT", "Paid", map[string]any{"orderId": "o9", "amount": 42}, base+1)
	mustCommit(t, s, cm)
	if got := match("", []store.Cond{eq("orderId", "o1")}); len(got) != 0 {
		t.Errorf("after the data changed: %v still matched", got)
	}
	if got := match("Paid", []store.Cond{eq("orderId", "o9")}); !slices.Equal(got, []string{"a"}) {
		t.Errorf("after the data changed: got %v, want [a]", got)
	}

	if _, err := m.Match(context.Background(), store.MatchQuery{Component: comp, Machine: machine,
		Conds: []store.Cond{{Path: "amount", Op: "~", Value: 1}}}); err == nil {
		t.Error("an unknown operator was accepted")
	}
}

func describe(conds []store.Cond) string {
	s := ""
	for _, c := range conds {
		s += fmt.Sprintf("[%s %s %#v]", c.Path, c.Op, c.Value)
	}
	return s
}
