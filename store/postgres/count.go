package postgres

import (
	"context"
	"fmt"

	"github.com/xcomponent/xcomponent/store"
)

var _ store.Counter = (*Store)(nil)

// CountStates implements store.Counter: one GROUP BY over the component's snapshots.
func (s *Store) CountStates(ctx context.Context, component string) ([]store.StatusCount, error) {
	rows, err := s.pool.Query(ctx, `SELECT machine_name, current_state, status, count(*) FROM fsm_snapshots
		WHERE component_name = $1 GROUP BY machine_name, current_state, status`, component)
	if err != nil {
		return nil, fmt.Errorf("count states of %s: %w", component, err)
	}
	defer rows.Close()
	var out []store.StatusCount
	for rows.Next() {
		var c store.StatusCount
		var status string
		if err := rows.Scan(&c.Machine, &c.State, &status, &c.Count); err != nil {
			return nil, fmt.Errorf("count states of %s: %w", component, err)
		}
		c.Status = store.Status(status)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count states of %s: %w", component, err)
	}
	return out, nil
}
