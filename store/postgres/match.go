package postgres

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/internal/sqlstore"
)

// Match implements store.Matcher with one query on the live snapshot rows, checking every
// condition in SQL with the engine's semantics: jsonb equality is typed (42 = 42.0, 42 ≠ "42",
// objects and arrays structurally), orderings compare two numbers as numeric and two strings
// byte-wise (COLLATE "C", Go's string order), anything else is false, a missing value fails.
// Paths are written into the query as literals (values stay parameters) so that the planner
// can use the route index of a property (EnsureRouteIndexes) for its equality conditions.
func (s *Store) Match(ctx context.Context, q store.MatchQuery) ([]store.Instance, error) {
	query, args, err := matchSQL(q)
	if err != nil {
		return nil, err
	}
	out, err := sqlstore.QueryAll(ctx, pgDB{s.pool}, scanInstance, query, args...)
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
	for _, c := range q.Conds {
		op, ok := store.NormalOp(c.Op)
		if !ok {
			return "", nil, fmt.Errorf("match %s/%s: unknown operator %q on %s", q.Component, q.Machine, c.Op, c.Path)
		}
		path := routeExpr(c.Path)
		switch op {
		case store.OpEq, store.OpNe:
			b, err := json.Marshal(c.Value)
			if err != nil {
				return "", nil, fmt.Errorf("match %s/%s: value of %s: %w", q.Component, q.Machine, c.Path, err)
			}
			if op == store.OpEq {
				where = append(where, path+" = "+arg(string(b))+"::jsonb")
			} else {
				where = append(where, "("+path+" IS NOT NULL AND "+path+" <> "+arg(string(b))+"::jsonb)")
			}
		default:
			if f, ok := number(c.Value); ok {
				where = append(where, fmt.Sprintf("(CASE WHEN jsonb_typeof(%s) = 'number' THEN (%s)::numeric %s %s::numeric ELSE FALSE END)",
					path, path, op, arg(strconv.FormatFloat(f, 'g', -1, 64))))
			} else if str, ok := c.Value.(string); ok {
				where = append(where, fmt.Sprintf("(CASE WHEN jsonb_typeof(%s) = 'string' THEN (context #>> %s) COLLATE \"C\" %s (%s::text COLLATE \"C\") ELSE FALSE END)",
					path, pathLiteral(c.Path), op, arg(str)))
			} else {
				where = append(where, "FALSE") // no ordering holds for other values
			}
		}
	}
	return selectSnapshot + " WHERE " + strings.Join(where, " AND "), args, nil
}

// pathLiteral is a dot path as a SQL text[] literal: '{"a","b"}'::text[] (array elements
// quoted and backslash-escaped, the string's quotes doubled), safe for any key.
func pathLiteral(path string) string {
	keys := strings.Split(path, ".")
	for i, k := range keys {
		k = strings.ReplaceAll(k, `\`, `\\`)
		k = strings.ReplaceAll(k, `"`, `\"`)
		keys[i] = `"` + k + `"`
	}
	lit := "{" + strings.Join(keys, ",") + "}"
	return "'" + strings.ReplaceAll(lit, "'", "''") + "'::text[]"
}

// routeExpr is the expression a route index is built on, and that Match compares.
func routeExpr(path string) string { return "(context #> " + pathLiteral(path) + ")" }

// routeIndexName names the route index of a property (at most 63 bytes whatever the path).
func routeIndexName(path string) string {
	sum := sha1.Sum([]byte(path))
	return "idx_fsm_route_" + hex.EncodeToString(sum[:8])
}

// routeIndexLock is the pg_advisory_lock key serialising route index creation ("xcrout").
const routeIndexLock int64 = 0x7863_726f_7574

// EnsureRouteIndexes implements store.RouteIndexer: for each property path, a B-tree index on
// (component_name, machine_name, context #> path) of the live rows that have the property,
// created once per database (CREATE INDEX CONCURRENTLY: writers are not blocked). Processes
// starting together serialise on an advisory lock; an index left invalid by an interrupted
// build is rebuilt.
func (s *Store) EnsureRouteIndexes(ctx context.Context, paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("route indexes: %w", err)
	}
	defer conn.Release()
	// pg_try_advisory_lock in a loop, not pg_advisory_lock: a session blocked on the lock is
	// inside a statement (a transaction), which CREATE INDEX CONCURRENTLY in the session holding
	// the lock would wait for: a deadlock.
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		var locked bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", routeIndexLock).Scan(&locked); err != nil {
			return fmt.Errorf("route indexes: lock: %w", err)
		}
		if locked {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("route indexes: lock: %w", ctx.Err())
		}
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", routeIndexLock)
	}()
	pg := conn.Conn().PgConn()
	for _, path := range paths {
		name := routeIndexName(path)
		var valid *bool
		err := conn.QueryRow(ctx, `SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
			WHERE c.relname = $1`, name).Scan(&valid)
		switch {
		case err == nil && valid != nil && *valid:
			continue
		case err == nil: // left invalid by an interrupted build
			if _, err := pg.Exec(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+name).ReadAll(); err != nil {
				return fmt.Errorf("route index on %s: drop invalid %s: %w", path, name, err)
			}
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("route index on %s: %w", path, err)
		}
		expr := routeExpr(path)
		ddl := "CREATE INDEX CONCURRENTLY IF NOT EXISTS " + name + " ON fsm_snapshots (component_name, machine_name, " +
			expr + ") WHERE status = 'active' AND " + expr + " IS NOT NULL"
		if _, err := pg.Exec(ctx, ddl).ReadAll(); err != nil {
			return fmt.Errorf("route index on %s: %w", path, err)
		}
		s.opts.Logger.Info("route index created", "store", "postgres", "property", path, "index", name)
	}
	return nil
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
