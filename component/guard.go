package component

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// Guard expressions are compiled by github.com/expr-lang/expr against guardEnv. Before
// compiling, the source is made JavaScript-friendly:
//
//   - "===" and "!==" become "==" and "!=" (padded with a space so that error columns still
//     point into the source as written);
//   - null and undefined are nil;
//   - every member access is optional: context.a.b is nil when a is missing, never an error;
//   - <, >, <=, >= are numeric across int and float types, lexicographic between strings and
//     false when a side is nil or the types do not compare (JavaScript's undefined > 1);
//   - the operands of !, && and || are taken by JavaScript truthiness (nil, false, 0, "" are
//     false), so !context.approved is true when approved is missing.

// Names of the helper functions the patcher calls; they cannot clash with the variables of
// guardEnv, which are the only other identifiers an expression may use.
const (
	fnLess      = "__xc_lt"
	fnLessEq    = "__xc_le"
	fnGreater   = "__xc_gt"
	fnGreaterEq = "__xc_ge"
	fnTruthy    = "__xc_truthy"
)

// guardEnv is what a guard expression sees.
type guardEnv struct {
	Context      map[string]any `expr:"context"`
	PublicMember map[string]any `expr:"publicMember"`
	Event        guardEvent     `expr:"event"`
	Payload      map[string]any `expr:"payload"`
}

type guardEvent struct {
	Type    string         `expr:"type"`
	Payload map[string]any `expr:"payload"`
}

// guardProgram is one compiled guard expression. It is safe for concurrent use: each
// evaluation takes a VM from the pool.
type guardProgram struct {
	prog *vm.Program
	vms  sync.Pool
}

// NewGuard compiles a guard expression, for transitions built in code rather than loaded.
func NewGuard(expression string) (*Guard, error) {
	p, err := compileGuard(expression)
	if err != nil {
		return nil, err
	}
	return &Guard{Expression: expression, program: p}, nil
}

// compileGuard compiles src. A syntax or type error is a *file.Error whose Line and Column
// (0-based) point into src.
func compileGuard(src string) (*guardProgram, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("empty guard expression")
	}
	config := conf.CreateNew()
	for _, opt := range []expr.Option{
		expr.Env(guardEnv{}),
		expr.Function(fnLess, compareFunc(func(c int) bool { return c < 0 }), new(func(any, any) bool)),
		expr.Function(fnLessEq, compareFunc(func(c int) bool { return c <= 0 }), new(func(any, any) bool)),
		expr.Function(fnGreater, compareFunc(func(c int) bool { return c > 0 }), new(func(any, any) bool)),
		expr.Function(fnGreaterEq, compareFunc(func(c int) bool { return c >= 0 }), new(func(any, any) bool)),
		expr.Function(fnTruthy, func(params ...any) (any, error) { return truthy(params[0]), nil }, new(func(any) bool)),
	} {
		opt(config)
	}
	config.Check()
	// The patch is applied by hand between parsing and the one type check: expr.Patch would
	// type-check the tree before patching and keep stale results on the new call nodes,
	// hiding errors such as unknown names in their arguments.
	tree, err := parser.ParseWithConfig(jsToExpr(src), config)
	if err != nil {
		return nil, err
	}
	ast.Walk(&tree.Node, guardPatcher{})
	typ, err := checker.Check(tree, config)
	if err != nil {
		return nil, err
	}
	// Not expr.AsBool: it would turn a nil result into false at run time.
	if typ != nil && typ.Kind() != reflect.Bool && typ.Kind() != reflect.Interface {
		return nil, fmt.Errorf("expected bool, but got %v", typ)
	}
	if err := optimizer.Optimize(&tree.Node, config); err != nil {
		return nil, err
	}
	prog, err := compiler.Compile(tree, config)
	if err != nil {
		return nil, err
	}
	return &guardProgram{prog: prog}, nil
}

// Eval evaluates the guard. A runtime error or a non-boolean result is an error.
func (g *Guard) Eval(data map[string]any, eventType string, payload map[string]any) (bool, error) {
	return g.eval(&guardEnv{
		Context:      data,
		PublicMember: data,
		Event:        guardEvent{Type: eventType, Payload: payload},
		Payload:      payload,
	})
}

func (g *Guard) eval(env *guardEnv) (bool, error) {
	if g.program == nil {
		return false, fmt.Errorf("guard %q is not compiled (use NewGuard)", g.Expression)
	}
	out, err := g.program.run(env)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return false, fmt.Errorf("guard %q: %s", g.Expression, fe.Message)
		}
		return false, fmt.Errorf("guard %q: %w", g.Expression, err)
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("guard %q: result is %s, not a boolean", g.Expression, describe(out))
	}
	return b, nil
}

func (p *guardProgram) run(env *guardEnv) (any, error) {
	m, _ := p.vms.Get().(*vm.VM)
	if m == nil {
		m = &vm.VM{}
	}
	out, err := m.Run(p.prog, env)
	p.vms.Put(m)
	return out, err
}

// GuardsPass reports whether every guard of the transition is true for the instance data and
// the event. A transition without guards passes at no cost. An evaluation error makes the
// result false and is returned for the engine to report.
func (t *Transition) GuardsPass(data map[string]any, eventType string, payload map[string]any) (bool, error) {
	if len(t.Guards) == 0 {
		return true, nil
	}
	env := &guardEnv{
		Context:      data,
		PublicMember: data,
		Event:        guardEvent{Type: eventType, Payload: payload},
		Payload:      payload,
	}
	for _, g := range t.Guards {
		ok, err := g.eval(env)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// jsToExpr rewrites JavaScript's === and !== outside string literals, keeping every other
// byte in place so that error columns stay right.
func jsToExpr(src string) string {
	if !strings.Contains(src, "==") {
		return src
	}
	b := make([]byte, 0, len(src))
	var quote byte
	for i := 0; i < len(src); i++ {
		c := src[i]
		if quote != 0 {
			b = append(b, c)
			switch {
			case c == '\\' && quote != '`' && i+1 < len(src):
				i++
				b = append(b, src[i])
			case c == quote:
				quote = 0
			}
			continue
		}
		switch {
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case strings.HasPrefix(src[i:], "==="):
			b = append(b, "== "...)
			i += 2
			continue
		case strings.HasPrefix(src[i:], "!=="):
			b = append(b, "!= "...)
			i += 2
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

// guardPatcher gives expressions JavaScript's forgiving semantics (see the comment at the top).
type guardPatcher struct{}

func (guardPatcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if n.Value == "null" || n.Value == "undefined" {
			ast.Patch(node, &ast.NilNode{})
		}
	case *ast.MemberNode:
		if !n.Method && !n.Optional {
			n.Optional = true
			ast.Patch(node, &ast.ChainNode{Node: n})
		}
	case *ast.UnaryNode:
		if n.Operator == "!" || n.Operator == "not" {
			n.Node = callNode(fnTruthy, n.Node)
		}
	case *ast.BinaryNode:
		switch n.Operator {
		case "<":
			ast.Patch(node, callNode(fnLess, n.Left, n.Right))
		case "<=":
			ast.Patch(node, callNode(fnLessEq, n.Left, n.Right))
		case ">":
			ast.Patch(node, callNode(fnGreater, n.Left, n.Right))
		case ">=":
			ast.Patch(node, callNode(fnGreaterEq, n.Left, n.Right))
		case "&&", "||", "and", "or":
			n.Left = callNode(fnTruthy, n.Left)
			n.Right = callNode(fnTruthy, n.Right)
		}
	}
}

func callNode(fn string, args ...ast.Node) *ast.CallNode {
	c := &ast.CallNode{Callee: &ast.IdentifierNode{Value: fn}, Arguments: args}
	if len(args) > 0 {
		c.SetLocation(args[0].Location())
	}
	return c
}

// compareFunc builds an ordering operator: true when both sides compare and ok(order) holds.
func compareFunc(ok func(int) bool) func(params ...any) (any, error) {
	return func(params ...any) (any, error) {
		c, comparable := compareValues(params[0], params[1])
		return comparable && ok(c), nil
	}
}

// compareValues orders two values: numbers of any Go numeric type numerically, strings
// lexicographically, times chronologically. Anything else (nil included) does not compare.
func compareValues(a, b any) (int, bool) {
	if ai, ok := toInt64(a); ok {
		if bi, ok := toInt64(b); ok {
			return cmpOrdered(ai, bi), true
		}
	}
	if af, ok := Number(a); ok {
		if bf, ok := Number(b); ok {
			if math.IsNaN(af) || math.IsNaN(bf) {
				return 0, false
			}
			return cmpOrdered(af, bf), true
		}
		return 0, false
	}
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y), true
		}
	case time.Time:
		if y, ok := b.(time.Time); ok {
			return x.Compare(y), true
		}
	case time.Duration:
		if y, ok := b.(time.Duration); ok {
			return cmpOrdered(x, y), true
		}
	}
	return 0, false
}

func cmpOrdered[T int64 | float64 | time.Duration](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// toInt64 returns signed integers (and unsigned ones that fit) as int64.
func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint:
		if uint64(x) <= math.MaxInt64 {
			return int64(x), true
		}
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
	}
	return 0, false
}

// Number returns any Go number (and json.Number) as float64. It is the one number coercion of
// the product: guards, contextSchema checks, matching rules in the engine and in the stores.
func Number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case nil, string, bool:
		return 0, false
	}
	if i, ok := toInt64(v); ok {
		return float64(i), true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Uint, reflect.Uint64, reflect.Uintptr:
		return float64(rv.Uint()), true
	}
	return 0, false
}

// truthy is JavaScript's truthiness: nil, false, 0, NaN and "" are false, anything else true.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	}
	if f, ok := Number(v); ok {
		return f != 0 && !math.IsNaN(f)
	}
	return true
}

// describe names a value's kind for messages: "nil", "string", "number", "map", …
func describe(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	if _, ok := Number(v); ok {
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}
