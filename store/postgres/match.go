package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/xcomponent/xcomponent/store"
)

// Match implements store.Matcher with one query on the live snapshot rows. Equality
// conditions on scalar values also go into a containment test (context @> {...}) that the
// GIN index of migration 0004 serves; every condition is then checked exactly in SQL with
// the engine's semantics: jsonb equality is typed (42 = 42.0, 42 ≠ "42", objects and arrays
// structurally), orderings compare two numbers as numeric and two strings byte-wise (COLLATE
// "C", Go's string order), and anything else is false.
func (s *Store) Match(ctx context.Context, q store.MatchQuery) ([]store.Instance, error) {
	query, args, err := matchSQL(q)
	if err != nil {
		return nil, err
	}
	out, err := s.instances(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("match %s/%s: %w", q.Component, q.Machine, err)
	}
	return out, nil
}

func matchSQL(q store.MatchQuery) (string, []any, error) {
	args := []any{q.Component, q.Machine}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where := []string{"component_name = $1", "machine_name = $2", "status = 'active'"}
	if q.State != "" {
		where = append(where, "current_state = "+arg(q.State))
	}
	contain := map[string]any{}
	for _, c := range q.Conds {
		op, ok := store.NormalOp(c.Op)
		if !ok {
			return "", nil, fmt.Errorf("match %s/%s: unknown operator %q on %s", q.Component, q.Machine, c.Op, c.Path)
		}
		path := "context #> " + arg(strings.Split(c.Path, ".")) + "::text[]"
		switch op {
		case store.OpEq, store.OpNe:
			b, err := json.Marshal(c.Value)
			if err != nil {
				return "", nil, fmt.Errorf("match %s/%s: value of %s: %w", q.Component, q.Machine, c.Path, err)
			}
			if op == store.OpEq {
				where = append(where, path+" = "+arg(string(b))+"::jsonb")
				if scalar(c.Value) {
					addContainment(contain, c.Path, c.Value)
				}
			} else {
				where = append(where, "("+path+" IS NOT NULL AND "+path+" <> "+arg(string(b))+"::jsonb)")
			}
		default:
			if f, ok := number(c.Value); ok {
				where = append(where, fmt.Sprintf("(CASE WHEN jsonb_typeof(%s) = 'number' THEN (%s)::numeric %s %s::numeric ELSE FALSE END)",
					path, path, op, arg(strconv.FormatFloat(f, 'g', -1, 64))))
			} else if str, ok := c.Value.(string); ok {
				textPath := "context #>> " + arg(strings.Split(c.Path, ".")) + "::text[]"
				where = append(where, fmt.Sprintf("(CASE WHEN jsonb_typeof(%s) = 'string' THEN (%s) COLLATE \"C\" %s (%s::text COLLATE \"C\") ELSE FALSE END)",
					path, textPath, op, arg(str)))
			} else {
				where = append(where, "("+path+" IS NOT NULL AND FALSE)") // uses the path argument: no ordering holds
			}
		}
	}
	if len(contain) > 0 {
		b, err := json.Marshal(contain)
		if err != nil {
			return "", nil, fmt.Errorf("match %s/%s: %w", q.Component, q.Machine, err)
		}
		where = append(where, "context @> "+arg(string(b))+"::jsonb")
	}
	return selectSnapshot + " WHERE " + strings.Join(where, " AND "), args, nil
}

// addContainment adds path = v to a containment document, unless another condition already
// put something else there (the exact checks decide then).
func addContainment(doc map[string]any, path string, v any) {
	keys := strings.Split(path, ".")
	cur := doc
	for _, k := range keys[:len(keys)-1] {
		next, ok := cur[k]
		if !ok {
			m := map[string]any{}
			cur[k] = m
			cur = m
			continue
		}
		m, ok := next.(map[string]any)
		if !ok {
			return
		}
		cur = m
	}
	last := keys[len(keys)-1]
	if _, taken := cur[last]; !taken {
		cur[last] = v
	}
}

// scalar: a value whose containment test is an equality test (not an object or array, for
// which containment is only inclusion, nor null).
func scalar(v any) bool {
	switch v.(type) {
	case string, bool:
		return true
	}
	_, ok := number(v)
	return ok
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case int16:
		return float64(x), true
	case int8:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint64:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint8:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}
