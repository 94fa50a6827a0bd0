package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/internal/sqlstore"
)

// Commit implements store.Store: c is queued for a committer, and Commit returns once the
// transaction holding it has committed (or failed, having applied nothing).
func (s *Store) Commit(ctx context.Context, c *store.Commit) error {
	return s.queue.Submit(ctx, c)
}

// The batch statements: each takes column arrays and writes many rows. They are prepared
// once per connection (pgx statement cache).
const (
	sqlInbox = `INSERT INTO inbox (id) SELECT unnest($1::text[]) ON CONFLICT (id) DO NOTHING`

	snapshotArrays = `unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
		$7::timestamptz[], $8::text[], $9::text[], $10::bool[], $11::text[], $12::text[], $13::bigint[], $14::bigint[],
		$15::bigint[])
		AS v(id, machine, state, data, timers, created, updated, component, status, entry, parent, parent_machine, version, expect,
			due)`

	sqlCreate = `INSERT INTO fsm_snapshots (instance_id, machine_name, current_state, context, event_count,
		pending_timeouts, created_at, updated_at, component_name, status, is_entry_point, parent_instance_id,
		parent_machine_name, version, next_due_at)
		SELECT v.id::uuid, v.machine, v.state, v.data::jsonb, v.version + 1, v.timers::jsonb, v.created, v.updated,
			NULLIF(v.component, ''), v.status, v.entry, NULLIF(v.parent, '')::uuid, NULLIF(v.parent_machine, ''), v.version,
			v.due
		FROM ` + snapshotArrays + `
		ON CONFLICT (instance_id) DO NOTHING`

	sqlUpdate = `UPDATE fsm_snapshots AS s SET machine_name = v.machine, current_state = v.state,
		context = v.data::jsonb, event_count = v.version + 1, pending_timeouts = v.timers::jsonb,
		created_at = v.created, updated_at = v.updated, component_name = NULLIF(v.component, ''), status = v.status,
		is_entry_point = v.entry, parent_instance_id = NULLIF(v.parent, '')::uuid,
		parent_machine_name = NULLIF(v.parent_machine, ''), version = v.version, next_due_at = v.due,
		timer_lease_until = NULL
		FROM ` + snapshotArrays + `
		WHERE s.instance_id = v.id::uuid AND s.version = v.expect`

	sqlEvents = `INSERT INTO fsm_events (id, instance_id, machine_name, component_name, event_type, event_payload,
		from_state, to_state, context, public_member_snapshot, source_component_name, correlation_id, causation_id,
		persisted_at, seq, actor, source, note, trace_id, reason)
		SELECT v.id::uuid, v.iid::uuid, v.machine, NULLIF(v.component, ''), v.type, v.payload::jsonb, v.from_state,
			v.to_state, v.data::jsonb, v.data::jsonb, NULLIF(v.src, ''), NULLIF(v.corr, '')::uuid,
			NULLIF(v.cause, '')::uuid, v.at, v.seq, NULLIF(v.actor, ''), NULLIF(v.source, ''), NULLIF(v.note, ''),
			NULLIF(v.trace, ''), NULLIF(v.reason, '')
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
			$9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[], $14::bigint[], $15::text[], $16::text[],
			$17::text[], $18::text[], $19::text[])
			AS v(id, iid, machine, component, type, payload, from_state, to_state, data, src, corr, cause, at, seq, actor, source, note, trace, reason)`

	sqlOutbox = `INSERT INTO outbox (id, component, kind, body, created_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bigint[])`

	sqlConsume = `DELETE FROM outbox WHERE id = ANY($1::text[])`
)

// encoded is a commit checked and encoded for SQL.
type encoded struct {
	c       *store.Commit
	creates []instanceRow
	updates []instanceRow
	events  []eventRow
	keys    []string // what it writes: two commits sharing a key must not share a statement
}

type instanceRow struct {
	id, machine, state, data, timers, component, status, parent, parentMachine string
	created, updated                                                           time.Time
	entry                                                                      bool
	version, expect                                                            int64
	due                                                                        *int64 // next_due_at
}

type eventRow struct {
	id, iid, machine, component, typ, payload, from, to, data, src, corr, cause, actor, source, note, trace, reason string
	at, seq                                                                                                         int64
}

// canonicalUUID returns id in canonical form, or an error naming what it is.
func canonicalUUID(what, id string, optional bool) (string, error) {
	if id == "" && optional {
		return "", nil
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return "", fmt.Errorf("commit: %s %q is not a UUID", what, id)
	}
	return u.String(), nil
}

func encode(c *store.Commit) (*encoded, error) {
	e := &encoded{c: c}
	if c.InboxID != "" {
		e.keys = append(e.keys, "inbox:"+c.InboxID)
	}
	var maps sqlstore.MapEncoder // a transition's snapshot and event share their data map
	seen := make(map[string]bool, len(c.Instances))
	for i := range c.Instances {
		w := &c.Instances[i]
		in := w.Instance
		id, err := canonicalUUID("instance id", in.ID, false)
		if err != nil {
			return nil, err
		}
		if seen[id] {
			return nil, fmt.Errorf("commit: instance %s written twice in one commit", id)
		}
		seen[id] = true
		parent, err := canonicalUUID("parent instance id", in.ParentID, true)
		if err != nil {
			return nil, err
		}
		data, err := maps.Encode(in.Data)
		if err != nil {
			return nil, fmt.Errorf("commit: instance %s data: %w", id, err)
		}
		timers, err := sqlstore.EncodeTimers(in.Timers)
		if err != nil {
			return nil, fmt.Errorf("commit: instance %s timers: %w", id, err)
		}
		row := instanceRow{
			id: id, machine: in.Machine, state: in.State, data: data, timers: timers, component: in.Component,
			status: string(in.Status), parent: parent, parentMachine: in.ParentMachine,
			created: time.UnixMilli(in.CreatedAt), updated: time.UnixMilli(in.UpdatedAt), entry: in.IsEntryPoint,
			version: in.Version, expect: w.ExpectVersion,
		}
		if due, ok := store.NextDue(in); ok {
			row.due = &due
		}
		if w.ExpectVersion < 0 {
			e.creates = append(e.creates, row)
		} else {
			e.updates = append(e.updates, row)
		}
		e.keys = append(e.keys, "instance:"+id)
	}
	for i := range c.Events {
		ev := &c.Events[i]
		id, err := canonicalUUID("event id", ev.ID, false)
		if err != nil {
			return nil, err
		}
		iid, err := canonicalUUID("event instance id", ev.InstanceID, false)
		if err != nil {
			return nil, err
		}
		corr, err := canonicalUUID("correlation id", ev.CorrelationID, true)
		if err != nil {
			return nil, err
		}
		cause, err := canonicalUUID("causation id", ev.CausationID, true)
		if err != nil {
			return nil, err
		}
		payload, err := sqlstore.EncodeMap(ev.Payload)
		if err != nil {
			return nil, fmt.Errorf("commit: event %s payload: %w", id, err)
		}
		data, err := maps.Encode(ev.Data)
		if err != nil {
			return nil, fmt.Errorf("commit: event %s data: %w", id, err)
		}
		e.events = append(e.events, eventRow{
			id: id, iid: iid, machine: ev.Machine, component: ev.Component, typ: ev.Type, payload: payload,
			from: ev.FromState, to: ev.ToState, data: data, src: ev.SourceComponent, corr: corr, cause: cause,
			actor: ev.Actor, source: ev.Source, note: ev.Note, trace: ev.TraceID, reason: ev.Reason, at: ev.PersistedAt, seq: ev.Seq,
		})
		e.keys = append(e.keys, "instance:"+iid, "event:"+id)
	}
	for _, m := range c.Outbox {
		e.keys = append(e.keys, "outbox:"+m.ID)
	}
	for _, id := range c.Consumed {
		e.keys = append(e.keys, "outbox:"+id)
	}
	return e, nil
}

// firstKey is the smallest instance id the commit writes ("" if none).
func (e *encoded) firstKey() string {
	k := ""
	for _, r := range e.updates {
		if k == "" || r.id < k {
			k = r.id
		}
	}
	for _, r := range e.creates {
		if k == "" || r.id < k {
			k = r.id
		}
	}
	return k
}

// rows accumulates the column arrays of the commits of one statement group.
type rows struct {
	inbox []string

	creates, updates snapshotCols

	evID, evIID, evMachine, evComp, evType, evPayload, evFrom, evTo, evData, evSrc, evCorr, evCause, evActor, evSource, evNote, evTrace, evReason []string
	evAt, evSeq                                                                                                                                   []int64

	obID, obComp, obKind []string
	obBody               [][]byte
	obAt                 []int64

	consumed []string
}

type snapshotCols struct {
	id, machine, state, data, timers, component, status, parent, parentMachine []string
	created, updated                                                           []time.Time
	entry                                                                      []bool
	version, expect                                                            []int64
	due                                                                        []*int64
}

func (c *snapshotCols) add(r *instanceRow) {
	c.id = append(c.id, r.id)
	c.machine = append(c.machine, r.machine)
	c.state = append(c.state, r.state)
	c.data = append(c.data, r.data)
	c.timers = append(c.timers, r.timers)
	c.created = append(c.created, r.created)
	c.updated = append(c.updated, r.updated)
	c.component = append(c.component, r.component)
	c.status = append(c.status, r.status)
	c.entry = append(c.entry, r.entry)
	c.parent = append(c.parent, r.parent)
	c.parentMachine = append(c.parentMachine, r.parentMachine)
	c.version = append(c.version, r.version)
	c.expect = append(c.expect, r.expect)
	c.due = append(c.due, r.due)
}

func (c *snapshotCols) args() []any {
	return []any{c.id, c.machine, c.state, c.data, c.timers, c.created, c.updated, c.component, c.status, c.entry,
		c.parent, c.parentMachine, c.version, c.expect, c.due}
}

func (r *rows) add(e *encoded) {
	if e.c.InboxID != "" {
		r.inbox = append(r.inbox, e.c.InboxID)
	}
	for i := range e.creates {
		r.creates.add(&e.creates[i])
	}
	for i := range e.updates {
		r.updates.add(&e.updates[i])
	}
	for i := range e.events {
		ev := &e.events[i]
		r.evID = append(r.evID, ev.id)
		r.evIID = append(r.evIID, ev.iid)
		r.evMachine = append(r.evMachine, ev.machine)
		r.evComp = append(r.evComp, ev.component)
		r.evType = append(r.evType, ev.typ)
		r.evPayload = append(r.evPayload, ev.payload)
		r.evFrom = append(r.evFrom, ev.from)
		r.evTo = append(r.evTo, ev.to)
		r.evData = append(r.evData, ev.data)
		r.evSrc = append(r.evSrc, ev.src)
		r.evCorr = append(r.evCorr, ev.corr)
		r.evCause = append(r.evCause, ev.cause)
		r.evActor = append(r.evActor, ev.actor)
		r.evSource = append(r.evSource, ev.source)
		r.evNote = append(r.evNote, ev.note)
		r.evTrace = append(r.evTrace, ev.trace)
		r.evReason = append(r.evReason, ev.reason)
		r.evAt = append(r.evAt, ev.at)
		r.evSeq = append(r.evSeq, ev.seq)
	}
	for _, m := range e.c.Outbox {
		body := m.Body
		if body == nil {
			body = []byte{}
		}
		r.obID = append(r.obID, m.ID)
		r.obComp = append(r.obComp, m.Component)
		r.obKind = append(r.obKind, m.Kind)
		r.obBody = append(r.obBody, body)
		r.obAt = append(r.obAt, m.CreatedAt)
	}
	r.consumed = append(r.consumed, e.c.Consumed...)
}

// check is what a queued statement must report: its kind and how many rows it must affect
// (-1: any).
type check struct {
	kind string
	want int
}

// queue adds the group's statements to b and returns what each must report.
func (r *rows) queue(b *pgx.Batch) []check {
	var checks []check
	if len(r.inbox) > 0 {
		b.Queue(sqlInbox, r.inbox)
		checks = append(checks, check{"inbox", len(r.inbox)})
	}
	if len(r.creates.id) > 0 {
		b.Queue(sqlCreate, r.creates.args()...)
		checks = append(checks, check{"create", len(r.creates.id)})
	}
	if len(r.updates.id) > 0 {
		b.Queue(sqlUpdate, r.updates.args()...)
		checks = append(checks, check{"update", len(r.updates.id)})
	}
	if len(r.evID) > 0 {
		b.Queue(sqlEvents, r.evID, r.evIID, r.evMachine, r.evComp, r.evType, r.evPayload, r.evFrom, r.evTo, r.evData,
			r.evSrc, r.evCorr, r.evCause, r.evAt, r.evSeq, r.evActor, r.evSource, r.evNote, r.evTrace, r.evReason)
		checks = append(checks, check{"events", -1})
	}
	if len(r.obID) > 0 {
		b.Queue(sqlOutbox, r.obID, r.obComp, r.obKind, r.obBody, r.obAt)
		checks = append(checks, check{"outbox", -1})
	}
	if len(r.consumed) > 0 {
		b.Queue(sqlConsume, r.consumed)
		checks = append(checks, check{"consume", len(r.consumed)})
	}
	return checks
}

// groups splits commits, in order, into runs in which no two commits share a key, so that
// each run can be written by one multi-row statement per table with the same effect as
// applying its commits one after the other.
func groups(commits []*encoded) [][]*encoded {
	var out [][]*encoded
	var cur []*encoded
	keys := map[string]bool{}
	for _, e := range commits {
		clash := false
		for _, k := range e.keys {
			if keys[k] {
				clash = true
				break
			}
		}
		if clash {
			out = append(out, cur)
			cur = nil
			clear(keys)
		}
		cur = append(cur, e)
		for _, k := range e.keys {
			keys[k] = true
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// errRetry: the fast path found a failing commit; the batch must be replayed commit by commit.
var errRetry = errors.New("a commit of the batch failed")

// runBatch applies a batch: the fast path first, the savepoint path if a commit failed.
func (s *Store) runBatch(batch []*store.Commit) []error {
	errs := make([]error, len(batch))
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.CommitTimeout)
	defer cancel()
	var enc []*encoded
	var idx []int // batch index of each enc
	for i, c := range batch {
		e, err := encode(c)
		if err != nil {
			errs[i] = err
			continue
		}
		enc = append(enc, e)
		idx = append(idx, i)
	}
	if len(enc) == 0 {
		return errs
	}
	failAll := func(err error) []error {
		for _, i := range idx {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return failAll(fmt.Errorf("commit: database unavailable, nothing applied: %w", err))
	}
	defer conn.Release()
	err = s.fast(ctx, conn, enc)
	if err == nil {
		return errs
	}
	var cp *commitPhaseError
	if errors.As(err, &cp) || (!errors.Is(err, errRetry) && !isStatementError(err)) {
		return failAll(wrapBatchError(err))
	}
	// A deadlock with another transaction (another process writing the same instances) aborts
	// the whole replay, releasing our locks so the other side can finish; then replay again.
	var slowErrs []error
	for attempt := 1; ; attempt++ {
		slowErrs, err = s.slow(ctx, conn, enc)
		if err == nil {
			break
		}
		if !isTransient(err) || attempt == maxReplays {
			return failAll(wrapBatchError(err))
		}
		t := time.NewTimer(time.Duration(attempt) * time.Duration(1+rand.IntN(5)) * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return failAll(wrapBatchError(err))
		}
	}
	for k, i := range idx {
		errs[i] = slowErrs[k]
	}
	return errs
}

// maxReplays bounds the replays of a batch that keeps deadlocking.
const maxReplays = 8

// isTransient reports whether err is a deadlock or serialization failure: retrying the whole
// transaction is the cure.
func isTransient(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001" || pgErr.Code == "55P03")
}

// isEntryPointViolation reports whether err is the unique index that keeps one entry point per
// component and machine refusing a second one (migration 0003).
func isEntryPointViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "idx_fsm_snapshots_entry_point"
}

// isStatementError reports whether err is an error of one SQL statement reported by the
// server (the connection is still usable), as opposed to a connection or timeout error.
func isStatementError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr)
}

// fast writes every commit in one transaction with multi-row statements, in one pipelined
// round trip. It returns errRetry (having rolled back) if any commit fails a check.
func (s *Store) fast(ctx context.Context, conn *pgxpool.Conn, enc []*encoded) (err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(ctx)
		}
	}()
	b := &pgx.Batch{}
	var checks []check
	for _, g := range groups(enc) {
		// The commits of a group touch disjoint rows: any order is theirs. Sorting them by
		// instance id makes concurrent transactions lock rows in the same order (fewer
		// deadlocks between processes).
		g = slices.Clone(g)
		slices.SortStableFunc(g, func(a, b *encoded) int { return strings.Compare(a.firstKey(), b.firstKey()) })
		var r rows
		for _, e := range g {
			r.add(e)
		}
		checks = append(checks, r.queue(b)...)
	}
	br := tx.SendBatch(ctx, b)
	failed := false
	for _, ch := range checks {
		tag, err := br.Exec()
		if err != nil {
			_ = br.Close()
			return err
		}
		if ch.want >= 0 && int(tag.RowsAffected()) != ch.want {
			failed = true
		}
	}
	if err := br.Close(); err != nil {
		return err
	}
	if failed {
		return errRetry
	}
	if err := tx.Commit(ctx); err != nil {
		return &commitPhaseError{err}
	}
	return nil
}

// commitPhaseError: COMMIT itself failed. If the connection broke, the server may or may not
// have committed: the caller cannot know.
type commitPhaseError struct{ err error }

func (e *commitPhaseError) Error() string { return e.err.Error() }
func (e *commitPhaseError) Unwrap() error { return e.err }

// wrapBatchError describes an error that failed a whole batch.
func wrapBatchError(err error) error {
	var cp *commitPhaseError
	switch {
	case errors.As(err, &cp) && !isStatementError(err):
		return fmt.Errorf("commit: connection lost during COMMIT, outcome unknown: %w", cp.err)
	case isStatementError(err):
		return fmt.Errorf("commit: %w", err)
	default:
		return fmt.Errorf("commit: database unavailable, nothing applied: %w", err)
	}
}

// slow applies the commits one by one in one transaction, each in its own savepoint, and
// returns each commit's outcome. err is an error of the whole transaction (nothing applied).
func (s *Store) slow(ctx context.Context, conn *pgxpool.Conn, enc []*encoded) (errs []error, err error) {
	errs = make([]error, len(enc))
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(ctx)
		}
	}()
	for i, e := range enc {
		b := &pgx.Batch{}
		if i > 0 {
			b.Queue("RELEASE SAVEPOINT c")
		}
		b.Queue("SAVEPOINT c")
		var r rows
		r.add(e)
		checks := r.queue(b)
		br := tx.SendBatch(ctx, b)
		if i > 0 {
			if _, err := br.Exec(); err != nil {
				_ = br.Close()
				return nil, fmt.Errorf("release savepoint: %w", err)
			}
		}
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return nil, fmt.Errorf("savepoint: %w", err)
		}
		var (
			stmtErr error
			failed  string // the kind of the check that failed
		)
		for _, ch := range checks {
			tag, err := br.Exec()
			if err != nil {
				stmtErr = err
				break
			}
			if ch.want >= 0 && int(tag.RowsAffected()) != ch.want {
				failed = ch.kind
				break
			}
		}
		// Closing reads the remaining results; after a failed check a later statement may
		// have failed too (the event of a stale write hits the (instance_id, seq) index).
		if err := br.Close(); err != nil && stmtErr == nil && failed == "" {
			stmtErr = err
		}
		if stmtErr != nil && (!isStatementError(stmtErr) || isTransient(stmtErr)) {
			return nil, stmtErr // the connection is gone, or the transaction must be replayed
		}
		if stmtErr == nil && failed == "" {
			continue
		}
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT c"); err != nil {
			return nil, fmt.Errorf("rollback to savepoint: %w", err)
		}
		if failed == "" {
			if isEntryPointViolation(stmtErr) {
				errs[i] = fmt.Errorf("commit: create entry point: %w (%v)", store.ErrEntryPointExists, stmtErr)
				continue
			}
			errs[i] = fmt.Errorf("commit: %w", stmtErr)
			continue
		}
		if errs[i], err = explain(ctx, tx, e, failed); err != nil {
			return nil, err
		}
	}
	if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT c"); err != nil {
		return nil, fmt.Errorf("release savepoint: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, &commitPhaseError{err}
	}
	return errs, nil
}

// explain returns the error of a commit whose check of the given kind failed, reading the
// state as it was before the commit (its savepoint has been rolled back). err is a failure
// of the transaction itself.
func explain(ctx context.Context, tx pgx.Tx, e *encoded, kind string) (commitErr, err error) {
	switch kind {
	case "inbox":
		return fmt.Errorf("commit %s: %w", e.c.InboxID, store.ErrDuplicate), nil
	case "consume":
		return fmt.Errorf("outbox messages %v: already delivered: %w", e.c.Consumed, store.ErrDuplicate), nil
	case "create":
		for _, r := range e.creates {
			var one int
			err := tx.QueryRow(ctx, "SELECT 1 FROM fsm_snapshots WHERE instance_id = $1::uuid", r.id).Scan(&one)
			if err == nil {
				return fmt.Errorf("create instance %s: exists: %w", r.id, store.ErrConflict), nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return nil, fmt.Errorf("explain: %w", err)
			}
		}
		return fmt.Errorf("create instance: exists: %w", store.ErrConflict), nil
	case "update":
		for _, r := range e.updates {
			var v *int64
			err := tx.QueryRow(ctx, "SELECT version FROM fsm_snapshots WHERE instance_id = $1::uuid", r.id).Scan(&v)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("update instance %s: %w", r.id, store.ErrNotFound), nil
			}
			if err != nil {
				return nil, fmt.Errorf("explain: %w", err)
			}
			if v == nil || *v != r.expect {
				got := "none"
				if v != nil {
					got = fmt.Sprint(*v)
				}
				return fmt.Errorf("update instance %s: version %s, expected %d: %w", r.id, got, r.expect, store.ErrConflict), nil
			}
		}
		return fmt.Errorf("update instance: %w", store.ErrConflict), nil
	}
	return fmt.Errorf("commit: %s check failed", kind), nil
}
