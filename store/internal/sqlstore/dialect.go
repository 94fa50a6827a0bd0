package sqlstore

import (
	"context"
	"database/sql"
	"strconv"

	"github.com/xcomponent/xcomponent/store"
)

// Scanner reads the columns of one row.
type Scanner interface {
	Scan(dest ...any) error
}

// Rows is a query's result set.
type Rows interface {
	Scanner
	Next() bool
	Err() error
	Close()
}

// DB runs SQL: the drivers adapt *sql.DB (StdDB) or a pgx pool or connection to it.
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (Rows, error)
	// Exec runs a statement and returns how many rows it affected.
	Exec(ctx context.Context, sql string, args ...any) (int64, error)
}

// Dialect is what the shared SQL needs to know about a database.
type Dialect struct {
	// Name names the store in errors and logs ("sqlite", "postgres").
	Name string
	// Placeholder returns the text of the n-th parameter (1-based): "?" or "$n".
	Placeholder func(n int) string
	// IDCast follows the placeholder of an id compared with an id column ("::uuid").
	IDCast string
	// ValidID reports whether id can be stored at all: an id that cannot is not looked up
	// (an unknown instance, no events, a cursor no page produced).
	ValidID func(id string) bool
	// Millis returns the parameter of a ms-epoch time compared with the created_at,
	// updated_at and applied_at columns (an integer, or a time.Time for TIMESTAMPTZ).
	Millis func(ms int64) any
	// TextMatch returns the condition of Query.Text: the lower-cased text is a substring of
	// the lower-cased instance id or JSON data. It binds its parameters with b.Arg.
	TextMatch func(b *Builder, lowerText string) string
	// SelectInstances is SELECT … FROM fsm_snapshots with the columns ScanInstance reads.
	SelectInstances string
	// ScanInstance reads one row of SelectInstances, sharing repeated strings through in
	// (nil: none shared).
	ScanInstance func(r Scanner, in *Interner) (store.Instance, error)
	// ScanInstanceReusing, when set, is ScanInstance decoding the context into reuse (an
	// empty map, or nil) when it can: StreamLiveReusing's rows.
	ScanInstanceReusing func(r Scanner, in *Interner, reuse map[string]any) (store.Instance, error)
	// SelectEvents is SELECT … FROM fsm_events with the columns ScanEvent reads: id,
	// instance_id, component_name, machine_name, event_type, event_payload, from_state,
	// to_state, context, source_component_name, correlation_id, causation_id, actor, source,
	// seq, persisted_at, note, trace_id, reason (ids as text).
	SelectEvents string
	// InsertionOrder is the ORDER BY term that keeps events of equal version and time in
	// insertion order (rowid, a serial column).
	InsertionOrder string
}

// Dollar numbers parameters $1, $2, … (PostgreSQL).
func Dollar(n int) string { return "$" + strconv.Itoa(n) }

// Question writes every parameter as ? (SQLite, positional).
func Question(int) string { return "?" }

// Builder accumulates the conditions and parameters of one query.
type Builder struct {
	d     *Dialect
	where []string
	args  []any
}

// NewBuilder returns an empty builder for d.
func (d *Dialect) NewBuilder() *Builder { return &Builder{d: d} }

// Arg binds v and returns its placeholder.
func (b *Builder) Arg(v any) string {
	b.args = append(b.args, v)
	return b.d.Placeholder(len(b.args))
}

// ID binds an id compared with an id column.
func (b *Builder) ID(id string) string { return b.Arg(id) + b.d.IDCast }

// Where adds a condition (ANDed with the others).
func (b *Builder) Where(cond string) { b.where = append(b.where, cond) }

// Args returns the parameters bound so far.
func (b *Builder) Args() []any { return b.args }

// SQL returns base followed by the conditions (WHERE … AND …) and tail.
func (b *Builder) SQL(base, tail string) string {
	q := base
	for i, w := range b.where {
		if i == 0 {
			q += " WHERE " + w
		} else {
			q += " AND " + w
		}
	}
	if tail != "" {
		q += " " + tail
	}
	return q
}

// StdQuerier is what database/sql's *sql.DB, *sql.Conn and *sql.Tx have in common.
type StdQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// StdDB adapts a database/sql handle to DB.
func StdDB(q StdQuerier) DB { return stdDB{q} }

type stdDB struct{ q StdQuerier }

func (d stdDB) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	rows, err := d.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return stdRows{rows}, nil
}

func (d stdDB) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := d.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// stdRows: Close's error is also reported by Err once the rows are read to the end.
type stdRows struct{ *sql.Rows }

func (r stdRows) Close() { _ = r.Rows.Close() }
