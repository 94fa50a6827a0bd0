package postgres

import (
	"context"
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
		ScanInstance:    scanInstance,
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

func scanInstance(r sqlstore.Scanner) (store.Instance, error) {
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
	return in, sqlstore.DecodeInstanceJSON(&in, data, timers)
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
