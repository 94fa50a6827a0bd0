package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/xcomponent/xcomponent/store"
)

// DefaultSearchLimit is the page size of a Search without a Limit.
const DefaultSearchLimit = 100

// Reads implements the store.Store reads that are the same SQL in every dialect, and
// PruneInbox (store.InboxPruner) and CountStates (store.Counter). A driver's Store embeds it:
// its exported methods are those of these interfaces, no other.
type Reads struct {
	d  *Dialect
	db DB
}

// NewReads returns the reads of d on db.
func NewReads(d *Dialect, db DB) Reads { return Reads{d: d, db: db} }

// instances runs a query of d.SelectInstances rows and scans them.
func (r Reads) instances(ctx context.Context, query string, args ...any) ([]store.Instance, error) {
	return QueryAll(ctx, r.db, func(s Scanner) (store.Instance, error) { return r.d.ScanInstance(s, nil) }, query, args...)
}

// QueryAll runs a query and returns its rows read by scan.
func QueryAll[T any](ctx context.Context, db DB, scan func(Scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Instance implements store.Store.
func (r Reads) Instance(ctx context.Context, id string) (store.Instance, error) {
	var out []store.Instance
	var err error
	if r.d.ValidID(id) {
		b := r.d.NewBuilder()
		b.Where("instance_id = " + b.ID(id))
		out, err = r.instances(ctx, b.SQL(r.d.SelectInstances, ""), b.Args()...)
	}
	if err != nil {
		return store.Instance{}, fmt.Errorf("instance %s: %w", id, err)
	}
	if len(out) == 0 {
		return store.Instance{}, fmt.Errorf("instance %s: %w", id, store.ErrNotFound)
	}
	return out[0], nil
}

// LiveQuery returns the query of the live instances of a component (LoadLive's rows, in its
// order) on the columns of selectCols (SELECT … FROM fsm_snapshots) and its parameters.
func (r Reads) LiveQuery(selectCols, component string) (string, []any) {
	return r.liveQuery(selectCols, component, "ORDER BY created_at, instance_id")
}

// StreamQuery is LiveQuery without the order (StreamLive's rows): no index serves
// ORDER BY created_at, instance_id, so that the database sorted every live row of the
// component, contexts included — at a million rows an external sort on disk, the largest part
// of the database's work in a restore (docs/benchmarks.md "Restore").
func (r Reads) StreamQuery(selectCols, component string) (string, []any) {
	return r.liveQuery(selectCols, component, "")
}

func (r Reads) liveQuery(selectCols, component, tail string) (string, []any) {
	b := r.d.NewBuilder()
	b.Where("component_name = " + b.Arg(component))
	b.Where("(status = 'active' OR is_entry_point = TRUE)")
	return b.SQL(selectCols, tail), b.Args()
}

// LoadLive implements store.Store.
func (r Reads) LoadLive(ctx context.Context, component string) ([]store.Instance, error) {
	query, args := r.LiveQuery(r.d.SelectInstances, component)
	out, err := r.instances(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("load live %s: %w", component, err)
	}
	return out, nil
}

// StreamLive implements store.LiveStreamer: LoadLive's rows in no particular order
// (StreamQuery), each handed to fn as it is read, with the strings that repeat from row to
// row (names, context keys) shared.
func (r Reads) StreamLive(ctx context.Context, component string, fn func(*store.Instance) error) error {
	return r.StreamLiveReusing(ctx, component, nil, fn)
}

// Recycled hands out the records of a stream (store.LiveRecycler): one from the batches its
// consumer sent back when one is at hand, else a new one. The zero value is ready; one per
// stream (not safe for concurrent use).
type Recycled struct{ batch []*store.Instance }

// Next returns a record to decode a row into: its Data, when set, is an empty map to reuse.
func (r *Recycled) Next(free <-chan []*store.Instance) *store.Instance {
	if len(r.batch) == 0 {
		select {
		case r.batch = <-free: // a nil channel is never ready
		default:
		}
	}
	n := len(r.batch)
	if n == 0 {
		return new(store.Instance)
	}
	rec := r.batch[n-1]
	r.batch[n-1] = nil
	r.batch = r.batch[:n-1]
	clear(rec.Data)
	return rec
}

// StreamLiveReusing implements store.LiveRecycler.
func (r Reads) StreamLiveReusing(ctx context.Context, component string, free <-chan []*store.Instance, fn func(*store.Instance) error) error {
	query, args := r.StreamQuery(r.d.SelectInstances, component)
	rows, err := r.db.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("load live %s: %w", component, err)
	}
	defer rows.Close()
	var (
		in   Interner
		recs Recycled
	)
	for rows.Next() {
		rec := recs.Next(free)
		if r.d.ScanInstanceReusing != nil {
			*rec, err = r.d.ScanInstanceReusing(rows, &in, rec.Data)
		} else {
			*rec, err = r.d.ScanInstance(rows, &in)
		}
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

// Search implements store.Store: every filter in SQL, the text one with the dialect's
// TextMatch, pages by cursor (EncodeCursor).
func (r Reads) Search(ctx context.Context, q store.Query) ([]store.Instance, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultSearchLimit
	}
	b := r.d.NewBuilder()
	eq := func(col, v string) {
		if v != "" {
			b.Where(col + " = " + b.Arg(v))
		}
	}
	eq("component_name", q.Component)
	eq("machine_name", q.Machine)
	eq("current_state", q.State)
	eq("status", string(q.Status))
	if q.ParentID != "" {
		if !r.d.ValidID(q.ParentID) {
			return nil, "", nil // no instance has that parent
		}
		b.Where("parent_instance_id = " + b.ID(q.ParentID))
	}
	if q.From > 0 {
		b.Where("updated_at >= " + b.Arg(r.d.Millis(q.From)))
	}
	if q.To > 0 {
		b.Where("updated_at <= " + b.Arg(r.d.Millis(q.To)))
	}
	if q.Text != "" {
		b.Where(r.d.TextMatch(b, strings.ToLower(q.Text)))
	}
	if q.Cursor != "" {
		ms, id, err := r.d.DecodeCursor(q.Cursor)
		if err != nil {
			return nil, "", err
		}
		t := r.d.Millis(ms)
		b.Where("(updated_at < " + b.Arg(t) + " OR (updated_at = " + b.Arg(t) + " AND instance_id > " + b.ID(id) + "))")
	}
	query := b.SQL(r.d.SelectInstances, "ORDER BY updated_at DESC, instance_id ASC LIMIT "+b.Arg(limit+1))
	out, err := r.instances(ctx, query, b.Args()...)
	if err != nil {
		return nil, "", fmt.Errorf("search: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = EncodeCursor(last.UpdatedAt, last.ID)
	}
	return out, next, nil
}

// events returns the events of the rows whose column col is id, in the order given.
func (r Reads) events(ctx context.Context, col, id, order string) ([]store.Event, error) {
	if !r.d.ValidID(id) {
		return []store.Event{}, nil // no such id can be stored
	}
	b := r.d.NewBuilder()
	b.Where(col + " = " + b.ID(id))
	out, err := QueryAll(ctx, r.db, ScanEvent, b.SQL(r.d.SelectEvents, "ORDER BY "+order), b.Args()...)
	if out == nil && err == nil {
		out = []store.Event{}
	}
	return out, err
}

// History implements store.Store: by instance version, then time and insertion order (rows
// written by other tools, such as xcomponent-ai, have no version and come first).
func (r Reads) History(ctx context.Context, instanceID string) ([]store.Event, error) {
	out, err := r.events(ctx, "instance_id", instanceID, "seq NULLS FIRST, persisted_at, "+r.d.InsertionOrder)
	if err != nil {
		return nil, fmt.Errorf("history %s: %w", instanceID, err)
	}
	return out, nil
}

// Correlated implements store.Store.
func (r Reads) Correlated(ctx context.Context, correlationID string) ([]store.Event, error) {
	out, err := r.events(ctx, "correlation_id", correlationID, "persisted_at, id")
	if err != nil {
		return nil, fmt.Errorf("correlated %s: %w", correlationID, err)
	}
	return out, nil
}

// PendingOutbox implements store.Store.
func (r Reads) PendingOutbox(ctx context.Context, component string, limit int) ([]store.Message, error) {
	b := r.d.NewBuilder()
	if component != "" {
		b.Where("component = " + b.Arg(component))
	}
	tail := "ORDER BY seq"
	if limit > 0 {
		tail += " LIMIT " + b.Arg(limit)
	}
	out, err := QueryAll(ctx, r.db, scanMessage, b.SQL("SELECT id, component, kind, body, created_at FROM outbox", tail), b.Args()...)
	if err != nil {
		return nil, fmt.Errorf("pending outbox: %w", err)
	}
	return out, nil
}

func scanMessage(r Scanner) (m store.Message, err error) {
	err = r.Scan(&m.ID, &m.Component, &m.Kind, &m.Body, &m.CreatedAt)
	return m, err
}

// PruneInbox deletes the inbox ids applied more than olderThan ago and returns how many. A
// pruned id is forgotten: a message redelivered with it later is applied again, so olderThan
// must exceed the longest time a duplicate can still arrive (see store.InboxPruner).
func (r Reads) PruneInbox(ctx context.Context, olderThan time.Duration) (int64, error) {
	b := r.d.NewBuilder()
	b.Where("applied_at < " + b.Arg(r.d.Millis(time.Now().Add(-olderThan).UnixMilli())))
	n, err := r.db.Exec(ctx, b.SQL("DELETE FROM inbox", ""), b.Args()...)
	if err != nil {
		return 0, fmt.Errorf("prune inbox: %w", err)
	}
	return n, nil
}

// CountStates implements store.Counter: one GROUP BY over the component's snapshots.
func (r Reads) CountStates(ctx context.Context, component string) ([]store.StatusCount, error) {
	b := r.d.NewBuilder()
	b.Where("component_name = " + b.Arg(component))
	query := b.SQL("SELECT machine_name, current_state, status, count(*) FROM fsm_snapshots",
		"GROUP BY machine_name, current_state, status")
	out, err := QueryAll(ctx, r.db, scanStatusCount, query, b.Args()...)
	if err != nil {
		return nil, fmt.Errorf("count states of %s: %w", component, err)
	}
	return out, nil
}

func scanStatusCount(r Scanner) (c store.StatusCount, err error) {
	var status string
	err = r.Scan(&c.Machine, &c.State, &status, &c.Count)
	c.Status = store.Status(status)
	return c, err
}

var _ store.HistoryPager = Reads{}

// HistoryPage implements store.HistoryPager: a range of the unique (instance_id, seq) index,
// LIMIT n+1 to know whether another page follows. The events without a version (written by
// another tool) are read with the page that reaches them: the first one oldest first, the
// last one newest first.
func (r Reads) HistoryPage(ctx context.Context, instanceID string, p store.EventPage) ([]store.Event, string, error) {
	limit := p.EventLimit()
	after := int64(-1)
	if p.Cursor != "" {
		seq, ok := store.DecodeEventCursor(p.Cursor)
		if !ok {
			return nil, "", fmt.Errorf("history %s: cursor %q: %w", instanceID, p.Cursor, store.ErrBadCursor)
		}
		after = seq
	}
	if !r.d.ValidID(instanceID) {
		return []store.Event{}, "", nil
	}
	b := r.d.NewBuilder()
	b.Where("instance_id = " + b.ID(instanceID))
	order := "seq"
	switch {
	case p.Newest && after >= 0:
		b.Where("seq < " + b.Arg(after))
		order = "seq DESC"
	case p.Newest:
		b.Where("seq IS NOT NULL")
		order = "seq DESC"
	case after >= 0:
		b.Where("seq > " + b.Arg(after))
	default:
		b.Where("seq IS NOT NULL")
	}
	out, err := QueryAll(ctx, r.db, ScanEvent, b.SQL(r.d.SelectEvents, "ORDER BY "+order+" LIMIT "+b.Arg(limit+1)), b.Args()...)
	if err != nil {
		return nil, "", fmt.Errorf("history %s: %w", instanceID, err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = store.EncodeEventCursor(out[limit-1].Seq)
	}
	// The unversioned rows: before the first page oldest first, after the last newest first.
	if (!p.Newest && after < 0) || (p.Newest && next == "") {
		legacy, err := r.unversioned(ctx, instanceID, p.Newest)
		if err != nil {
			return nil, "", err
		}
		if len(legacy) > 0 {
			if p.Newest {
				out = append(out, legacy...)
			} else {
				out = append(legacy, out...)
			}
		}
	}
	if out == nil {
		out = []store.Event{}
	}
	return out, next, nil
}

// unversioned returns the events of an instance written without a version, in History's
// order (reversed when newest).
func (r Reads) unversioned(ctx context.Context, instanceID string, newest bool) ([]store.Event, error) {
	b := r.d.NewBuilder()
	b.Where("instance_id = " + b.ID(instanceID))
	b.Where("seq IS NULL")
	order := "persisted_at, " + r.d.InsertionOrder
	if newest {
		ins, nullsFirst := strings.CutSuffix(r.d.InsertionOrder, " NULLS FIRST")
		order = "persisted_at DESC, " + ins + " DESC"
		if nullsFirst {
			order += " NULLS LAST"
		}
	}
	out, err := QueryAll(ctx, r.db, ScanEvent, b.SQL(r.d.SelectEvents, "ORDER BY "+order), b.Args()...)
	if err != nil {
		return nil, fmt.Errorf("history %s: unversioned events: %w", instanceID, err)
	}
	return out, nil
}
