package component

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/expr-lang/expr/file"
)

func TestGuardEval(t *testing.T) {
	data := map[string]any{
		"amount":   6000,        // YAML / Go int
		"big":      int64(7000), // int64
		"ratio":    0.5,         // JSON float64
		"count":    json.Number("3"),
		"name":     "alice",
		"approved": true,
		"status":   "",
		"customer": map[string]any{"tier": "gold", "limits": map[string]any{"max": 10000.0}},
		"tags":     []any{"a", "b"},
	}
	payload := map[string]any{"decision": "approve", "amount": 6000.0}
	cases := []struct {
		expr string
		want bool
	}{
		// JavaScript operators.
		{"context.name === 'alice'", true},
		{"context.name !== 'alice'", false},
		{`context.name === "alice" && context.approved`, true},
		{"context.approved && context.amount > 5000", true},
		{"context.approved || context.missing > 1", true},
		{"!context.approved", false},
		{"!context.missing", true},
		{"!context.status", true},
		{"context.missing === null", true},
		{"context.missing === undefined", true},
		{"context.missing !== null", false},
		{"context.missing == nil", true},
		{"context.name == nil", false},
		{`context.name === "a===b"`, false},
		{"'x !== y' === 'x !== y'", true},
		// Comparisons with nil are false, never errors.
		{"context.missing > 5000", false},
		{"context.missing < 5000", false},
		{"context.missing >= 0", false},
		{"context.missing <= 0", false},
		{"5000 < context.missing", false},
		{"context.a.b.c > 1", false},
		{"context.a.b.c == nil", true},
		{"context.customer.missing.deep >= 0", false},
		{"!(context.missing > 1) && !(context.missing <= 1)", true},
		// Numbers across Go types.
		{"context.amount > 5000", true},
		{"context.amount > 5000.5", true},
		{"context.amount == 6000.0", true},
		{"context.amount === payload.amount", true},
		{"context.big >= context.amount", true},
		{"context.big < 7000.1", true},
		{"context.ratio < 1", true},
		{"context.count == 3", false}, // a json.Number is a string type: no equality with numbers
		{"context.count > 2", true},
		{"context.customer.limits.max > context.amount", true},
		// Strings compare lexicographically; mixed types do not compare.
		{"context.name < 'bob'", true},
		{"context.name > 5", false},
		{"context.customer.tier == 'gold'", true},
		// Event and payload.
		{"event.type == 'DECIDE'", true},
		{"event.payload.decision === 'approve'", true},
		{"payload.decision === 'approve' && payload.amount > 5000", true},
		{"payload.missing === undefined", true},
		{"publicMember.name == context.name", true},
		// Builtins of the expression library.
		{"len(context.tags) == 2", true},
		{"'a' in context.tags", true},
		{"context.name startsWith 'al'", true},
	}
	for _, tc := range cases {
		g, err := NewGuard(tc.expr)
		if err != nil {
			t.Errorf("NewGuard(%q): %v", tc.expr, err)
			continue
		}
		got, err := g.Eval(data, "DECIDE", payload)
		if err != nil || got != tc.want {
			t.Errorf("%s = %v, %v; want %v", tc.expr, got, err, tc.want)
		}
	}
}

func TestGuardEvalErrors(t *testing.T) {
	for _, tc := range []struct{ expr, msg string }{
		{"context.name", `result is a string, not a boolean`},
		{"context.missing", `result is nil, not a boolean`},
		{"context.name + 1 > 2", `invalid operation`},
	} {
		g, err := NewGuard(tc.expr)
		if err != nil {
			t.Fatalf("NewGuard(%q): %v", tc.expr, err)
		}
		ok, err := g.Eval(map[string]any{"name": "alice"}, "E", nil)
		if ok || err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), tc.expr) {
			t.Errorf("%s = %v, %v; want false and an error containing %q", tc.expr, ok, err, tc.msg)
		}
	}
	if _, err := (&Guard{Expression: "true"}).Eval(nil, "E", nil); err == nil {
		t.Error("an uncompiled guard must not evaluate")
	}
}

func TestGuardSyntaxErrorPosition(t *testing.T) {
	for _, tc := range []struct {
		expr      string
		line, col int // expr's Line (1-based) and Column (0-based)
	}{
		{"context.amount > 5000 )", 1, 22},
		{"context.a === === 1", 1, 14}, // === is rewritten in place: columns do not move
		{"context.a &&\n  )", 2, 2},
	} {
		_, err := NewGuard(tc.expr)
		var fe *file.Error
		if !errors.As(err, &fe) {
			t.Fatalf("NewGuard(%q) = %v, want a *file.Error", tc.expr, err)
		}
		if fe.Line != tc.line || fe.Column != tc.col {
			t.Errorf("%q: error at %d:%d, want %d:%d (%s)", tc.expr, fe.Line, fe.Column, tc.line, tc.col, fe.Message)
		}
	}
	if _, err := NewGuard(""); err == nil {
		t.Error("empty guard must not compile")
	}
}

func TestJSToExpr(t *testing.T) {
	for in, want := range map[string]string{
		"a === b":               "a ==  b",
		"a !== b":               "a !=  b",
		"a == b":                "a == b",
		`a === "x === y"`:       `a ==  "x === y"`,
		`a === 'it\'s === ok'`:  `a ==  'it\'s === ok'`,
		"a === `raw === \\`":    "a ==  `raw === \\`",
		"a !== b && c === d":    "a !=  b && c ==  d",
		"no comparison at all!": "no comparison at all!",
	} {
		if got := jsToExpr(in); got != want {
			t.Errorf("jsToExpr(%q) = %q, want %q", in, got, want)
		}
		if len(jsToExpr(in)) != len(in) {
			t.Errorf("jsToExpr(%q) changed the length", in)
		}
	}
}

func TestGuardsPass(t *testing.T) {
	g1, _ := NewGuard("context.amount > 100")
	g2, _ := NewGuard("payload.ok === true")
	tr := &Transition{Guards: []*Guard{g1, g2}}
	for _, tc := range []struct {
		amount any
		ok     any
		want   bool
	}{{200, true, true}, {50, true, false}, {200, false, false}, {nil, true, false}} {
		got, err := tr.GuardsPass(map[string]any{"amount": tc.amount}, "E", map[string]any{"ok": tc.ok})
		if err != nil || got != tc.want {
			t.Errorf("amount=%v ok=%v: %v %v, want %v", tc.amount, tc.ok, got, err, tc.want)
		}
	}
	bad, _ := NewGuard("context.amount")
	got, err := (&Transition{Guards: []*Guard{g1, bad}}).GuardsPass(map[string]any{"amount": 200}, "E", nil)
	if got || err == nil {
		t.Errorf("non-boolean guard: %v %v", got, err)
	}
}

func TestGuardsPassWithoutGuardsDoesNotAllocate(t *testing.T) {
	tr := &Transition{}
	data := map[string]any{"a": 1}
	allocs := testing.AllocsPerRun(100, func() {
		if ok, err := tr.GuardsPass(data, "E", nil); !ok || err != nil {
			t.Fatal("no guards must pass")
		}
	})
	if allocs != 0 {
		t.Errorf("GuardsPass without guards allocates %v times", allocs)
	}
}

func TestGuardsConcurrent(t *testing.T) {
	g, err := NewGuard("context.n > 10 && event.type === 'E' && payload.k !== null")
	if err != nil {
		t.Fatal(err)
	}
	tr := &Transition{Guards: []*Guard{g}}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 500 {
				n := i*1000 + j
				ok, err := tr.GuardsPass(map[string]any{"n": n}, "E", map[string]any{"k": j})
				if err != nil || ok != (n > 10) {
					t.Errorf("n=%d: %v %v", n, ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkGuardsPass(b *testing.B) {
	g, _ := NewGuard("context.amount > 5000 && payload.decision === 'approve'")
	tr := &Transition{Guards: []*Guard{g}}
	data := map[string]any{"amount": 6000}
	payload := map[string]any{"decision": "approve"}
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := tr.GuardsPass(data, "E", payload); !ok {
			b.Fatal("guard failed")
		}
	}
}
