package sqlite

import (
	"context"
	"fmt"
	"sort"

	"github.com/xcomponent/xcomponent/store"
)

var _ store.TimerClaimer = (*Store)(nil)

// sqlClaim leases the due instances of a component in one statement: SQLite runs one writer
// at a time, so two processes claiming at once are serialised by the database lock.
const sqlClaim = `UPDATE fsm_snapshots SET timer_lease_until = ?
	WHERE instance_id IN (SELECT instance_id FROM fsm_snapshots
		WHERE component_name = ? AND next_due_at IS NOT NULL AND next_due_at <= ?
			AND (timer_lease_until IS NULL OR timer_lease_until <= ?)
		ORDER BY next_due_at LIMIT ?)
	RETURNING instance_id, component_name, machine_name, current_state, context, status, is_entry_point,
		parent_instance_id, parent_machine_name, created_at, updated_at, version, pending_timeouts, next_due_at`

// ClaimDueTimers implements store.TimerClaimer.
func (s *Store) ClaimDueTimers(ctx context.Context, c store.TimerClaim) ([]store.Instance, error) {
	if c.Limit <= 0 {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, sqlClaim, c.LeaseUntil, c.Component, c.DueBy, c.Now, c.Limit)
	if err != nil {
		return nil, fmt.Errorf("claim due timers of %s: %w", c.Component, err)
	}
	defer rows.Close()
	type claimed struct {
		in  store.Instance
		due int64
	}
	var got []claimed
	for rows.Next() {
		var cl claimed
		in, err := scanInstance(scannerFunc(func(dest ...any) error {
			return rows.Scan(append(dest, &cl.due)...)
		}))
		if err != nil {
			return nil, fmt.Errorf("claim due timers of %s: %w", c.Component, err)
		}
		cl.in = in
		got = append(got, cl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim due timers of %s: %w", c.Component, err)
	}
	// RETURNING gives no order: earliest deadline first, as the interface says.
	sort.Slice(got, func(i, j int) bool { return got[i].due < got[j].due })
	out := make([]store.Instance, len(got))
	for i := range got {
		out[i] = got[i].in
	}
	return out, nil
}

type scannerFunc func(dest ...any) error

func (f scannerFunc) Scan(dest ...any) error { return f(dest...) }
