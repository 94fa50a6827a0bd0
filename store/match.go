package store

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/xcomponent/xcomponent/component"
)

// Matcher finds live instances by their data in the store itself. Engines that share the store
// with other processes (several runtimes of a component on one database) route broadcasts,
// cascades and cross-component events with it: their in-memory indexes do not see the
// instances other processes created or changed, the database does.
//
// The conditions have the semantics of the engine's matching rules (docs/semantics.md,
// "Matching rules"); MatchData is their reference implementation.
type Matcher interface {
	// Match returns the active instances of q.Component / q.Machine (in q.State when set)
	// whose data satisfy every condition, in no particular order.
	Match(ctx context.Context, q MatchQuery) ([]Instance, error)
}

// RouteIndexer is implemented by stores that can index the instance properties equality
// rules look at, so that Match finds the matching instances without reading every live
// instance of the machine. Engines sharing the store call it at Load with the properties their
// components route on. Idempotent; safe with several processes calling it at once.
type RouteIndexer interface {
	EnsureRouteIndexes(ctx context.Context, paths []string) error
}

// MatchQuery selects live instances by their data.
type MatchQuery struct {
	Component string
	Machine   string
	State     string // "" = any state
	Conds     []Cond
}

// Operators of a Cond (those of matching rules).
const (
	OpEq  = "==="
	OpNe  = "!=="
	OpGt  = ">"
	OpLt  = "<"
	OpGte = ">="
	OpLte = "<="
)

// Cond holds for an instance when data[Path] Op Value: Path is a dot path into the data. A
// missing value fails every operator. === and !== are typed equality (42 = 42.0, 42 ≠ "42",
// objects and arrays deeply); the orderings hold between two numbers (numeric) or two strings
// (byte-wise), and are false otherwise. "" and "==" mean ===, "!=" means !==.
type Cond struct {
	Path  string
	Op    string
	Value any
}

// NormalOp returns the canonical form of a condition operator, and whether it is known.
func NormalOp(op string) (string, bool) {
	switch op {
	case OpEq, "", "==":
		return OpEq, true
	case OpNe, "!=":
		return OpNe, true
	case OpGt, OpLt, OpGte, OpLte:
		return op, true
	}
	return op, false
}

// MatchData reports whether data satisfies every condition.
func MatchData(conds []Cond, data map[string]any) bool {
	for _, c := range conds {
		v, ok := LookupPath(data, c.Path)
		if !ok || !CompareValues(v, c.Op, c.Value) {
			return false
		}
	}
	return true
}

// LookupPath reads a dot path ("a.b.c") in nested maps.
func LookupPath(data map[string]any, path string) (any, bool) {
	cur := data
	for {
		i := strings.IndexByte(path, '.')
		if i < 0 {
			v, ok := cur[path]
			return v, ok
		}
		next, ok := cur[path[:i]].(map[string]any)
		if !ok {
			return nil, false
		}
		cur, path = next, path[i+1:]
	}
}

// CompareValues evaluates a OP b with the semantics of matching rules: typed equality
// (numbers by value whatever their Go type, strings, booleans, objects and arrays deeply);
// ordering of two numbers or two strings, false for anything else. The engine's in-memory
// routing uses it too, so the store and the engine can never disagree.
func CompareValues(a any, op string, b any) bool {
	op, _ = NormalOp(op)
	switch op {
	case OpEq:
		return equalValues(a, b)
	case OpNe:
		return !equalValues(a, b)
	}
	if x, ok := component.Number(a); ok {
		y, ok := component.Number(b)
		return ok && orderedValues(x, op, y)
	}
	x, ok := a.(string)
	if !ok {
		return false
	}
	y, ok := b.(string)
	return ok && orderedValues(x, op, y)
}

func orderedValues[T float64 | string](a T, op string, b T) bool {
	switch op {
	case OpGt:
		return a > b
	case OpLt:
		return a < b
	case OpGte:
		return a >= b
	case OpLte:
		return a <= b
	}
	return false
}

func equalValues(a, b any) bool {
	if x, ok := component.Number(a); ok {
		y, ok := component.Number(b)
		return ok && x == y
	}
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equalValues(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalValues(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// Match implements Matcher by scanning the live records (the memory store has no index of
// its own; engines on one memory store route with their in-memory indexes).
func (m *Memory) Match(_ context.Context, q MatchQuery) ([]Instance, error) {
	for _, c := range q.Conds {
		if _, ok := NormalOp(c.Op); !ok {
			return nil, fmt.Errorf("match %s/%s: unknown operator %q on %s", q.Component, q.Machine, c.Op, c.Path)
		}
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Instance
	for _, en := range m.entries {
		r := en.rec
		if r.Component != q.Component || r.Machine != q.Machine || r.Status != StatusActive ||
			(q.State != "" && r.State != q.State) || !MatchData(q.Conds, r.Data) {
			continue
		}
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
