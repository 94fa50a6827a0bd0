// Package faults is the judge of the fault-injection suite: it reads a store's tables
// directly (not through the product's code), checks that every instance is consistent with its
// event log, compares what clients sent and were acknowledged with what was applied, and
// records one row per scenario in the report that docs/reliability.md publishes.
//
// The scenarios themselves are tests: this package's own (faults_test.go: poison messages,
// duplicated and reordered deliveries, a clock jump, the dashboard restarted, PostgreSQL cut
// under `serve`), internal/e2e's (kill -9 of `serve`) and distributed's (kill -9 of a runtime,
// broker connection cut, broker restart, PostgreSQL cut under runtimes). Each calls Judge and
// Record.
package faults

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, to read PostgreSQL directly
	_ "modernc.org/sqlite"             // the "sqlite" database/sql driver, to read SQLite directly
)

// Event is one fsm_events row.
type Event struct {
	ID, Instance, Type, From, To, Causation string
	Seq, PersistedAt                        int64
	Payload                                 map[string]any
}

// Token is the payload's client-chosen id of an event, "tok" ("" without one).
func (e *Event) Token() string {
	s, _ := e.Payload["tok"].(string)
	return s
}

// Timer is a pending timeout of a snapshot.
type Timer struct {
	Event string `json:"event"`
	DueAt int64  `json:"dueAt"`
}

// Snapshot is one fsm_snapshots row.
type Snapshot struct {
	ID, Component, Machine, State, Status string
	Version, EventCount                   int64
	Timers                                []Timer
	Context                               map[string]any
}

// State is what a store holds: every event, by instance in seq order, and every snapshot.
type State struct {
	Events    map[string][]Event
	Snapshots map[string]Snapshot
}

// Open opens a store's database for reading: a `serve --store` spec ("sqlite:PATH") or a
// PostgreSQL URL.
func Open(spec string) (*sql.DB, error) {
	driver, dsn := "pgx", spec
	if path, ok := strings.CutPrefix(spec, "sqlite:"); ok {
		driver, dsn = "sqlite", path+"?_pragma=busy_timeout(10000)"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("faults: open %s: %w", driver, err)
	}
	return db, nil
}

// ReadSpec reads the store of a spec (see Open).
func ReadSpec(ctx context.Context, spec string) (*State, error) {
	db, err := Open(spec)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return Read(ctx, db)
}

// Read reads every fsm_events and fsm_snapshots row. Read a store that nothing writes to
// (processes stopped or idle), or the two reads may see different commits.
func Read(ctx context.Context, db *sql.DB) (*State, error) {
	s := &State{Events: map[string][]Event{}, Snapshots: map[string]Snapshot{}}
	rows, err := db.QueryContext(ctx, `SELECT CAST(id AS TEXT), CAST(instance_id AS TEXT), event_type,
		COALESCE(from_state, ''), COALESCE(to_state, ''), COALESCE(seq, -1), persisted_at,
		COALESCE(CAST(event_payload AS TEXT), '{}'), COALESCE(CAST(causation_id AS TEXT), '') FROM fsm_events`)
	if err != nil {
		return nil, fmt.Errorf("faults: read fsm_events: %w", err)
	}
	for rows.Next() {
		var e Event
		var payload string
		if err := rows.Scan(&e.ID, &e.Instance, &e.Type, &e.From, &e.To, &e.Seq, &e.PersistedAt, &payload, &e.Causation); err != nil {
			rows.Close()
			return nil, fmt.Errorf("faults: read fsm_events: %w", err)
		}
		if err := json.Unmarshal([]byte(payload), &e.Payload); err != nil {
			rows.Close()
			return nil, fmt.Errorf("faults: fsm_events %s: payload %q: %w", e.ID, payload, err)
		}
		s.Events[e.Instance] = append(s.Events[e.Instance], e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("faults: read fsm_events: %w", err)
	}
	for _, evs := range s.Events {
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].Seq < evs[j].Seq })
	}
	rows, err = db.QueryContext(ctx, `SELECT CAST(instance_id AS TEXT), COALESCE(component_name, ''), machine_name,
		current_state, COALESCE(status, ''), COALESCE(version, -1), COALESCE(event_count, -1),
		COALESCE(CAST(pending_timeouts AS TEXT), '[]'), COALESCE(CAST(context AS TEXT), '{}') FROM fsm_snapshots`)
	if err != nil {
		return nil, fmt.Errorf("faults: read fsm_snapshots: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var sn Snapshot
		var timers, data string
		if err := rows.Scan(&sn.ID, &sn.Component, &sn.Machine, &sn.State, &sn.Status, &sn.Version, &sn.EventCount, &timers, &data); err != nil {
			return nil, fmt.Errorf("faults: read fsm_snapshots: %w", err)
		}
		if err := json.Unmarshal([]byte(timers), &sn.Timers); err != nil {
			return nil, fmt.Errorf("faults: fsm_snapshots %s: pending_timeouts %q: %w", sn.ID, timers, err)
		}
		if err := json.Unmarshal([]byte(data), &sn.Context); err != nil {
			return nil, fmt.Errorf("faults: fsm_snapshots %s: context: %w", sn.ID, err)
		}
		s.Snapshots[sn.ID] = sn
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("faults: read fsm_snapshots: %w", err)
	}
	return s, nil
}

// Inconsistent checks every instance against its event log and returns what is wrong, one
// line per instance at fault (nil when all are consistent):
//   - a snapshot row and a history that starts with its creation (seq 0);
//   - transitions with seq 1..version exactly once each (no gap, no version written twice),
//     each starting from the state the previous one ended in (no lost update);
//   - the snapshot agreeing with the log: version = last seq, event_count = rows, state = the
//     last row's target state.
func (s *State) Inconsistent() []string {
	var out []string
	ids := make([]string, 0, len(s.Snapshots))
	for id := range s.Snapshots {
		ids = append(ids, id)
	}
	for id := range s.Events {
		if _, ok := s.Snapshots[id]; !ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		if msg := s.check(id); msg != "" {
			out = append(out, msg)
		}
	}
	return out
}

func (s *State) check(id string) string {
	evs := s.Events[id]
	snap, ok := s.Snapshots[id]
	if !ok {
		return fmt.Sprintf("instance %s: %d events and no fsm_snapshots row", id, len(evs))
	}
	if len(evs) == 0 || evs[0].Seq != 0 || evs[0].Type != "INSTANCE_CREATED" {
		return fmt.Sprintf("instance %s: history does not start with its creation (seq 0): %d rows", id, len(evs))
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq != int64(i) {
			return fmt.Sprintf("instance %s: event #%d has seq %d (gap or version written twice)", id, i, evs[i].Seq)
		}
		if evs[i].From != evs[i-1].To {
			return fmt.Sprintf("instance %s: seq %d %s goes from %s but seq %d ended in %s (lost update)", id, i, evs[i].Type, evs[i].From, i-1, evs[i-1].To)
		}
	}
	v := int64(len(evs) - 1)
	if snap.Version != v || snap.EventCount != v+1 {
		return fmt.Sprintf("instance %s: snapshot version %d, event_count %d; the log has %d transitions", id, snap.Version, snap.EventCount, v)
	}
	if snap.State != evs[v].To {
		return fmt.Sprintf("instance %s: snapshot state %s, the last event (seq %d) ends in %s", id, snap.State, v, evs[v].To)
	}
	return ""
}

// EventsByType returns, in (instance, seq) order, the events of that type.
func (s *State) EventsByType(typ string) []Event {
	ids := make([]string, 0, len(s.Events))
	for id := range s.Events {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []Event
	for _, id := range ids {
		for _, e := range s.Events[id] {
			if e.Type == typ {
				out = append(out, e)
			}
		}
	}
	return out
}
