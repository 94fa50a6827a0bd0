package busbackend

import (
	"context"

	"github.com/xcomponent/xcomponent/internal/httpapi"
	"github.com/xcomponent/xcomponent/store"
)

var _ httpapi.EventFinder = (*Backend)(nil)

// Event implements httpapi.EventFinder (the event an Idempotency-Key names): by id in the
// database when it has a lookup (the SQL stores), else in the instance's history (History:
// the database, or the live audit trail without one).
func (b *Backend) Event(ctx context.Context, instanceID, eventID string) (store.Event, bool, error) {
	if eg, ok := b.cfg.Store.(store.EventGetter); ok {
		ev, found, err := eg.Event(ctx, instanceID, eventID)
		if err != nil {
			return store.Event{}, false, storeErr("event", err)
		}
		return ev, found, nil
	}
	evs, err := b.History(ctx, instanceID)
	if err != nil {
		return store.Event{}, false, err
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].ID == eventID {
			return evs[i], true, nil
		}
	}
	return store.Event{}, false, nil
}
