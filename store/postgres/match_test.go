package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/postgres"
	"github.com/xcomponent/xcomponent/store/storetest"
)

func TestMatcher(t *testing.T) {
	storetest.RunMatcher(t, func(t *testing.T) store.Store {
		s, _ := open(t)
		return s
	})
}

// TestMatchUsesIndexes: the routing query is served by the indexes — the live-row index of
// migration 0004, and the route index of a property once EnsureRouteIndexes created it (also
// with a generic plan) — with sequential scans disabled, so that the answer does not depend on
// table statistics. EnsureRouteIndexes is idempotent and safe to call concurrently.
func TestMatchUsesIndexes(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	paths := []string{"orderId", "customer.id", `we"ird'key`}
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- s.EnsureRouteIndexes(ctx, paths) }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := s.EnsureRouteIndexes(ctx, paths); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE tablename = 'fsm_snapshots'
		AND indexname LIKE 'idx_fsm_route_%'`).Scan(&n); err != nil || n != len(paths) {
		t.Fatalf("route indexes: %d, %v; want %d", n, err, len(paths))
	}
	explain := func(generic bool, q store.MatchQuery) string {
		t.Helper()
		query, args, err := postgres.MatchSQLForTest(q)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := s.Pool().Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		mode := "auto"
		if generic {
			mode = "force_generic_plan"
		}
		if _, err := conn.Exec(ctx, "SET enable_seqscan = off; SET plan_cache_mode = "+mode); err != nil {
			t.Fatal(err)
		}
		defer func() { _, _ = conn.Exec(ctx, "RESET enable_seqscan; RESET plan_cache_mode") }()
		rows, err := conn.Query(ctx, "EXPLAIN "+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	for _, generic := range []bool{false, true} {
		for _, path := range paths {
			plan := explain(generic, store.MatchQuery{Component: "Shop", Machine: "Order",
				Conds: []store.Cond{{Path: path, Op: store.OpEq, Value: "o1"}}})
			if !strings.Contains(plan, postgres.RouteIndexNameForTest(path)) {
				t.Fatalf("generic=%v: equality on %s does not use its route index:\n%s", generic, path, plan)
			}
		}
		plan := explain(generic, store.MatchQuery{Component: "Shop", Machine: "Order", State: "Open"})
		if !strings.Contains(plan, "idx_fsm_snapshots_live") {
			t.Fatalf("generic=%v: the live-row query does not use idx_fsm_snapshots_live:\n%s", generic, plan)
		}
	}
}

// BenchmarkMatch100k: routing queries among 100,000 live instances of one machine (plus
// 20,000 completed ones): an equality rule matching one instance, and an equality rule with a
// numeric ordering.
func BenchmarkMatch100k(b *testing.B) {
	s, _ := open(b)
	ctx := context.Background()
	const n = 100_000
	// Bulk load through SQL: the routing query only reads the snapshot rows.
	if _, err := s.Pool().Exec(ctx, `INSERT INTO fsm_snapshots (instance_id, machine_name, current_state, context,
		component_name, status, version, created_at, updated_at)
		SELECT gen_random_uuid(), 'Order', 'Submitted', jsonb_build_object('orderId', 'o-' || i, 'amount', i % 1000,
			'customer', 'c-' || (i % 5000)), 'Shop', CASE WHEN i > $1 THEN 'completed' ELSE 'active' END, 1, NOW(), NOW()
		FROM generate_series(1, $1 + 20000) AS i`, n); err != nil {
		b.Fatal(err)
	}
	if err := s.EnsureRouteIndexes(ctx, []string{"orderId", "customer"}); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, "ANALYZE fsm_snapshots"); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		conds []store.Cond
		want  int
	}{
		{"eq-one", []store.Cond{{Path: "orderId", Op: store.OpEq, Value: "o-4242"}}, 1},
		{"eq-20+range", []store.Cond{{Path: "customer", Op: store.OpEq, Value: "c-42"}, {Path: "amount", Op: store.OpGte, Value: 42}}, 20},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q := store.MatchQuery{Component: "Shop", Machine: "Order", State: "Submitted", Conds: bc.conds}
			for b.Loop() {
				got, err := s.Match(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != bc.want {
					b.Fatalf("%d matches, want %d", len(got), bc.want)
				}
			}
		})
	}
}

// FuzzMatch: PostgreSQL's matching agrees with the engine's semantics (storetest.FuzzMatcher).
func FuzzMatch(f *testing.F) {
	s, _ := open(f)
	storetest.FuzzMatcher(f, s)
}
