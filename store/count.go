package store

import "context"

// StatusCount is how many instances of a machine are in one state with one status.
type StatusCount struct {
	Machine string
	State   string
	Status  Status
	Count   int
}

// Counter is implemented by stores that count the instances of a component per machine,
// state and status without reading them (the dashboard's counts, exact at any scale).
type Counter interface {
	CountStates(ctx context.Context, component string) ([]StatusCount, error)
}

var _ Counter = (*Memory)(nil)

// CountStates implements Counter.
func (m *Memory) CountStates(_ context.Context, component string) ([]StatusCount, error) {
	type key struct {
		machine, state string
		status         Status
	}
	counts := map[key]int{}
	m.mu.RLock()
	for _, en := range m.entries {
		if r := en.rec; r.Component == component {
			counts[key{r.Machine, r.State, r.Status}]++
		}
	}
	m.mu.RUnlock()
	out := make([]StatusCount, 0, len(counts))
	for k, n := range counts {
		out = append(out, StatusCount{Machine: k.machine, State: k.state, Status: k.status, Count: n})
	}
	return out, nil
}
