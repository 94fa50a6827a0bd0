package component

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr/file"
)

// FuzzGuard compiles arbitrary guard expressions and evaluates those that compile on
// arbitrary data. Properties:
//   - no panic, at compile or evaluation time;
//   - a compile error has a message and never names the helpers the patcher inserts
//     (__xc_lt …): the author must read about what they wrote;
//   - a syntax error's position is inside the source (the loader turns it into a file:line:col);
//   - the === / !== rewrite keeps every byte offset;
//   - an evaluation gives a boolean or an error naming the guard, the same result twice (the
//     VMs are pooled), and in bounded time;
//   - ordering operators are consistent: a < b is b > a, and a <= b is a < b or not b < a
//     when the values compare.
func FuzzGuard(f *testing.F) {
	for _, s := range []string{
		"context.amount > 5000", "context.amount <= 5000", "event.payload.decision === 'approve'",
		"payload.decision === 'reject'", "context.ok == true", "!context.approved", "context.a !== null && context.a > 1",
		"len(context.tags) == 2", "'a' in context.tags", "context.name startsWith 'al'", "context.x < 'b' || payload.y >= 2.5",
		"context.a === === 1", "context.amount > 5000 )", "context.a &&\n  )", "\"===\" == '!=='", "`a===b` == context.s",
		"all(context.items, {# > 0})", "map(1..3, # * 2)[0] == 2", "context.a?.b == nil", "context['a'] == 1",
		"let x = context.a; x > 1", "context.a ?? 3 > 2", "context.a > 1 ? true : false", "1..1000000 | len() > 0",
		"repeat('a', 100000000) != ''", "upper(context.s) == 'A'", "now() > date('2020-01-01')", "",
	} {
		f.Add(s, []byte(`{"amount":6000,"tags":["a","b"],"name":"alice","a":{"b":1},"items":[1,2],"s":"x"}`))
	}
	f.Add("context.n < context.m", []byte(`{"n":1,"m":"1"}`))
	f.Fuzz(func(t *testing.T, src string, dataJSON []byte) {
		if got := jsToExpr(src); len(got) != len(src) {
			t.Fatalf("jsToExpr(%q) = %q: offsets moved", src, got)
		}
		g, err := NewGuard(src)
		if err != nil {
			msg := err.Error()
			if msg == "" || strings.Contains(msg, "__xc_") {
				t.Fatalf("NewGuard(%q): unclear error %q", src, msg)
			}
			var fe *file.Error
			if errors.As(err, &fe) && fe.Line > 0 {
				lines := strings.Split(src, "\n")
				if fe.Line > len(lines) || fe.Column < 0 || fe.Column > len(lines[fe.Line-1]) {
					t.Fatalf("NewGuard(%q): error at %d:%d, outside the source (%s)", src, fe.Line, fe.Column, fe.Message)
				}
			}
			return
		}
		var data map[string]any
		_ = json.Unmarshal(dataJSON, &data)
		start := time.Now()
		for _, d := range []map[string]any{nil, data} {
			ok1, err1 := g.Eval(d, "E", d)
			ok2, err2 := g.Eval(d, "E", d)
			if ok1 != ok2 || (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) {
				t.Fatalf("%q evaluated twice: %v, %v then %v, %v", src, ok1, err1, ok2, err2)
			}
			if err1 != nil && (ok1 || !strings.HasPrefix(err1.Error(), "guard ")) {
				t.Fatalf("%q: %v, %v: an error must be false and name the guard", src, ok1, err1)
			}
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("%q took %v to evaluate", src, d)
		}
		// Orderings, on the values of the data.
		var vals []any
		for _, v := range data {
			vals = append(vals, v)
		}
		for _, a := range vals {
			for _, b := range vals {
				ca, okA := compareValues(a, b)
				cb, okB := compareValues(b, a)
				if okA != okB || (okA && ca != -cb) {
					t.Fatalf("compareValues(%#v, %#v) = %d, %v but reversed %d, %v", a, b, ca, okA, cb, okB)
				}
			}
		}
	})
}
