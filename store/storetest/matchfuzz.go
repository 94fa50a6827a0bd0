package storetest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/xcomponent/xcomponent/store"
)

var fuzzOps = []string{store.OpEq, store.OpNe, store.OpGt, store.OpLt, store.OpGte, store.OpLte, "==", "!=", ""}

// FuzzMatcher is the body of a fuzz target checking a store's Matcher against the reference
// semantics of matching rules (store.MatchData, which the engine's in-memory routing uses):
// for arbitrary instance data and rule values, the store finds the instance exactly when
// MatchData says the rule holds, so that routing in memory and in the database never
// disagree. Values are what the engine lets into data: JSON without NUL characters, numbers as
// float64. s must be a store.Matcher, empty or not (each input gets a machine of its own).
func FuzzMatcher(f *testing.F, s store.Store) {
	m, ok := s.(store.Matcher)
	if !ok {
		f.Fatalf("%T does not implement store.Matcher", s)
	}
	for _, seed := range []struct{ data, value string }{
		{`1`, `1.0`}, {`42`, `"42"`}, {`"b"`, `"a"`}, {`"é"`, `"z"`}, {`"a"`, `"B"`}, {`true`, `1`}, {`null`, `null`},
		{`[1,"a"]`, `[1.0,"a"]`}, {`{"k":[1,{"z":null}]}`, `{"k":[1,{"z":null}]}`}, {`{"a":1,"b":2}`, `{"b":2,"a":1}`},
		{`0.1`, `0.1`}, {`1e300`, `1e300`}, {`-0`, `0`}, {`9007199254740992`, `9007199254740993`}, {`1.5`, `"1.5"`},
		{`""`, `""`}, {`"a'b\"c\\"`, `"a'b\"c\\"`}, {`[]`, `{}`}, {`5e-324`, `0`}, {`123456789.123456789`, `123456789.12345679`},
	} {
		for op := range uint8(len(fuzzOps)) {
			f.Add([]byte(seed.data), []byte(seed.value), op, false)
		}
	}
	comp := unique("Fuzz")
	n := 0
	f.Fuzz(func(t *testing.T, dataJSON, valueJSON []byte, op uint8, nested bool) {
		var v, want any
		if json.Unmarshal(dataJSON, &v) != nil || json.Unmarshal(valueJSON, &want) != nil || hasNUL(v) || hasNUL(want) {
			return
		}
		data := map[string]any{"v": v}
		path := "v"
		if nested {
			data, path = map[string]any{"o": map[string]any{"v": v}}, "o.v"
		}
		n++
		machine := "M" + newID()[:8]
		in := newInstance(comp, machine, "A", data, base)
		if err := s.Commit(context.Background(), create(in)); err != nil {
			t.Fatalf("commit %s: %v", dataJSON, err)
		}
		cond := store.Cond{Path: path, Op: fuzzOps[int(op)%len(fuzzOps)], Value: want}
		got, err := m.Match(context.Background(), store.MatchQuery{Component: comp, Machine: machine, Conds: []store.Cond{cond}})
		if err != nil {
			t.Fatalf("match %s %q %s: %v", dataJSON, cond.Op, valueJSON, err)
		}
		if expect := store.MatchData([]store.Cond{cond}, data); (len(got) == 1) != expect {
			t.Fatalf("data %s %s %s: the store found %d instance(s), the engine's semantics say %v", dataJSON, cond.Op, valueJSON, len(got), expect)
		}
	})
}

func hasNUL(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.IndexByte(x, 0) >= 0
	case map[string]any:
		for k, e := range x {
			if strings.IndexByte(k, 0) >= 0 || hasNUL(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if hasNUL(e) {
				return true
			}
		}
	}
	return false
}
