package sqlstore

import (
	"context"
	"fmt"

	"github.com/xcomponent/xcomponent/store"
)

var _ store.EventGetter = Reads{}

// Event implements store.EventGetter: one row by the primary key of fsm_events, checked to be
// of the instance.
func (r Reads) Event(ctx context.Context, instanceID, id string) (store.Event, bool, error) {
	if !r.d.ValidID(instanceID) || !r.d.ValidID(id) {
		return store.Event{}, false, nil // no such id can be stored
	}
	b := r.d.NewBuilder()
	b.Where("id = " + b.ID(id))
	b.Where("instance_id = " + b.ID(instanceID))
	out, err := QueryAll(ctx, r.db, ScanEvent, b.SQL(r.d.SelectEvents, ""), b.Args()...)
	if err != nil {
		return store.Event{}, false, fmt.Errorf("event %s of %s: %w", id, instanceID, err)
	}
	if len(out) == 0 {
		return store.Event{}, false, nil
	}
	return out[0], true, nil
}
