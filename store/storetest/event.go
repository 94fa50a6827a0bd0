package storetest

import (
	"context"
	"testing"

	"github.com/xcomponent/xcomponent/store"
)

// testEventByID: store.EventGetter reads one event of an instance by its id, as History has
// it; an id of another instance, an unknown id or one no store could hold is not found.
func testEventByID(t *testing.T, s store.Store) {
	eg, ok := s.(store.EventGetter)
	if !ok {
		t.Skip("the store does not implement store.EventGetter")
	}
	ctx := context.Background()
	comp := unique("comp")
	a := newInstance(comp, "Order", "Created", map[string]any{"n": 1}, base)
	b := newInstance(comp, "Order", "Created", nil, base)
	mustCommit(t, s, create(a))
	mustCommit(t, s, create(b))
	c, _ := step(a, "Pay", "Paid", map[string]any{"n": 2}, base+1)
	c.Events[0].Payload = map[string]any{"method": "card"}
	c.Events[0].Reason = "by phone"
	mustCommit(t, s, c)
	want := c.Events[0]
	got, found, err := eg.Event(ctx, a.ID, want.ID)
	if err != nil || !found {
		t.Fatalf("Event(%s): found=%v %v", want.ID, found, err)
	}
	checkEvents(t, []store.Event{want}, []store.Event{got})
	for _, q := range []struct{ instance, id string }{{b.ID, want.ID}, {a.ID, newID()}, {a.ID, "not-a-uuid"}, {"not-a-uuid", want.ID}} {
		if _, found, err := eg.Event(ctx, q.instance, q.id); err != nil || found {
			t.Fatalf("Event(%s, %s): found=%v %v, want not found", q.instance, q.id, found, err)
		}
	}
}
