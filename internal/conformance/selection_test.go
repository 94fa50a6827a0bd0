package conformance

import (
	"fmt"
	"testing"
)

// docs/semantics.md, "Processing one event" step 2: selecting the transition.
var _ = register(selectionScenarios)

func TestSelection(t *testing.T) { runScenarios(t, selectionScenarios()) }

func selectionScenarios() []scenario {
	const f = "selection.yaml"
	return []scenario{
		{name: "declaration order: first of two plain candidates", file: f, machine: "Sel",
			steps: `[{"type":"DUP"}]`, acc: "A1", path: []string{"S", "X1"},
			insts: []want{I(0, "Sel", "X1").V(1).St("active")}},
		{name: "guard true picks the guarded candidate", file: f, machine: "Sel",
			steps: `[{"type":"SIZE","payload":{"amount":500}}]`, acc: "A1", path: []string{"S", "Big"}},
		{name: "guard false falls to the next candidate", file: f, machine: "Sel",
			steps: `[{"type":"SIZE","payload":{"amount":5}}]`, acc: "A1", path: []string{"S", "Small"}},
		{name: "single candidate ignores its matching rules on direct send", file: f, machine: "Sel",
			ctx: `{"id":1}`, steps: `[{"type":"ONLY","payload":{"id":2}}]`, acc: "A1", path: []string{"S", "T"},
			// the transition has matchingRules: the payload is not merged
			insts: []want{I(0, "Sel", "T").V(1).Exact(`{"id":1}`)}},
		{name: "several candidates: first whose rules pass (first rule)", file: f, machine: "Sel",
			ctx: `{"id":1,"kind":"k"}`, steps: `[{"type":"MULTI","payload":{"id":1,"kind":"zz"}}]`,
			acc: "A1", path: []string{"S", "MA"}},
		{name: "several candidates: first whose rules pass (second rule)", file: f, machine: "Sel",
			ctx: `{"id":1,"kind":"k"}`, steps: `[{"type":"MULTI","payload":{"id":2,"kind":"k"}}]`,
			acc: "A1", path: []string{"S", "MB"}},
		{name: "several candidates: no rule passes, first without rules", file: f, machine: "Sel",
			ctx: `{"id":1,"kind":"k"}`, steps: `[{"type":"MULTI","payload":{"id":2,"kind":"zz"}}]`,
			acc: "A1", path: []string{"S", "MC"},
			// MC has no rules: payload merged
			insts: []want{I(0, "Sel", "MC").Exact(`{"id":2,"kind":"zz"}`)}},
		{name: "several candidates all with rules, none passes: refused, unchanged", file: f, machine: "Sel",
			ctx: `{"id":1,"kind":"k"}`, steps: `[{"type":"STRICT","payload":{"id":2,"kind":"zz"}}]`,
			acc: "R0", path: []string{"S"},
			insts: []want{I(0, "Sel", "S").V(0).St("active").Exact(`{"id":1,"kind":"k"}`)}},
		{name: "rules candidate beats an earlier candidate without rules", file: f, machine: "Sel",
			ctx: `{"id":7}`, steps: `[{"type":"PREF","payload":{"id":7}}]`, acc: "A1", path: []string{"S", "MA"}},
		{name: "earlier candidate without rules when the rules fail", file: f, machine: "Sel",
			ctx: `{"id":7}`, steps: `[{"type":"PREF","payload":{"id":8}}]`, acc: "A1", path: []string{"S", "MC"}},
		{name: "every guard false: refused, unchanged", file: f, machine: "Sel",
			ctx: `{"a":1}`, steps: `[{"type":"GUARDED","payload":{"n":5}}]`, acc: "R0", path: []string{"S"},
			insts: []want{I(0, "Sel", "S").V(0).Exact(`{"a":1}`)}},
		{name: "guards filter first: lone remaining candidate ignores its rules", file: f, machine: "Sel",
			ctx: `{"id":1}`, steps: `[{"type":"GR","payload":{"n":1,"id":999}}]`, acc: "A1", path: []string{"S", "T"}},
		{name: "guards true on both: the candidate whose rules pass beats the guarded one", file: f, machine: "Sel",
			ctx: `{"id":1}`, steps: `[{"type":"GR","payload":{"n":50,"id":1}}]`, acc: "A1", path: []string{"S", "T"}},
		{name: "guards true on both, rules fail: first candidate without rules", file: f, machine: "Sel",
			ctx: `{"id":1}`, steps: `[{"type":"GR","payload":{"n":50,"id":2}}]`, acc: "A1", path: []string{"S", "Big"}},
		{name: "unknown event refused with an error naming it", file: f, machine: "Sel",
			ctx: `{"a":1}`, steps: `[{"type":"NOPE","payload":{"x":1}}]`, acc: "R0", path: []string{"S"},
			errs:  map[int]string{0: "NOPE"},
			insts: []want{I(0, "Sel", "S").V(0).Exact(`{"a":1}`)}},
		{name: "event types are case-sensitive", file: f, machine: "Sel",
			steps: `[{"type":"dup"}]`, acc: "R0", path: []string{"S"}},
		{name: "event from a state without that transition refused", file: f, machine: "Sel",
			steps: `[{"type":"BACK"}]`, acc: "R0", path: []string{"S"}},
		{name: "refusal leaves the instance usable", file: f, machine: "Sel",
			steps: `[{"type":"NOPE"},{"type":"STAY"},{"type":"STRICT","payload":{}},{"type":"DUP"}]`,
			acc:   "R0 A1 R0 A1", path: []string{"S", "S", "X1"},
			insts: []want{I(0, "Sel", "X1").V(2)}},
		{name: "self-loop is a transition: path entry and version", file: f, machine: "Sel",
			steps: `[{"type":"STAY"},{"type":"STAY"},{"type":"STAY"}]`, acc: "A1 A1 A1",
			path: []string{"S", "S", "S", "S"}, insts: []want{I(0, "Sel", "S").V(3)}},
		{name: "event to an instance number that does not exist", file: f, machine: "Sel",
			steps: `[{"type":"STAY","instance":5}]`, acc: "R0", n: 1},
		{name: "event to another instance by number", file: f, machine: "Sel",
			steps: `[{"create":{"machine":"Sel","context":{"id":3}}},{"type":"DUP","instance":1}]`,
			acc:   "A0 A1", n: 2, path: []string{"S"},
			insts: []want{I(0, "Sel", "S").V(0), I(1, "Sel", "X1").V(1).Ctx(`{"id":3}`)}},
		{name: "explicit instance 0", file: f, machine: "Sel",
			steps: `[{"type":"DUP","instance":0}]`, acc: "A1", path: []string{"S", "X1"}},

		// Routed delivery (broadcast): only candidates whose rules pass.
		{name: "broadcast routes each instance by the rules that pass", file: f, machine: "Sel",
			ctx: `{"id":1,"kind":"z"}`,
			steps: `[{"create":{"machine":"Sel","context":{"id":2,"kind":"k"}}},
				{"create":{"machine":"Sel","context":{"id":3,"kind":"q"}}},
				{"broadcast":{"machine":"Sel","type":"MULTI","payload":{"id":1,"kind":"k"}}}]`,
			acc: "A0 A0 A2", n: 3,
			insts: []want{I(0, "Sel", "MA").V(1), I(1, "Sel", "MB").V(1), I(2, "Sel", "S").V(0)}},
		{name: "broadcast: single candidate with failing rules is not delivered", file: f, machine: "Sel",
			ctx:   `{"id":1}`,
			steps: `[{"broadcast":{"machine":"Sel","type":"ONLY","payload":{"id":2}}}]`,
			acc:   "A0", insts: []want{I(0, "Sel", "S").V(0)}},
		{name: "broadcast: single candidate with passing rules", file: f, machine: "Sel",
			ctx:   `{"id":1}`,
			steps: `[{"broadcast":{"machine":"Sel","type":"ONLY","payload":{"id":1}}}]`,
			acc:   "A1", insts: []want{I(0, "Sel", "T").V(1)}},
	}
}

// docs/yaml.md "Guard expressions".
var _ = register(guardScenarios)

func TestGuards(t *testing.T) { runScenarios(t, guardScenarios()) }

func guardScenarios() []scenario {
	type g struct {
		event, ctx, payload string
		ok                  bool
		note                string
	}
	cases := []g{
		{"EQ3", `{"status":"gold"}`, `{}`, true, "=== strings"},
		{"EQ3", `{"status":"silver"}`, `{}`, false, "=== strings differ"},
		{"NEQ3", `{"status":"silver"}`, `{}`, true, "!== strings"},
		{"NEQ3", `{"status":"gold"}`, `{}`, false, "!== equal strings"},
		{"AND", `{"amount":500}`, `{"urgent":true}`, true, "&& both true"},
		{"AND", `{"amount":500}`, `{"urgent":false}`, false, "&& one false"},
		{"OR", `{"amount":5}`, `{"urgent":true}`, true, "|| one true"},
		{"OR", `{"amount":5}`, `{"urgent":false}`, false, "|| both false"},
		{"NOT", `{}`, `{}`, true, "! on a missing field"},
		{"NOT", `{"approved":true}`, `{}`, false, "! on true"},
		{"NOT", `{"approved":false}`, `{}`, true, "! on false"},
		{"NIL_GT", `{}`, `{}`, false, "nil > 5"},
		{"NIL_LT", `{}`, `{}`, false, "nil < 5"},
		{"NIL_LE", `{}`, `{}`, false, "nil <= 5"},
		{"NIL_DEEP", `{}`, `{}`, false, "missing parent path"},
		{"NIL_NOT", `{}`, `{}`, true, "negated nil comparison"},
		{"INT_EQ", `{"count":3}`, `{}`, true, "number === int literal"},
		{"INT_FLOAT", `{"count":3}`, `{}`, true, "3 === 3.0"},
		{"FLOAT_GT", `{"ratio":0.5}`, `{}`, true, "float > float literal"},
		{"FLOAT_GT", `{"ratio":0.25}`, `{}`, false, "float > equal float"},
		{"MIXED_NUM", `{}`, `{"qty":2.5}`, true, "float arithmetic === int"},
		{"EV_PAYLOAD", `{}`, `{"code":"X"}`, true, "event.payload"},
		{"EV_PAYLOAD", `{"code":"X"}`, `{"code":"Y"}`, false, "event.payload is not context"},
		{"PAYLOAD", `{}`, `{"code":"X"}`, true, "payload"},
		{"EV_TYPE", `{}`, `{}`, true, "event.type"},
		{"STR_GT", `{"tier":"c"}`, `{}`, true, "string > lexicographic"},
		{"STR_GT", `{"tier":"a"}`, `{}`, false, "string > lexicographic false"},
		{"STR_NUM", `{"tier":"c"}`, `{}`, false, "string > number"},
		{"ALL", `{"a":2,"b":2}`, `{}`, true, "guards list all true"},
		{"ALL", `{"a":2,"b":0}`, `{}`, false, "guards list one false"},
		{"PRE_MERGE", `{"amount":5}`, `{"amount":500}`, false, "context is the data before the merge"},
		{"RUNTIME_ERR", `{"n":5}`, `{}`, false, "evaluation error is false"},
		{"NESTED", `{"customer":{"tier":"gold"}}`, `{"order":{"total":1000}}`, true, "nested paths"},
		{"NESTED", `{"customer":{"tier":"gold"}}`, `{"order":{"total":999}}`, false, "nested paths false"},
		{"TRUTHY_AND", `{"note":"x","amount":10}`, `{}`, true, "non-empty string is truthy in &&"},
		{"TRUTHY_AND", `{"note":"","amount":10}`, `{}`, false, "empty string is falsy in &&"},
		{"TRUTHY_AND", `{"amount":10}`, `{}`, false, "missing is falsy in &&"},
		{"BARE_BOOL", `{"approved":true}`, `{}`, true, "bare boolean field true"},
		{"BARE_BOOL", `{"approved":false}`, `{}`, false, "bare boolean field false"},
		{"BARE_BOOL", `{}`, `{}`, false, "bare missing field"},
		{"STR_VS_NUM", `{"code":"42"}`, `{}`, false, "string === number is typed"},
		{"STR_VS_NUM", `{"code":42}`, `{}`, true, "number === number"},
		{"NIL_NEQ", `{}`, `{}`, true, "missing !== value"},
		{"UNDEF", `{}`, `{}`, true, "missing === undefined"},
		{"UNDEF", `{"x":1}`, `{}`, false, "present === undefined"},
		{"NULL_EQ", `{}`, `{}`, true, "missing == null"},
		{"STR_WITH_OP", `{"label":"a === b"}`, `{}`, true, "=== inside a string literal"},
		{"SINGLE_QUOTES", `{"status":"gold"}`, `{}`, true, "single-quoted string"},
		{"PAREN", `{"a":0,"b":2}`, `{}`, true, "parentheses, || and !"},
		{"PAREN", `{"a":0,"b":2,"blocked":true}`, `{}`, false, "parentheses, blocked"},
		{"CROSS", `{"limit":100}`, `{"amount":100}`, true, "payload vs context"},
		{"CROSS", `{"limit":100}`, `{"amount":99.5}`, false, "payload vs context false"},
	}
	var out []scenario
	for _, c := range cases {
		sc := scenario{
			name:    fmt.Sprintf("%s %s (%s)", c.event, c.ctx, c.note),
			file:    "guards.yaml",
			machine: "G",
			ctx:     c.ctx,
			steps:   fmt.Sprintf(`[{"type":%q,"payload":%s}]`, c.event, c.payload),
		}
		if c.ok {
			sc.acc, sc.path = "A1", []string{"S", "Yes"}
		} else {
			sc.acc, sc.path = "R0", []string{"S"}
			sc.insts = []want{I(0, "G", "S").V(0).Exact(c.ctx)}
		}
		out = append(out, sc)
	}
	out = append(out, scenario{
		name: "guard evaluation error does not break the instance", file: "guards.yaml", machine: "G",
		ctx: `{"n":5}`, steps: `[{"type":"RUNTIME_ERR"},{"type":"PLAIN"}]`, acc: "R0 A1",
		path: []string{"S", "Yes"},
	})
	return out
}

// docs/semantics.md "Matching rules": operators and types, on a direct send with several
// candidates (Match has the rule, NoMatch is the fallback without rules).
var _ = register(operatorScenarios)

func TestMatchingOperators(t *testing.T) { runScenarios(t, operatorScenarios()) }

func operatorScenarios() []scenario {
	type c struct {
		event, ctx, payload string
		match               bool
		note                string
	}
	cases := []c{
		{"EQ", `{"v":42}`, `{"v":42}`, true, "42 === 42"},
		{"EQ", `{"v":42}`, `{"v":"42"}`, false, `42 === "42" is typed`},
		{"EQ", `{"v":"42"}`, `{"v":42}`, false, `"42" === 42 is typed`},
		{"EQ", `{"v":42}`, `{"v":42.0}`, true, "42 === 42.0"},
		{"EQ", `{"v":true}`, `{"v":"true"}`, false, "bool vs string"},
		{"EQ", `{"v":true}`, `{"v":true}`, true, "bool"},
		{"EQ", `{"v":{"a":1,"b":[1,2]}}`, `{"v":{"b":[1,2],"a":1}}`, true, "deep object equal"},
		{"EQ", `{"v":{"a":1,"b":[1,2]}}`, `{"v":{"a":1,"b":[2,1]}}`, false, "deep object, array order"},
		{"EQ", `{"v":{"a":1}}`, `{"v":{"a":1,"c":2}}`, false, "deep object, extra key"},
		{"EQ", `{"v":[1,"x"]}`, `{"v":[1,"x"]}`, true, "array equal"},
		{"EQ", `{"v":42}`, `{}`, false, "missing event value"},
		{"EQ", `{}`, `{"v":42}`, false, "missing instance value"},
		{"EQ_ALIAS", `{"v":"a"}`, `{"v":"a"}`, true, "== alias"},
		{"EQ_ALIAS", `{"v":1}`, `{"v":"1"}`, false, "== alias stays typed"},
		{"NE", `{"v":42}`, `{"v":43}`, true, "42 !== 43"},
		{"NE", `{"v":42}`, `{"v":42}`, false, "42 !== 42"},
		{"NE", `{"v":42}`, `{"v":"42"}`, true, `42 !== "42" is typed`},
		{"NE", `{"v":42}`, `{}`, false, "!== with a missing value fails"},
		{"NE_ALIAS", `{"v":"a"}`, `{"v":"b"}`, true, "!= alias"},
		{"GT", `{"v":10}`, `{"v":5}`, true, "instance 10 > event 5"},
		{"GT", `{"v":5}`, `{"v":10}`, false, "instance 5 > event 10"},
		{"GT", `{"v":10}`, `{"v":10}`, false, "10 > 10"},
		{"GT", `{"v":10.5}`, `{"v":10}`, true, "float > int"},
		{"GT", `{"v":"b"}`, `{"v":"a"}`, true, "string > string"},
		{"GT", `{"v":"10"}`, `{"v":"9"}`, false, "strings compare lexicographically"},
		{"GT", `{"v":10}`, `{"v":"5"}`, false, "number vs string"},
		{"GT", `{"v":"10"}`, `{"v":5}`, false, "string vs number"},
		{"GT", `{"v":true}`, `{"v":false}`, false, "booleans do not order"},
		{"LT", `{"v":5}`, `{"v":10}`, true, "5 < 10"},
		{"LT", `{"v":10}`, `{"v":5}`, false, "10 < 5"},
		{"LT", `{"v":"a"}`, `{"v":"b"}`, true, "a < b"},
		{"LT", `{"v":5}`, `{"v":"10"}`, false, "mixed <"},
		{"GE", `{"v":10}`, `{"v":10}`, true, "10 >= 10"},
		{"GE", `{"v":9}`, `{"v":10}`, false, "9 >= 10"},
		{"GE", `{"v":"b"}`, `{"v":"b"}`, true, "b >= b"},
		{"LE", `{"v":10}`, `{"v":10}`, true, "10 <= 10"},
		{"LE", `{"v":11}`, `{"v":10}`, false, "11 <= 10"},
		{"LE", `{}`, `{"v":10}`, false, "<= with missing instance value"},
		{"DOT", `{"ref":{"id":"r1"}}`, `{"order":{"ref":{"id":"r1"}}}`, true, "dot paths both sides"},
		{"DOT", `{"ref":{"id":"r1"}}`, `{"order":{"ref":{"id":"r2"}}}`, false, "dot paths differ"},
		{"DOT", `{"ref":"r1"}`, `{"order":{"ref":{"id":"r1"}}}`, false, "dot path through a non-object"},
		{"DOT", `{"ref":{"id":"r1"}}`, `{"order":{}}`, false, "dot path missing"},
		{"TWO", `{"a":1,"b":10}`, `{"a":1,"b":5}`, true, "all rules hold"},
		{"TWO", `{"a":1,"b":10}`, `{"a":1,"b":50}`, false, "one rule fails"},
	}
	var out []scenario
	for _, x := range cases {
		sc := scenario{
			name:    fmt.Sprintf("%s %s (%s)", x.event, x.payload, x.note),
			file:    "operators.yaml",
			machine: "Op",
			ctx:     x.ctx,
			steps:   fmt.Sprintf(`[{"type":%q,"payload":%s}]`, x.event, x.payload),
			acc:     "A1",
		}
		if x.match {
			sc.path = []string{"S", "Match"}
			// Match has rules: no payload merge.
			sc.insts = []want{I(0, "Op", "Match").Exact(x.ctx)}
		} else {
			sc.path = []string{"S", "NoMatch"}
		}
		out = append(out, sc)
	}
	return out
}
