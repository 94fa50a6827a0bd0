package postgres_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
)

// TestMigration3OnExistingRows: migration 0003 on a database written before it backfills
// next_due_at from pending_timeouts and, where runtimes started together created several
// entry points of one machine, keeps the oldest as the entry point (the unique index can then
// be built).
func TestMigration3OnExistingRows(t *testing.T) {
	s, dsn := open(t)
	ctx := context.Background()
	pool := s.Pool()
	// Back to the state before migration 0003, with the rows it has to repair.
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec("DROP INDEX idx_fsm_snapshots_entry_point")
	exec("DELETE FROM schema_migrations WHERE version = 3")
	insert := func(id, machine string, entry bool, created string, timers string) {
		exec(`INSERT INTO fsm_snapshots (instance_id, machine_name, current_state, context, pending_timeouts, created_at,
			component_name, status, is_entry_point, version) VALUES ($1, $2, 'S', '{}', $3::jsonb, $4::timestamptz, 'C', 'active', $5, 0)`,
			id, machine, timers, created, entry)
	}
	oldest, newer, newest, other := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
	insert(newer, "Main", true, "2025-01-01T00:00:02Z", `[]`)
	insert(oldest, "Main", true, "2025-01-01T00:00:01Z", `[{"event":"T","dueAt":5000,"transition":0},{"event":"U","dueAt":3000,"transition":1,"spent":true},{"event":"V","dueAt":4000,"transition":2}]`)
	insert(newest, "Main", true, "2025-01-01T00:00:03Z", `[]`)
	insert(other, "Other", true, "2025-01-01T00:00:03Z", `[]`)

	s2 := openDSN(t, dsn) // runs migration 0003 again
	rows, err := s2.Pool().Query(ctx, "SELECT instance_id::text, is_entry_point, next_due_at FROM fsm_snapshots")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	entry := map[string]bool{}
	due := map[string]*int64{}
	for rows.Next() {
		var id string
		var e bool
		var d *int64
		if err := rows.Scan(&id, &e, &d); err != nil {
			t.Fatal(err)
		}
		entry[id], due[id] = e, d
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !entry[oldest] || entry[newer] || entry[newest] || !entry[other] {
		t.Errorf("entry points after the migration: oldest %v newer %v newest %v other machine %v; want true false false true",
			entry[oldest], entry[newer], entry[newest], entry[other])
	}
	if d := due[oldest]; d == nil || *d != 4000 {
		t.Errorf("next_due_at backfilled to %v, want 4000 (the earliest timer not spent)", d)
	}
	if due[newer] != nil {
		t.Errorf("next_due_at of an instance without timers: %v, want NULL", *due[newer])
	}
}
