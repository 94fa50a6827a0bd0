package postgres

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/internal/sqlstore"
)

// newDialect: ids are UUIDs, times TIMESTAMPTZ, and Search's text filter is ILIKE on the id
// and on the JSONB text of the data (which PostgreSQL renders with a space after ':' and ',').
func newDialect() *sqlstore.Dialect {
	return &sqlstore.Dialect{
		Name:        "postgres",
		Placeholder: sqlstore.Dollar,
		IDCast:      "::uuid",
		ValidID:     func(id string) bool { _, err := uuid.Parse(id); return err == nil },
		Millis:      func(ms int64) any { return time.UnixMilli(ms) },
		TextMatch: func(b *sqlstore.Builder, text string) string {
			p := b.Arg("%" + likeEscaper.Replace(text) + "%")
			return "(instance_id::text ILIKE " + p + " OR context::text ILIKE " + p + ")"
		},
		SelectInstances: selectSnapshot,
		ScanInstance:    scanInstanceInterned,
		SelectEvents: `SELECT id::text, instance_id::text, component_name, machine_name, event_type, event_payload,
	from_state, to_state, context, source_component_name, correlation_id::text, causation_id::text, actor, source, seq,
	persisted_at, note, trace_id, reason FROM fsm_events`,
		// rows written by xcomponent-ai have no ord
		InsertionOrder: "ord NULLS FIRST",
	}
}

// likeEscaper escapes LIKE wildcards (the default escape character is the backslash).
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

const selectSnapshot = `SELECT instance_id::text, component_name, machine_name, current_state, context, status,
	is_entry_point, parent_instance_id::text, parent_machine_name, created_at, updated_at, version, pending_timeouts
	FROM fsm_snapshots`

func scanInstance(r sqlstore.Scanner) (store.Instance, error) { return scanInstanceInterned(r, nil) }

// scanInstanceInterned is scanInstance sharing names and context keys through intern.
func scanInstanceInterned(r sqlstore.Scanner, intern *sqlstore.Interner) (store.Instance, error) {
	var (
		in                            store.Instance
		comp, status, parent, parentM *string
		entry                         *bool
		created, updated              *time.Time
		version                       *int64
		data, timers                  []byte
	)
	if err := r.Scan(&in.ID, &comp, &in.Machine, &in.State, &data, &status, &entry, &parent, &parentM,
		&created, &updated, &version, &timers); err != nil {
		return in, err
	}
	in.Component, in.ParentID, in.ParentMachine = sqlstore.Deref(comp), sqlstore.Deref(parent), sqlstore.Deref(parentM)
	in.Status = store.Status(sqlstore.Deref(status))
	in.IsEntryPoint = entry != nil && *entry
	if created != nil {
		in.CreatedAt = created.UnixMilli()
	}
	if updated != nil {
		in.UpdatedAt = updated.UnixMilli()
	}
	if version != nil {
		in.Version = *version
	}
	return in, sqlstore.DecodeInstanceJSONInterned(&in, data, timers, intern)
}

// liveFormats are the result formats of selectSnapshot's columns for StreamLive, which reads
// the raw bytes of each column: text for text, uuid::text and jsonb (its JSON text), binary
// for the boolean, the two TIMESTAMPTZ and the version (fixed-size big-endian integers).
var liveFormats = pgx.QueryResultFormats{
	pgx.TextFormatCode, pgx.TextFormatCode, pgx.TextFormatCode, pgx.TextFormatCode, pgx.TextFormatCode,
	pgx.TextFormatCode, pgx.BinaryFormatCode, pgx.TextFormatCode, pgx.TextFormatCode, pgx.BinaryFormatCode,
	pgx.BinaryFormatCode, pgx.BinaryFormatCode, pgx.TextFormatCode,
}

// StreamLive implements store.LiveStreamer. It decodes each row from its raw column bytes
// (liveFormats) rather than through pgx's Scan, which allocates a pointer per nullable column
// and a copy per JSON column: at a million rows that was half of a restore's reading.
func (s *Store) StreamLive(ctx context.Context, component string, fn func(*store.Instance) error) error {
	return s.StreamLiveReusing(ctx, component, nil, fn)
}

// StreamLiveReusing implements store.LiveRecycler.
func (s *Store) StreamLiveReusing(ctx context.Context, component string, free <-chan []*store.Instance, fn func(*store.Instance) error) error {
	query, args := s.StreamQuery(selectSnapshot, component)
	rows, err := s.pool.Query(ctx, query, append([]any{liveFormats}, args...)...)
	if err != nil {
		return fmt.Errorf("load live %s: %w", component, err)
	}
	defer rows.Close()
	var (
		intern sqlstore.Interner
		recs   sqlstore.Recycled
	)
	for rows.Next() {
		rec := recs.Next(free)
		err := decodeLiveRow(rec, rows.RawValues(), &intern)
		if err != nil {
			return fmt.Errorf("load live %s: %w", component, err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load live %s: %w", component, err)
	}
	return nil
}

// EstimateLive implements store.LiveEstimator: the planner's row estimate for StreamLive's
// query (EXPLAIN, no row read), as good as the table's statistics (autovacuum's ANALYZE);
// 0 for a table never analyzed, whose estimate means nothing.
func (s *Store) EstimateLive(ctx context.Context, component string) (int, error) {
	var analyzed bool
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(last_analyze, last_autoanalyze) IS NOT NULL
		FROM pg_stat_user_tables WHERE relid = 'fsm_snapshots'::regclass`).Scan(&analyzed)
	if err != nil || !analyzed {
		return 0, err
	}
	query, args := s.StreamQuery("SELECT instance_id FROM fsm_snapshots", component)
	var plan []byte
	if err := s.pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+query, args...).Scan(&plan); err != nil {
		return 0, fmt.Errorf("estimate live %s: %w", component, err)
	}
	var out []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		} `json:"Plan"`
	}
	if err := json.Unmarshal(plan, &out); err != nil || len(out) != 1 {
		return 0, fmt.Errorf("estimate live %s: plan %q: %v", component, plan, err)
	}
	return int(min(out[0].Plan.Rows, 1e9)), nil
}

// pgEpochMs is 2000-01-01T00:00:00Z, PostgreSQL's binary timestamp origin, in ms since 1970.
const pgEpochMs = 946_684_800_000

// decodeLiveRow decodes one selectSnapshot row in liveFormats into in (NULL columns are nil),
// reusing in.Data when it is set (an empty map).
func decodeLiveRow(in *store.Instance, v [][]byte, intern *sqlstore.Interner) error {
	if len(v) != 13 {
		return fmt.Errorf("snapshot row: %d columns, want 13", len(v))
	}
	reuse := in.Data
	*in = store.Instance{
		ID: string(v[0]), Component: intern.Bytes(v[1]), Machine: intern.Bytes(v[2]), State: intern.Bytes(v[3]),
		Status: store.Status(intern.Bytes(v[5])), ParentID: string(v[7]), ParentMachine: intern.Bytes(v[8]),
	}
	if len(v[6]) == 1 {
		in.IsEntryPoint = v[6][0] != 0
	}
	var ok bool
	if in.CreatedAt, ok = pgMillis(v[9]); !ok {
		return fmt.Errorf("instance %s created_at: %d bytes", in.ID, len(v[9]))
	}
	if in.UpdatedAt, ok = pgMillis(v[10]); !ok {
		return fmt.Errorf("instance %s updated_at: %d bytes", in.ID, len(v[10]))
	}
	if v[11] != nil {
		if len(v[11]) != 8 {
			return fmt.Errorf("instance %s version: %d bytes", in.ID, len(v[11]))
		}
		in.Version = int64(binary.BigEndian.Uint64(v[11]))
	}
	return sqlstore.DecodeInstanceJSONReusing(in, reuse, v[4], v[12], intern)
}

// pgMillis converts a binary TIMESTAMPTZ (µs since 2000, big-endian) to ms since 1970, as
// time.Time.UnixMilli would (rounding down); NULL is 0. The infinities, which pgx's Scan
// refuses into a time.Time, are refused too.
func pgMillis(b []byte) (int64, bool) {
	if b == nil {
		return 0, true
	}
	if len(b) != 8 {
		return 0, false
	}
	us := int64(binary.BigEndian.Uint64(b))
	if us == math.MaxInt64 || us == math.MinInt64 {
		return 0, false
	}
	ms := us / 1000
	if us%1000 < 0 {
		ms--
	}
	return ms + pgEpochMs, true
}

// pgDB adapts a pgx pool or connection to sqlstore.DB.
type pgDB struct {
	q interface {
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	}
}

func (d pgDB) Query(ctx context.Context, sql string, args ...any) (sqlstore.Rows, error) {
	rows, err := d.q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (d pgDB) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	tag, err := d.q.Exec(ctx, sql, args...)
	return tag.RowsAffected(), err
}
