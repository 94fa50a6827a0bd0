package postgres_test

import (
	"context"
	"strings"
	"testing"

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

// TestMatchUsesIndexes: the routing query can be served by the indexes of migration 0004
// (with sequential scans disabled, so that the answer does not depend on table statistics).
func TestMatchUsesIndexes(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	query, args, err := postgres.MatchSQLForTest(store.MatchQuery{Component: "Shop", Machine: "Order",
		Conds: []store.Cond{{Path: "orderId", Op: store.OpEq, Value: "o1"}}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := s.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, "EXPLAIN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Exec(ctx, "RESET enable_seqscan")
	text := strings.Join(plan, "\n")
	if !strings.Contains(text, "idx_fsm_snapshots_live") {
		t.Fatalf("the routing query does not use the live-row indexes:\n%s", text)
	}
}
