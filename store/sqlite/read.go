package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"

	msqlite "modernc.org/sqlite"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/internal/sqlstore"
)

// newDialect: ids are any non-empty text, times are ms-epoch integers, Search's text filter
// is the contains_folded function (SQLite's own lower() and LIKE fold ASCII only).
func newDialect() *sqlstore.Dialect {
	return &sqlstore.Dialect{
		Name:        "sqlite",
		Placeholder: sqlstore.Question,
		ValidID:     func(id string) bool { return id != "" },
		Millis:      func(ms int64) any { return ms },
		TextMatch: func(b *sqlstore.Builder, text string) string {
			return "(contains_folded(instance_id, " + b.Arg(text) + ") OR contains_folded(context, " + b.Arg(text) + "))"
		},
		SelectInstances:     selectSnapshot,
		ScanInstance:        scanInstanceInterned,
		ScanInstanceReusing: scanInstanceReusing,
		SelectEvents: `SELECT id, instance_id, component_name, machine_name, event_type, event_payload, from_state, to_state,
	context, source_component_name, correlation_id, causation_id, actor, source, seq, persisted_at, note, trace_id, reason FROM fsm_events`,
		InsertionOrder: "rowid",
	}
}

const selectSnapshot = `SELECT instance_id, component_name, machine_name, current_state, context, status, is_entry_point,
	parent_instance_id, parent_machine_name, created_at, updated_at, version, pending_timeouts FROM fsm_snapshots`

// scanInstance reads one selectSnapshot row.
func scanInstance(r sqlstore.Scanner) (store.Instance, error) { return scanInstanceInterned(r, nil) }

// scanInstanceInterned is scanInstance sharing names and context keys through in.
func scanInstanceInterned(r sqlstore.Scanner, in *sqlstore.Interner) (store.Instance, error) {
	return scanInstanceReusing(r, in, nil)
}

// scanInstanceReusing is scanInstanceInterned decoding the context into reuse when it can
// (sqlstore.DecodeMapReusing).
func scanInstanceReusing(r sqlstore.Scanner, in *sqlstore.Interner, reuse map[string]any) (store.Instance, error) {
	var (
		rec                                   store.Instance
		comp, machine, state, status, parentM sql.RawBytes
		parent                                sql.NullString
		entry, created, updated, version      sql.NullInt64
		data, timers                          sql.RawBytes
	)
	if err := r.Scan(&rec.ID, &comp, &machine, &state, &data, &status, &entry, &parent, &parentM,
		&created, &updated, &version, &timers); err != nil {
		return rec, err
	}
	rec.Component, rec.Machine, rec.State = in.Bytes(comp), in.Bytes(machine), in.Bytes(state)
	rec.Status, rec.ParentID, rec.ParentMachine = store.Status(in.Bytes(status)), parent.String, in.Bytes(parentM)
	rec.IsEntryPoint = entry.Int64 != 0
	rec.CreatedAt, rec.UpdatedAt, rec.Version = created.Int64, updated.Int64, version.Int64
	return rec, sqlstore.DecodeInstanceJSONReusing(&rec, reuse, data, timers, in)
}

// newConnector opens connections with the store's own SQL function, registered on a driver
// of the store's own (not on the process-wide "sqlite" driver):
//
//	contains_folded(haystack, needle): 1 when strings.ToLower(haystack) contains needle
//	(already lower-cased), the text rule of the memory store; 0 otherwise or for NULL.
func newConnector(dsn string) driver.Connector {
	d := &msqlite.Driver{}
	d.MustRegisterDeterministicScalarFunction("contains_folded", 2, containsFolded)
	return connector{d: d, dsn: dsn}
}

type connector struct {
	d   *msqlite.Driver
	dsn string
}

func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return c.d.Open(c.dsn)
}

func (c connector) Driver() driver.Driver { return c.d }

func containsFolded(_ *msqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	var hay, needle string
	for i, dst := range []*string{&hay, &needle} {
		switch v := args[i].(type) {
		case string:
			*dst = v
		case []byte:
			*dst = string(v)
		case nil:
			return int64(0), nil
		default:
			return nil, fmt.Errorf("contains_folded: argument %d: %T is not text", i+1, v)
		}
	}
	if strings.Contains(strings.ToLower(hay), needle) {
		return int64(1), nil
	}
	return int64(0), nil
}
