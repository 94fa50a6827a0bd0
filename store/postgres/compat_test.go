package postgres_test

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/postgres"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
)

var update = flag.Bool("update", false, "rewrite deploy/postgres/init.sql from the embedded migrations")

const initSQLPath = "../../deploy/postgres/init.sql"

//go:generate go test -run TestInitSQLFile -update .

// TestInitSQLFile keeps deploy/postgres/init.sql equal to the embedded migrations.
func TestInitSQLFile(t *testing.T) {
	want, err := postgres.InitSQL()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.MkdirAll(filepath.Dir(initSQLPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(initSQLPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(initSQLPath)
	if err != nil {
		t.Fatalf("%v (run `go generate ./store/postgres`)", err)
	}
	if string(got) != want {
		t.Fatalf("%s differs from the embedded migrations: run `go generate ./store/postgres`", initSQLPath)
	}
}

func execSQL(t *testing.T, dsn string, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatal(err)
	}
}

// TestInitSQLThenOpen: a database initialised by the container's init.sql is used as is.
func TestInitSQLThenOpen(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	script, err := postgres.InitSQL()
	if err != nil {
		t.Fatal(err)
	}
	execSQL(t, dsn, script)
	execSQL(t, dsn, script) // idempotent
	s := openDSN(t, dsn)
	commitOne(t, s)
	var n int
	want := len(regexp.MustCompile(`(?m)^-- migration `).FindAllString(script, -1))
	if err := s.Pool().QueryRow(context.Background(), "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil || n != want {
		t.Fatalf("schema_migrations: %d rows, want %d, %v", n, want, err)
	}
}

// TestAdoptXComponentAIDatabase: a database created by xcomponent-ai (its two tables only) is
// migrated in place, its rows kept and readable.
func TestAdoptXComponentAIDatabase(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	execSQL(t, dsn, `
CREATE TABLE fsm_events (id UUID PRIMARY KEY, instance_id UUID NOT NULL, machine_name VARCHAR(255) NOT NULL,
  component_name VARCHAR(255), event_type VARCHAR(255) NOT NULL, event_payload JSONB DEFAULT '{}',
  from_state VARCHAR(255), to_state VARCHAR(255), context JSONB DEFAULT '{}', public_member_snapshot JSONB,
  source_component_name VARCHAR(255), correlation_id UUID, causation_id UUID, caused JSONB DEFAULT '[]',
  persisted_at BIGINT NOT NULL, created_at TIMESTAMPTZ DEFAULT NOW());
CREATE TABLE fsm_snapshots (instance_id UUID PRIMARY KEY, machine_name VARCHAR(255) NOT NULL,
  current_state VARCHAR(255) NOT NULL, context JSONB DEFAULT '{}', event_count INTEGER DEFAULT 0,
  pending_timeouts JSONB DEFAULT '[]', created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ DEFAULT NOW());
CREATE VIEW active_instances AS SELECT * FROM fsm_snapshots;`)
	old := uuid.NewString()
	execSQL(t, dsn, `INSERT INTO fsm_events (id, instance_id, machine_name, event_type, from_state, to_state, persisted_at)
		VALUES ($1, $2, 'M', 'GO', 'A', 'B', 1000)`, uuid.NewString(), old)
	s := openDSN(t, dsn)
	h, err := s.History(context.Background(), old)
	if err != nil || len(h) != 1 || h[0].Type != "GO" {
		t.Fatalf("history of an xcomponent-ai row: %+v, %v", h, err)
	}
	// The paged history has the unversioned row too, both ways.
	for _, newest := range []bool{false, true} {
		page, next, err := s.HistoryPage(context.Background(), old, store.EventPage{Limit: 1, Newest: newest})
		if err != nil || len(page) != 1 || page[0].Type != "GO" || next != "" {
			t.Fatalf("history page (newest %v) of an xcomponent-ai row: %+v %q, %v", newest, page, next, err)
		}
	}
	commitOne(t, s)
}

// commitOne creates one instance with a creation event and returns it.
func commitOne(t *testing.T, s store.Store) store.Instance {
	t.Helper()
	in := store.Instance{ID: uuid.NewString(), Component: "Shop", Machine: "Order", State: "Created",
		Data: map[string]any{"amount": 12.5, "customer": map[string]any{"name": "ACME"}}, Status: store.StatusActive,
		CreatedAt: 1_700_000_000_000, UpdatedAt: 1_700_000_000_000,
		Timers: []store.Timer{{Event: "T", TargetState: "X", DueAt: 1_700_000_005_000, TotalMs: 5000, Kind: store.TimerTimeout, ArmedAt: 1_700_000_000_000}}}
	c := &store.Commit{
		Instances: []store.InstanceWrite{{Instance: recPtr(in), ExpectVersion: -1}},
		Events: []store.Event{{ID: uuid.NewString(), InstanceID: in.ID, Component: in.Component, Machine: in.Machine,
			Type: store.EventCreated, Payload: map[string]any{"initialContext": in.Data, "triggerEvent": "api"},
			ToState: in.State, Data: in.Data, CorrelationID: uuid.NewString(), Actor: "tester", Source: "api",
			PersistedAt: in.CreatedAt}},
	}
	if err := s.Commit(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return in
}

// TestXComponentAIQueries runs xcomponent-ai's own queries on tables written by this store.
func TestXComponentAIQueries(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	in := commitOne(t, s)
	next := in
	next.State, next.Version, next.UpdatedAt = "Paid", 1, in.UpdatedAt+1000
	next.Status = store.StatusActive
	err := s.Commit(ctx, &store.Commit{
		Instances: []store.InstanceWrite{{Instance: recPtr(next), ExpectVersion: 0}},
		Events: []store.Event{{ID: uuid.NewString(), InstanceID: in.ID, Component: in.Component, Machine: in.Machine,
			Type: "PAY", Payload: map[string]any{"method": "card"}, FromState: "Created", ToState: "Paid", Data: in.Data,
			SourceComponent: "Billing", Seq: 1, PersistedAt: next.UpdatedAt}},
	})
	if err != nil {
		t.Fatal(err)
	}
	pool := s.Pool()

	rows, err := pool.Query(ctx, `SELECT id, instance_id, machine_name, component_name, event_type, event_payload,
		from_state, to_state, context, public_member_snapshot, source_component_name, correlation_id, causation_id,
		caused, persisted_at, created_at FROM fsm_events WHERE instance_id = $1 ORDER BY persisted_at ASC`, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	type eventRow struct {
		ID, InstanceID         string
		Machine                string
		Component              *string
		Type                   string
		Payload                map[string]any
		From, To               *string
		Context, Public        map[string]any
		SourceComponent        *string
		Correlation, Causation *string
		Caused                 []any
		PersistedAt            int64
		CreatedAt              time.Time
	}
	var evs []eventRow
	for rows.Next() {
		var e eventRow
		if err := rows.Scan(&e.ID, &e.InstanceID, &e.Machine, &e.Component, &e.Type, &e.Payload, &e.From, &e.To,
			&e.Context, &e.Public, &e.SourceComponent, &e.Correlation, &e.Causation, &e.Caused, &e.PersistedAt,
			&e.CreatedAt); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Type != store.EventCreated || evs[1].Type != "PAY" {
		t.Fatalf("events: %+v", evs)
	}
	if *evs[0].From != "" || *evs[1].From != "Created" || *evs[1].To != "Paid" || *evs[1].SourceComponent != "Billing" {
		t.Errorf("event columns: %+v", evs[1])
	}
	if evs[0].Public["amount"] != 12.5 || evs[0].Context["amount"] != 12.5 || evs[0].Caused == nil || len(evs[0].Caused) != 0 {
		t.Errorf("creation event: %+v", evs[0])
	}
	if evs[0].Payload["triggerEvent"] != "api" || evs[0].Correlation == nil || evs[1].Correlation != nil {
		t.Errorf("creation event payload/correlation: %+v", evs[0])
	}

	var (
		id, machine, state string
		context            map[string]any
		count              int32
		timeouts           []map[string]any
		created, updated   time.Time
	)
	err = pool.QueryRow(ctx, `SELECT instance_id, machine_name, current_state, context, event_count, pending_timeouts,
		created_at, updated_at FROM fsm_snapshots WHERE instance_id = $1`, in.ID).
		Scan(&id, &machine, &state, &context, &count, &timeouts, &created, &updated)
	if err != nil {
		t.Fatal(err)
	}
	if id != in.ID || machine != "Order" || state != "Paid" || count != 2 || len(timeouts) != 1 ||
		timeouts[0]["dueAt"] != float64(1_700_000_005_000) || created.UnixMilli() != in.CreatedAt ||
		updated.UnixMilli() != next.UpdatedAt || context["customer"].(map[string]any)["name"] != "ACME" {
		t.Errorf("snapshot: %s %s %s %v %d %v %v %v", id, machine, state, context, count, timeouts, created, updated)
	}

	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT * FROM active_instances) a`).Scan(&n); err != nil || n != 1 {
		t.Errorf("active_instances: %d, %v", n, err)
	}
	var first string
	var eventTime time.Time
	if err := pool.QueryRow(ctx, `SELECT event_type, event_time FROM event_history LIMIT 1`).Scan(&first, &eventTime); err != nil {
		t.Fatal(err)
	}
	if first != "PAY" || eventTime.UnixMilli() != next.UpdatedAt {
		t.Errorf("event_history: newest first %s at %v", first, eventTime)
	}

	// xcomponent-ai writes rows without our columns: the defaults must hold.
	_, err = pool.Exec(ctx, `INSERT INTO fsm_snapshots (instance_id, machine_name, current_state, context, event_count,
		pending_timeouts, created_at, updated_at) VALUES ($1, 'M', 'S', '{}', 0, '[]', NOW(), NOW())`, uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO fsm_events (id, instance_id, machine_name, event_type, persisted_at)
		VALUES ($1, $2, 'M', 'E', 1)`, uuid.NewString(), uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	if got, _, err := s.Search(ctx, store.Query{Machine: "M"}); err != nil || len(got) != 1 {
		t.Errorf("search finds a foreign row: %v, %v", got, err)
	}
}

// TestSchemaColumns checks the shared tables against storage.md, column by column.
func TestSchemaColumns(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	type col struct{ typ, nullable, def string }
	read := func(table string) map[string]col {
		rows, err := s.Pool().Query(ctx, `SELECT column_name, data_type, COALESCE(character_maximum_length::text, ''),
			is_nullable, COALESCE(column_default, '') FROM information_schema.columns WHERE table_name = $1`, table)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]col{}
		for rows.Next() {
			var name, typ, length, nullable, def string
			if err := rows.Scan(&name, &typ, &length, &nullable, &def); err != nil {
				t.Fatal(err)
			}
			if length != "" {
				typ += "(" + length + ")"
			}
			out[name] = col{typ, nullable, def}
		}
		return out
	}
	vc := "character varying(255)"
	want := map[string]map[string]col{
		"fsm_events": {
			"id":                     {"uuid", "NO", ""},
			"instance_id":            {"uuid", "NO", ""},
			"machine_name":           {vc, "NO", ""},
			"component_name":         {vc, "YES", ""},
			"event_type":             {vc, "NO", ""},
			"event_payload":          {"jsonb", "YES", "'{}'::jsonb"},
			"from_state":             {vc, "YES", ""},
			"to_state":               {vc, "YES", ""},
			"context":                {"jsonb", "YES", "'{}'::jsonb"},
			"public_member_snapshot": {"jsonb", "YES", ""},
			"source_component_name":  {vc, "YES", ""},
			"correlation_id":         {"uuid", "YES", ""},
			"causation_id":           {"uuid", "YES", ""},
			"caused":                 {"jsonb", "YES", "'[]'::jsonb"},
			"persisted_at":           {"bigint", "NO", ""},
			"created_at":             {"timestamp with time zone", "YES", "now()"},
		},
		"fsm_snapshots": {
			"instance_id":      {"uuid", "NO", ""},
			"machine_name":     {vc, "NO", ""},
			"current_state":    {vc, "NO", ""},
			"context":          {"jsonb", "YES", "'{}'::jsonb"},
			"event_count":      {"integer", "YES", "0"},
			"pending_timeouts": {"jsonb", "YES", "'[]'::jsonb"},
			"created_at":       {"timestamp with time zone", "YES", ""},
			"updated_at":       {"timestamp with time zone", "YES", "now()"},
		},
	}
	for table, cols := range want {
		got := read(table)
		for name, w := range cols {
			if g, ok := got[name]; !ok || g != w {
				t.Errorf("%s.%s: got %+v, want %+v", table, name, g, w)
			}
			delete(got, name)
		}
		for name, g := range got { // our additions must be nullable
			if g.nullable != "YES" {
				t.Errorf("%s.%s: an added column must be nullable", table, name)
			}
		}
	}
	// Required indexes, by their columns.
	for _, ix := range []struct{ table, column string }{
		{"fsm_events", "instance_id"}, {"fsm_events", "persisted_at"}, {"fsm_events", "correlation_id"},
		{"fsm_events", "machine_name"}, {"fsm_events", "event_type"},
		{"fsm_snapshots", "machine_name"}, {"fsm_snapshots", "current_state"}, {"fsm_snapshots", "updated_at"},
	} {
		var n int
		err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE tablename = $1
			AND indexdef LIKE '%(' || $2 || ')'`, ix.table, ix.column).Scan(&n)
		if err != nil || n == 0 {
			t.Errorf("no index on %s(%s): %v", ix.table, ix.column, err)
		}
	}
}

// TestConcurrentMigrations opens many stores (pools) on a fresh database at once.
func TestConcurrentMigrations(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	const n = 8
	var wg sync.WaitGroup
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			stores[i], errs[i] = postgres.Open(ctx, dsn, postgres.WithLogger(quiet()))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
			continue
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	if t.Failed() {
		return
	}
	var rows int
	if err := stores[0].Pool().QueryRow(context.Background(), "SELECT count(*) FROM schema_migrations").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	all, err := postgres.InitSQL()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(regexp.MustCompile(`(?m)^-- migration `).FindAllString(all, -1)); rows != n {
		t.Errorf("schema_migrations has %d rows, want one per migration (%d)", rows, n)
	}
	for _, s := range stores {
		commitOne(t, s)
	}
}

func TestPruneInbox(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	for range 3 {
		if err := s.Commit(ctx, &store.Commit{InboxID: uuid.NewString()}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.PruneInbox(ctx, time.Hour); err != nil || n != 0 {
		t.Errorf("prune 1h: %d, %v", n, err)
	}
	if _, err := s.Pool().Exec(ctx, "UPDATE inbox SET applied_at = NOW() - interval '2 hours'"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneInbox(ctx, time.Hour); err != nil || n != 3 {
		t.Errorf("prune 1h after 2h: %d, %v", n, err)
	}
}

func TestCommitContextAndClose(t *testing.T) {
	s, _ := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	in := store.Instance{ID: uuid.NewString(), Machine: "M", State: "S", Status: store.StatusActive}
	c := &store.Commit{Instances: []store.InstanceWrite{{Instance: recPtr(in), ExpectVersion: -1}}}
	if err := s.Commit(ctx, c); !errors.Is(err, context.Canceled) {
		t.Errorf("commit with a cancelled context: %v", err)
	}
	if _, err := s.Instance(context.Background(), in.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a cancelled commit was applied: %v", err)
	}
	bad := &store.Commit{Instances: []store.InstanceWrite{{Instance: recPtr(store.Instance{ID: "nope"}), ExpectVersion: -1}}}
	if err := s.Commit(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "not a UUID") {
		t.Errorf("commit of a non-UUID id: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(context.Background(), c); !errors.Is(err, store.ErrClosed) {
		t.Errorf("commit after Close: %v, want ErrClosed", err)
	}
}

// recPtr returns a pointer to a copy of in: records given to Commit must not change afterwards.
func recPtr(in store.Instance) *store.Instance { return &in }
