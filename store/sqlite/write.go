package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/internal/sqlstore"
)

// writeStmts are the committer's prepared statements, bound to its connection.
type writeStmts struct {
	insInbox, insSnap, updSnap, updMoved, getVersion, insEvent, insOutbox, delOutbox *sql.Stmt
	// the fast path's multi-row inserts (multirow.go)
	multiEvents, multiInbox, multiMoved multiInsert
}

const snapshotCols = `machine_name, current_state, context, event_count, pending_timeouts, created_at, updated_at,
	component_name, status, is_entry_point, parent_instance_id, parent_machine_name, version, next_due_at`

func (w *writeStmts) prepare(ctx context.Context, c *sql.Conn) error {
	for _, p := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&w.insInbox, `INSERT INTO inbox (id, applied_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`},
		{&w.insSnap, `INSERT INTO fsm_snapshots (` + snapshotCols + `, instance_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (instance_id) DO NOTHING`},
		{&w.updSnap, `UPDATE fsm_snapshots SET machine_name = ?, current_state = ?, context = ?, event_count = ?,
			pending_timeouts = ?, created_at = ?, updated_at = ?, component_name = ?, status = ?, is_entry_point = ?,
			parent_instance_id = ?, parent_machine_name = ?, version = ?, next_due_at = ?, timer_lease_until = NULL
			WHERE instance_id = ? AND version = ?`},
		// A transition changes only these columns. SQLite rewrites every index holding a column
		// named in SET, whatever its value, so naming only these leaves the indexes on the
		// columns a transition never changes (machine_name, parent_instance_id, the entry
		// point's) alone: three b-tree rewrites fewer per transition on the single writer. The
		// WHERE clause checks that the others are indeed unchanged; when not (or on a version
		// conflict), updSnap writes the whole row (or explains the conflict).
		{&w.updMoved, `UPDATE fsm_snapshots SET current_state = ?, context = ?, event_count = ?, pending_timeouts = ?,
			updated_at = ?, status = ?, version = ?, next_due_at = ?, timer_lease_until = NULL
			WHERE instance_id = ? AND version = ? AND machine_name = ? AND component_name IS ? AND is_entry_point = ?
				AND parent_instance_id IS ? AND parent_machine_name IS ? AND created_at = ?`},
		{&w.getVersion, `SELECT version FROM fsm_snapshots WHERE instance_id = ?`},
		{&w.insEvent, `INSERT INTO fsm_events (` + eventCols + `)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&w.insOutbox, `INSERT INTO outbox (id, component, kind, body, created_at) VALUES (?, ?, ?, ?, ?)`},
		{&w.delOutbox, `DELETE FROM outbox WHERE id = ?`},
	} {
		st, err := c.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		*p.dst = st
	}
	// OR FAIL: a row refused stops the statement and keeps the rows before it, instead of
	// undoing the statement's rows (OR ABORT, the default). With that, and no function call
	// in the statement (created_at is bound), SQLite keeps no statement journal for these
	// multi-row statements — a copy of every page the statement changes, written to a
	// temporary file once larger than 64 KiB, which cost more than the per-row statements
	// saved. Nothing is lost: a refused row fails the fast path, which rolls back the whole
	// transaction.
	w.multiEvents = multiInsert{head: `INSERT OR FAIL INTO fsm_events (` + eventCols + `) VALUES `, cols: eventNumCols}
	// updMoved for many rows: each VALUES row is looked up by the primary key. The UPDATE
	// changes as many rows as it has VALUES only if each applies exactly as updMoved would.
	w.multiMoved = multiInsert{head: `UPDATE OR FAIL fsm_snapshots SET current_state = v.column3, context = v.column4,
		event_count = v.column5, pending_timeouts = v.column6, updated_at = v.column7, status = v.column8,
		version = v.column9, next_due_at = v.column10, timer_lease_until = NULL FROM (VALUES `,
		tail: `) AS v WHERE fsm_snapshots.instance_id = v.column1 AND fsm_snapshots.version = v.column2
		AND machine_name = v.column11 AND component_name IS v.column12 AND is_entry_point = v.column13
		AND parent_instance_id IS v.column14 AND parent_machine_name IS v.column15 AND created_at = v.column16`,
		cols: movedNumCols}
	w.multiInbox = multiInsert{head: `INSERT OR FAIL INTO inbox (id, applied_at) VALUES `, tail: ` ON CONFLICT (id) DO NOTHING`, cols: 2}
	return nil
}

func (w *writeStmts) close() {
	for _, st := range []*sql.Stmt{w.insInbox, w.insSnap, w.updSnap, w.updMoved, w.getVersion, w.insEvent, w.insOutbox, w.delOutbox} {
		if st != nil {
			_ = st.Close()
		}
	}
	w.multiEvents.close()
	w.multiMoved.close()
	w.multiInbox.close()
}

// Commit implements store.Store: c is queued for the committer, and Commit returns once the
// transaction holding it has committed (or failed).
func (s *Store) Commit(ctx context.Context, c *store.Commit) error {
	return s.queue.Submit(ctx, c)
}

// runBatch applies a batch in one transaction. It first applies the commits one after the
// other without savepoints; if one fails, it rolls back and replays the batch with one
// savepoint per commit, so that only the failing commits fail.
func (s *Store) runBatch(batch []*store.Commit) []error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.CommitTimeout)
	defer cancel()
	if err := s.fast(ctx, batch); err == nil {
		return make([]error, len(batch))
	}
	return s.slow(ctx, batch)
}

// fast applies the whole batch with no savepoint; any error rolls everything back. The
// batch's snapshot updates, inbox ids and events are written at its end by multi-row
// statements (multirow.go): an update that does not apply (a version conflict, an unknown
// instance, an instance twice in the batch, a column a transition does not change), an inbox
// id already there (or twice in the batch) or an event refused fails the fast path, and the
// slow path, one statement per row again, finds the commits at fault.
func (s *Store) fast(ctx context.Context, batch []*store.Commit) error {
	if _, err := s.wconn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	now := time.Now().UnixMilli()
	rows := &s.rows
	rows.reset()
	defer rows.reset() // the rows' strings are not kept past the batch
	for _, c := range batch {
		if err := s.apply(ctx, c, now, rows); err != nil {
			s.rollback()
			return err
		}
	}
	if err := s.insertRows(ctx, rows); err != nil {
		s.rollback()
		return err
	}
	if _, err := s.wconn.ExecContext(ctx, "COMMIT"); err != nil {
		s.rollback()
		return err
	}
	return nil
}

// slow applies the batch in one transaction, each commit in its own savepoint.
func (s *Store) slow(ctx context.Context, batch []*store.Commit) []error {
	errs := make([]error, len(batch))
	fail := func(err error) []error {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	if _, err := s.wconn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fail(fmt.Errorf("commit: begin: %w", err))
	}
	now := time.Now().UnixMilli()
	landed := 0
	for i, c := range batch {
		if _, err := s.wconn.ExecContext(ctx, "SAVEPOINT c"); err != nil {
			s.rollback()
			return fail(fmt.Errorf("commit: savepoint: %w", err))
		}
		if err := s.apply(ctx, c, now, nil); err != nil {
			errs[i] = err
			if _, err := s.wconn.ExecContext(ctx, "ROLLBACK TO c"); err != nil {
				s.rollback()
				return fail(fmt.Errorf("commit: rollback to savepoint: %w", err))
			}
		} else {
			landed++
		}
		if _, err := s.wconn.ExecContext(ctx, "RELEASE c"); err != nil {
			s.rollback()
			return fail(fmt.Errorf("commit: release savepoint: %w", err))
		}
	}
	if landed == 0 {
		s.rollback()
		return errs
	}
	if _, err := s.wconn.ExecContext(ctx, "COMMIT"); err != nil {
		s.rollback()
		return fail(fmt.Errorf("commit: %w", err))
	}
	return errs
}

func (s *Store) rollback() {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.CommitTimeout)
	defer cancel()
	_, _ = s.wconn.ExecContext(ctx, "ROLLBACK")
}

// isEntryPointViolation reports whether err is the unique index that keeps one entry point per
// component and machine refusing a second one (migration 0003).
func isEntryPointViolation(err error) bool {
	return strings.Contains(err.Error(), "UNIQUE constraint failed: fsm_snapshots.component_name, fsm_snapshots.machine_name")
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// insertRows writes the snapshot updates, inbox ids and events gathered by the fast path.
func (s *Store) insertRows(ctx context.Context, rows *rowArgs) error {
	st := &s.stmts
	if len(rows.moved) > 0 {
		n, err := st.multiMoved.exec(ctx, s.wconn, rows.moved)
		if err != nil {
			return fmt.Errorf("commit: update instances: %w", err)
		}
		if want := int64(len(rows.moved) / movedNumCols); n != want {
			return fmt.Errorf("commit: update instances: %d of %d updated: %w", n, want, store.ErrConflict)
		}
	}
	if len(rows.inbox) > 0 {
		n, err := st.multiInbox.exec(ctx, s.wconn, rows.inbox)
		if err != nil {
			return fmt.Errorf("commit: inbox: %w", err)
		}
		if want := int64(len(rows.inbox) / 2); n != want {
			return fmt.Errorf("commit: inbox: %d of %d ids new: %w", n, want, store.ErrDuplicate)
		}
	}
	if len(rows.events) > 0 {
		if _, err := st.multiEvents.exec(ctx, s.wconn, rows.events); err != nil {
			return fmt.Errorf("commit: events: %w", err)
		}
	}
	return nil
}

// apply writes one commit inside the current savepoint. With rows, its inbox id, events and
// snapshot updates (not its creations) are added to rows instead (written by insertRows);
// without, they are written here.
func (s *Store) apply(ctx context.Context, c *store.Commit, now int64, rows *rowArgs) error {
	st := &s.stmts
	if c.InboxID != "" && rows != nil {
		rows.inbox = append(rows.inbox, c.InboxID, now)
	} else if c.InboxID != "" {
		res, err := st.insInbox.ExecContext(ctx, c.InboxID, now)
		if err != nil {
			return fmt.Errorf("commit: inbox %s: %w", c.InboxID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("commit %s: %w", c.InboxID, store.ErrDuplicate)
		}
	}
	maps := &s.maps
	maps.Reset()
	for i := range c.Instances {
		w := &c.Instances[i]
		in := w.Instance
		data, err := maps.Encode(in.Data)
		if err != nil {
			return fmt.Errorf("commit: instance %s data: %w", in.ID, err)
		}
		timers, err := sqlstore.EncodeTimers(in.Timers)
		if err != nil {
			return fmt.Errorf("commit: instance %s timers: %w", in.ID, err)
		}
		var due any // next_due_at: NULL without a pending timer
		if d, ok := store.NextDue(in); ok {
			due = d
		}
		args := []any{in.Machine, in.State, data, in.Version + 1, timers, in.CreatedAt, in.UpdatedAt,
			nullable(in.Component), string(in.Status), boolInt(in.IsEntryPoint), nullable(in.ParentID),
			nullable(in.ParentMachine), in.Version, due, in.ID}
		if w.ExpectVersion < 0 {
			res, err := st.insSnap.ExecContext(ctx, args...)
			if err != nil {
				if isEntryPointViolation(err) {
					return fmt.Errorf("create instance %s: machine %s of component %s: %w", in.ID, in.Machine, in.Component, store.ErrEntryPointExists)
				}
				return fmt.Errorf("commit: create instance %s: %w", in.ID, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("create instance %s: exists: %w", in.ID, store.ErrConflict)
			}
			continue
		}
		if rows != nil {
			rows.moved = append(rows.moved, in.ID, w.ExpectVersion, in.State, data, in.Version+1, timers, in.UpdatedAt,
				string(in.Status), in.Version, due, in.Machine, nullable(in.Component), boolInt(in.IsEntryPoint),
				nullable(in.ParentID), nullable(in.ParentMachine), in.CreatedAt)
			continue
		}
		res, err := st.updMoved.ExecContext(ctx, in.State, data, in.Version+1, timers, in.UpdatedAt, string(in.Status),
			in.Version, due, in.ID, w.ExpectVersion, in.Machine, nullable(in.Component), boolInt(in.IsEntryPoint),
			nullable(in.ParentID), nullable(in.ParentMachine), in.CreatedAt)
		if err != nil {
			return fmt.Errorf("commit: update instance %s: %w", in.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			continue
		}
		res, err = st.updSnap.ExecContext(ctx, append(args, w.ExpectVersion)...)
		if err != nil {
			return fmt.Errorf("commit: update instance %s: %w", in.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var v sql.NullInt64
			err := st.getVersion.QueryRowContext(ctx, in.ID).Scan(&v)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("update instance %s: %w", in.ID, store.ErrNotFound)
			case err != nil:
				return fmt.Errorf("commit: update instance %s: %w", in.ID, err)
			}
			return fmt.Errorf("update instance %s: version %d, expected %d: %w", in.ID, v.Int64, w.ExpectVersion, store.ErrConflict)
		}
	}
	for i := range c.Events {
		e := &c.Events[i]
		payload, err := sqlstore.EncodeMap(e.Payload)
		if err != nil {
			return fmt.Errorf("commit: event %s payload: %w", e.ID, err)
		}
		data, err := maps.Encode(e.Data)
		if err != nil {
			return fmt.Errorf("commit: event %s data: %w", e.ID, err)
		}
		if rows != nil {
			rows.events = append(rows.events, e.ID, e.InstanceID, e.Machine, nullable(e.Component), e.Type, payload,
				e.FromState, e.ToState, data, nullable(e.SourceComponent), nullable(e.CorrelationID), nullable(e.CausationID),
				e.PersistedAt, e.Seq, nullable(e.Actor), nullable(e.Source), nullable(e.Note), nullable(e.TraceID), nullable(e.Reason), now)
			continue
		}
		if _, err := st.insEvent.ExecContext(ctx, e.ID, e.InstanceID, e.Machine, nullable(e.Component), e.Type, payload,
			e.FromState, e.ToState, data, nullable(e.SourceComponent), nullable(e.CorrelationID), nullable(e.CausationID),
			e.PersistedAt, e.Seq, nullable(e.Actor), nullable(e.Source), nullable(e.Note), nullable(e.TraceID), nullable(e.Reason), now); err != nil {
			return fmt.Errorf("commit: event %s of instance %s: %w", e.ID, e.InstanceID, err)
		}
	}
	for i := range c.Outbox {
		m := &c.Outbox[i]
		body := m.Body
		if body == nil {
			body = []byte{}
		}
		if _, err := st.insOutbox.ExecContext(ctx, m.ID, m.Component, m.Kind, body, m.CreatedAt); err != nil {
			return fmt.Errorf("commit: outbox %s: %w", m.ID, err)
		}
	}
	for _, id := range c.Consumed {
		res, err := st.delOutbox.ExecContext(ctx, id)
		if err != nil {
			return fmt.Errorf("commit: consume outbox %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			// Another delivery of the same message won: applying this one would apply it twice.
			return fmt.Errorf("outbox message %s: already delivered: %w", id, store.ErrDuplicate)
		}
	}
	return nil
}
