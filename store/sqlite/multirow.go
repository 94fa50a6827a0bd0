package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math/bits"
	"strings"
)

// Multi-row statements. In a batch's fast path (no savepoint) the committer gathers the
// snapshot updates, fsm_events rows and inbox ids of all the batch's commits and writes them
// with a few multi-row statements (UPDATE … FROM (VALUES …), INSERT … VALUES (…), (…))
// instead of one statement execution per row: each execution goes through database/sql and
// the driver (locking, argument conversion, one sqlite3_step and reset), which costs more
// than the b-tree work of a small row. A batch's rows are written by chunks whose sizes are
// powers of two (at most maxChunkRows rows, so the largest statement binds maxChunkRows × 20
// parameters, far below SQLite's limit of 32,766 variables), so each statement needs at most
// one prepared statement per power of two. Each statement counts the rows it changed, which
// the fast path checks: any row short sends the batch to the slow path.

// maxChunkRows is the most rows one multi-row INSERT writes: 1 << (chunkSizes-1).
const (
	chunkSizes   = 9
	maxChunkRows = 1 << (chunkSizes - 1)
)

// eventCols are the columns of an fsm_events row written by the store, in the order of the
// insert statements' parameters. created_at is bound (the batch's time) rather than left to
// its DEFAULT: a function call in an INSERT (unixepoch) makes SQLite keep a statement journal
// for a multi-row statement (see prepare), and is evaluated once per row.
const eventCols = `id, instance_id, machine_name, component_name, event_type, event_payload,
	from_state, to_state, context, source_component_name, correlation_id, causation_id, persisted_at, seq, actor, source,
	note, trace_id, reason, created_at`

const eventNumCols = 20

// multiInsert is the family of one multi-row statement (head, the rows' VALUES, tail), one
// per power of two rows, prepared on first use on the committer's connection.
type multiInsert struct {
	head, tail string // INSERT … VALUES, and what follows the rows (ON CONFLICT …)
	cols       int
	stmts      [chunkSizes]*sql.Stmt // stmts[k]: 1<<k rows
}

func (m *multiInsert) stmt(ctx context.Context, c *sql.Conn, k int) (*sql.Stmt, error) {
	if st := m.stmts[k]; st != nil {
		return st, nil
	}
	row := "(" + strings.Repeat("?, ", m.cols-1) + "?)"
	var b strings.Builder
	b.WriteString(m.head)
	for i := range 1 << k {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	b.WriteString(m.tail)
	st, err := c.PrepareContext(ctx, b.String())
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	m.stmts[k] = st
	return st, nil
}

// exec runs the statement for the rows whose parameters are args (cols per row, in order)
// and returns the number of rows changed.
func (m *multiInsert) exec(ctx context.Context, c *sql.Conn, args []any) (int64, error) {
	var n int64
	for rows := len(args) / m.cols; rows > 0; {
		k := bits.Len(uint(min(rows, maxChunkRows))) - 1 // the largest power of two ≤ rows
		st, err := m.stmt(ctx, c, k)
		if err != nil {
			return n, err
		}
		chunk := (1 << k) * m.cols
		res, err := st.ExecContext(ctx, args[:chunk]...)
		if err != nil {
			return n, err
		}
		got, err := res.RowsAffected()
		if err != nil {
			return n, err
		}
		n += got
		args = args[chunk:]
		rows -= 1 << k
	}
	return n, nil
}

func (m *multiInsert) close() {
	for i, st := range m.stmts {
		if st != nil {
			_ = st.Close()
			m.stmts[i] = nil
		}
	}
}

// rowArgs are the parameters of the rows a fast-path batch inserts at its end.
type rowArgs struct {
	events []any // eventNumCols per row
	inbox  []any // 2 per row: id, applied_at
	moved  []any // movedNumCols per row
}

// movedNumCols are the parameters of one snapshot update (multiMoved): instance_id, the
// expected version, the columns a transition changes, then those it must find unchanged.
const movedNumCols = 16

func (r *rowArgs) reset() {
	clear(r.events)
	r.events = r.events[:0]
	clear(r.inbox)
	r.inbox = r.inbox[:0]
	clear(r.moved)
	r.moved = r.moved[:0]
}
