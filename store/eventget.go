package store

import "context"

// EventGetter is implemented by stores that read one event of an instance by its id without
// reading the instance's history: the SQL stores (fsm_events.id is the primary key) and the
// memory store. The HTTP API uses it to find the event an Idempotency-Key names.
type EventGetter interface {
	// Event returns event id of instance instanceID; ok is false when the store holds none
	// (never written, or dropped by the store's retention).
	Event(ctx context.Context, instanceID, id string) (ev Event, ok bool, err error)
}

var _ EventGetter = (*Memory)(nil)

// FindEvent returns event id of instance instanceID in st: one read by its key when st is an
// EventGetter, else a scan of the instance's history. ok is false when there is none.
func FindEvent(ctx context.Context, st Store, instanceID, id string) (ev Event, ok bool, err error) {
	if eg, is := st.(EventGetter); is {
		return eg.Event(ctx, instanceID, id)
	}
	evs, err := st.History(ctx, instanceID)
	if err != nil {
		return Event{}, false, err
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].ID == id {
			return evs[i], true, nil
		}
	}
	return Event{}, false, nil
}

// Event implements EventGetter: a scan of the instance's events kept (the newest first; the
// memory store keeps a bounded number per instance).
func (m *Memory) Event(_ context.Context, instanceID, id string) (Event, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	en, ok := m.entries[instanceID]
	if !ok {
		return Event{}, false, nil
	}
	for i := en.n - 1; i >= 0; i-- {
		if me := en.at(i); me.ID == id {
			return en.event(me), true, nil
		}
	}
	return Event{}, false, nil
}
