package busbackend

import (
	"context"

	"github.com/xcomponent/xcomponent/internal/httpapi"
	"github.com/xcomponent/xcomponent/store"
)

var _ httpapi.EventFinder = (*Backend)(nil)

// Event implements httpapi.EventFinder (the event an Idempotency-Key names): in the database
// when there is one (store.FindEvent), else in the live audit trail.
func (b *Backend) Event(ctx context.Context, instanceID, eventID string) (store.Event, bool, error) {
	if b.cfg.Store != nil {
		ev, found, err := store.FindEvent(ctx, b.cfg.Store, instanceID, eventID)
		if err != nil {
			return store.Event{}, false, storeErr("event", err)
		}
		return ev, found, nil
	}
	evs, err := b.History(ctx, instanceID) // the live audit trail
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
