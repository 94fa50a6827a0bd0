package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/store"
)

// Outbox and inbox: messages written with a commit, consumed once; applied ids refused twice.

// outboxOf returns the pending outbox of a component as ids.
func outboxOf(t *testing.T, s store.Store, component string) []string {
	t.Helper()
	ms, err := s.PendingOutbox(context.Background(), component, 0)
	if err != nil {
		t.Fatalf("PendingOutbox: %v", err)
	}
	return msgIDs(ms)
}

func testOutbox(t *testing.T, s store.Store) {
	ctx := context.Background()
	c1, c2 := unique("comp"), unique("comp")
	var all, of1 []store.Message
	for i := range 6 {
		comp := c1
		if i%3 == 2 {
			comp = c2
		}
		m := store.Message{ID: newID(), Component: comp, Kind: fmt.Sprintf("kind%d", i), Body: []byte{0, 1, 0xff, byte(i)}, CreatedAt: base + int64(i)}
		all = append(all, m)
		if comp == c1 {
			of1 = append(of1, m)
		}
	}
	in := newInstance(c1, "M", "S", nil, base)
	c := create(in)
	c.Outbox = all[:3]
	mustCommit(t, s, c)
	mustCommit(t, s, &store.Commit{Outbox: all[3:]})

	got, err := s.PendingOutbox(ctx, c1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, of1) {
		t.Errorf("PendingOutbox(%s):\n got  %+v\n want %+v", c1, got, of1)
	}
	got, _ = s.PendingOutbox(ctx, c1, 2)
	if !reflect.DeepEqual(msgIDs(got), msgIDs(of1[:2])) {
		t.Errorf("PendingOutbox limit 2: %v, want %v", msgIDs(got), msgIDs(of1[:2]))
	}
	got, _ = s.PendingOutbox(ctx, c2, 0)
	if !reflect.DeepEqual(msgIDs(got), []string{all[2].ID, all[5].ID}) {
		t.Errorf("PendingOutbox(%s): %v", c2, msgIDs(got))
	}

	// Consuming a message no longer in the outbox (another delivery won) fails the whole
	// commit with ErrDuplicate: nothing is applied twice.
	c3, _ := step(in, "Go", "T", nil, base+10)
	c3.Consumed = []string{of1[0].ID, of1[2].ID, newID()}
	if err := s.Commit(ctx, c3); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("consume of a delivered message: %v, want ErrDuplicate", err)
	}
	if got, _ := s.PendingOutbox(ctx, c1, 0); !reflect.DeepEqual(msgIDs(got), msgIDs(of1)) {
		t.Errorf("after a refused consume: %v, want %v", msgIDs(got), msgIDs(of1))
	}
	if h, _ := s.History(ctx, in.ID); len(h) != 1 {
		t.Errorf("a refused consume applied its transition: %d events", len(h))
	}
	// Consuming deletes, with the commit that delivered them.
	c3.Consumed = []string{of1[0].ID, of1[2].ID}
	mustCommit(t, s, c3)
	got, _ = s.PendingOutbox(ctx, c1, 0)
	if want := []string{of1[1].ID, of1[3].ID}; !reflect.DeepEqual(msgIDs(got), want) {
		t.Errorf("after consume: %v, want %v", msgIDs(got), want)
	}
	// A failed commit consumes nothing.
	c4, _ := step(in, "Go", "T", nil, base+11) // stale: expects version 0
	c4.Consumed = []string{of1[1].ID}
	if err := s.Commit(ctx, c4); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale commit: %v", err)
	}
	got, _ = s.PendingOutbox(ctx, c1, 0)
	if want := []string{of1[1].ID, of1[3].ID}; !reflect.DeepEqual(msgIDs(got), want) {
		t.Errorf("after failed consume: %v, want %v", msgIDs(got), want)
	}
	// A message written and consumed later in the same process round.
	mustCommit(t, s, &store.Commit{Consumed: []string{of1[1].ID, of1[3].ID, all[2].ID, all[5].ID}})
	if got := outboxOf(t, s, ""); slices.ContainsFunc(got, func(id string) bool {
		return slices.Contains(msgIDs(all), id)
	}) {
		t.Errorf("outbox not empty: %v", got)
	}
}

func testDuplicateInbox(t *testing.T, s store.Store) {
	ctx := context.Background()
	comp := unique("comp")
	in := newInstance(comp, "Order", "Created", nil, base)
	c := create(in)
	c.InboxID = "cmd-" + newID() // inbox ids are opaque strings
	mustCommit(t, s, c)

	c1, _ := step(in, "Go", "A", nil, base+1)
	c1.InboxID = c.InboxID
	c1.Outbox = []store.Message{{ID: newID(), Component: comp, Kind: "k", Body: []byte("b"), CreatedAt: base}}
	if err := s.Commit(ctx, c1); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("redelivery: %v, want ErrDuplicate", err)
	}
	got, _ := s.Instance(ctx, in.ID)
	checkInstance(t, in, got)
	if h, _ := s.History(ctx, in.ID); len(h) != 1 {
		t.Errorf("history has %d events, want 1", len(h))
	}
	if ob := outboxOf(t, s, comp); len(ob) != 0 {
		t.Errorf("outbox after a duplicate: %v", ob)
	}
	// A fresh id goes through.
	c1.InboxID = newID()
	mustCommit(t, s, c1)
}

// testPruneInbox: a store that prunes its inbox (store.InboxPruner) keeps the ids applied
// within the retention and forgets the older ones, after which the same id applies again.
func testPruneInbox(t *testing.T, s store.Store) {
	p, ok := s.(store.InboxPruner)
	if !ok {
		t.Skipf("%T keeps no inbox to prune (no store.InboxPruner)", s)
	}
	ctx := context.Background()
	comp := unique("comp")
	var ins []store.Instance
	var inbox []string
	for range 3 {
		in := newInstance(comp, "Order", "Created", nil, base)
		c := create(in)
		c.InboxID = "cmd-" + newID()
		mustCommit(t, s, c)
		ins, inbox = append(ins, in), append(inbox, c.InboxID)
	}
	redeliver := func(i int) error {
		c, _ := step(ins[i], "Go", "A", nil, base+1)
		c.InboxID = inbox[i]
		return s.Commit(ctx, c)
	}
	if n, err := p.PruneInbox(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("PruneInbox(1h) = %d, %v; want nothing pruned", n, err)
	}
	if err := redeliver(0); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("redelivery within the retention: %v, want ErrDuplicate", err)
	}
	// A negative age puts the cut-off in the future: every id is older.
	if n, err := p.PruneInbox(ctx, -time.Minute); err != nil || n != 3 {
		t.Fatalf("PruneInbox(-1m) = %d, %v; want 3", n, err)
	}
	if err := redeliver(1); err != nil {
		t.Fatalf("redelivery of a pruned id: %v, want it applied", err)
	}
}
