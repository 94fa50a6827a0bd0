package postgres

import (
	"context"
	"fmt"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/internal/sqlstore"
)

var _ store.TimerClaimer = (*Store)(nil)

// sqlClaim leases the due instances of a component. The inner SELECT walks the partial index
// on (component_name, next_due_at) and skips rows another transaction holds (a committer
// writing them, or another runtime's claim), so runtimes claiming at once never wait for each
// other nor get the same instance.
const sqlClaim = `UPDATE fsm_snapshots AS s SET timer_lease_until = $4
	FROM (SELECT instance_id FROM fsm_snapshots
		WHERE component_name = $1 AND next_due_at IS NOT NULL AND next_due_at <= $2
			AND (timer_lease_until IS NULL OR timer_lease_until <= $3)
		ORDER BY next_due_at
		LIMIT $5
		FOR UPDATE SKIP LOCKED) AS c
	WHERE s.instance_id = c.instance_id
	RETURNING s.instance_id::text, s.component_name, s.machine_name, s.current_state, s.context, s.status,
		s.is_entry_point, s.parent_instance_id::text, s.parent_machine_name, s.created_at, s.updated_at, s.version,
		s.pending_timeouts`

// ClaimDueTimers implements store.TimerClaimer.
func (s *Store) ClaimDueTimers(ctx context.Context, c store.TimerClaim) ([]store.Instance, error) {
	if c.Limit <= 0 {
		return nil, nil
	}
	out, err := sqlstore.QueryAll(ctx, pgDB{s.pool}, scanInstance, sqlClaim, c.Component, c.DueBy, c.Now, c.LeaseUntil, c.Limit)
	if err != nil {
		return nil, fmt.Errorf("claim due timers of %s: %w", c.Component, err)
	}
	return out, nil
}
