package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"github.com/xcomponent/xcomponent/internal/faults"
	"path/filepath"
	"sort"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, to read PostgreSQL directly
	_ "modernc.org/sqlite"             // the "sqlite" database/sql driver, to read SQLite directly

	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
)

// backend is a store the server runs on, and the way to read its tables directly.
type backend struct {
	name   string
	spec   string // the --store value
	driver string // database/sql driver
	dsn    string
}

// backends returns the stores every durability test runs on: a fresh SQLite file and a fresh
// PostgreSQL database (skipped when no server is reachable, failed with CI=true).
func backends() []string { return []string{"sqlite", "postgres"} }

func newBackend(t testing.TB, name string) backend {
	t.Helper()
	switch name {
	case "sqlite":
		path := filepath.Join(t.TempDir(), "xc.db")
		return backend{name: name, spec: "sqlite:" + path, driver: "sqlite", dsn: path + "?_pragma=busy_timeout(10000)"}
	case "postgres":
		dsn := pgtest.NewDatabase(t)
		return backend{name: name, spec: dsn, driver: "pgx", dsn: dsn}
	}
	t.Fatalf("unknown backend %s", name)
	return backend{}
}

// eventRow is one fsm_events row.
type eventRow struct {
	ID, Instance, Type, From, To string
	Seq, PersistedAt             int64
	Payload                      map[string]any
}

// token is the payload's client-chosen id of an event ("" for events without one).
func (e *eventRow) token() string {
	s, _ := e.Payload["tok"].(string)
	return s
}

// snapRow is one fsm_snapshots row.
type snapRow struct {
	ID, Machine, State, Status string
	Version, EventCount        int64
	Timers                     []struct {
		Event string `json:"event"`
		DueAt int64  `json:"dueAt"`
	}
}

func (b backend) open(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open(b.driver, b.dsn)
	if err != nil {
		t.Fatalf("open %s: %v", b.name, err)
	}
	return db
}

// awaitSessionsGone waits until no other session is connected to the PostgreSQL database. A
// server killed with SIGKILL may have sent a COMMIT that its backend is still applying: reading
// fsm_events and then fsm_snapshots meanwhile could see the commit in the second read only.
// The backend exits once it has finished and noticed its client is gone. SQLite needs no wait:
// a killed process cannot commit afterwards.
func (b backend) awaitSessionsGone(t testing.TB) {
	t.Helper()
	if b.driver != "pgx" {
		return
	}
	db := b.open(t)
	defer db.Close()
	err := faults.Poll(conditionTimeout, func() (bool, error) {
		var n int
		err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n)
		return n == 0, err
	})
	if err != nil {
		t.Fatalf("sessions of the killed server still connected to %s: %v", b.name, err)
	}
}

// readEvents returns every fsm_events row, by instance, in seq order.
func (b backend) readEvents(t testing.TB) map[string][]eventRow {
	t.Helper()
	db := b.open(t)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, `SELECT CAST(id AS TEXT), CAST(instance_id AS TEXT), event_type,
		COALESCE(from_state, ''), COALESCE(to_state, ''), COALESCE(seq, -1), persisted_at,
		COALESCE(CAST(event_payload AS TEXT), '{}') FROM fsm_events`)
	if err != nil {
		t.Fatalf("read fsm_events (%s): %v", b.name, err)
	}
	defer rows.Close()
	out := map[string][]eventRow{}
	for rows.Next() {
		var e eventRow
		var payload string
		if err := rows.Scan(&e.ID, &e.Instance, &e.Type, &e.From, &e.To, &e.Seq, &e.PersistedAt, &payload); err != nil {
			t.Fatalf("read fsm_events (%s): %v", b.name, err)
		}
		if err := json.Unmarshal([]byte(payload), &e.Payload); err != nil {
			t.Fatalf("fsm_events %s: payload %q: %v", e.ID, payload, err)
		}
		out[e.Instance] = append(out[e.Instance], e)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read fsm_events (%s): %v", b.name, err)
	}
	for _, evs := range out {
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].Seq < evs[j].Seq })
	}
	return out
}

// readSnapshots returns every fsm_snapshots row by instance id.
func (b backend) readSnapshots(t testing.TB) map[string]snapRow {
	t.Helper()
	db := b.open(t)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, `SELECT CAST(instance_id AS TEXT), machine_name, current_state,
		COALESCE(status, ''), COALESCE(version, -1), COALESCE(event_count, -1),
		COALESCE(CAST(pending_timeouts AS TEXT), '[]') FROM fsm_snapshots`)
	if err != nil {
		t.Fatalf("read fsm_snapshots (%s): %v", b.name, err)
	}
	defer rows.Close()
	out := map[string]snapRow{}
	for rows.Next() {
		var s snapRow
		var timers string
		if err := rows.Scan(&s.ID, &s.Machine, &s.State, &s.Status, &s.Version, &s.EventCount, &timers); err != nil {
			t.Fatalf("read fsm_snapshots (%s): %v", b.name, err)
		}
		if err := json.Unmarshal([]byte(timers), &s.Timers); err != nil {
			t.Fatalf("fsm_snapshots %s: pending_timeouts %q: %v", s.ID, timers, err)
		}
		out[s.ID] = s
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read fsm_snapshots (%s): %v", b.name, err)
	}
	return out
}

// checkChain checks the invariants every instance's history must keep whatever happened:
// a creation row with seq 0, then transitions with seq 1..version exactly once each, each
// starting from the state the previous one ended in (no lost update), and the snapshot row
// agreeing with the last one. It returns the number of transitions.
func checkChain(t testing.TB, id string, evs []eventRow, snap snapRow, ok bool) int64 {
	t.Helper()
	if !ok {
		t.Errorf("instance %s: no fsm_snapshots row", id)
		return 0
	}
	if len(evs) == 0 || evs[0].Seq != 0 || evs[0].Type != "INSTANCE_CREATED" {
		t.Errorf("instance %s: history does not start with its creation (seq 0): %+v", id, first(evs))
		return 0
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq != int64(i) {
			t.Errorf("instance %s: event #%d has seq %d (want %d: gap or duplicate version)", id, i, evs[i].Seq, i)
			return 0
		}
		if evs[i].From != evs[i-1].To {
			t.Errorf("instance %s: seq %d %s goes from %s but seq %d ended in %s (lost update)", id, i, evs[i].Type, evs[i].From, i-1, evs[i-1].To)
		}
	}
	v := int64(len(evs) - 1)
	if snap.Version != v || snap.EventCount != v+1 {
		t.Errorf("instance %s: snapshot version %d, event_count %d; history has %d transitions", id, snap.Version, snap.EventCount, v)
	}
	if snap.State != evs[v].To {
		t.Errorf("instance %s: snapshot state %s, last event (seq %d) ends in %s", id, snap.State, v, evs[v].To)
	}
	return v
}

func first(evs []eventRow) any {
	if len(evs) == 0 {
		return nil
	}
	return evs[0]
}
