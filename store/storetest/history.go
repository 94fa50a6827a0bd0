package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/xcomponent/xcomponent/store"
)

// History: the audit trail of an instance and of a correlation.

func testHistoryRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	comp := unique("comp")
	in := newInstance(comp, "Order", "Created", map[string]any{"amount": 12.75, "qty": 3}, base)
	in.ParentID = newID()
	in.ParentMachine = "Parent"
	c := create(in)
	c.Events[0].Payload = map[string]any{
		"initialContext": in.Data, "triggerEvent": "create", "parentInstanceId": in.ParentID, "parentMachineName": "Parent",
	}
	mustCommit(t, s, c)
	want := slices.Clone(c.Events)
	c2, _ := step(in, "Pay", "Paid", map[string]any{
		"amount": 12.75, "qty": 3, "big": int64(1) << 40, "neg": -7, "deep": map[string]any{"a": map[string]any{"b": []any{1.5, "x", nil, true}}},
		"unicode": "日本語 \"quoted\" <tag> & \\ back",
	}, base+1)
	ev := &c2.Events[0]
	ev.Payload = map[string]any{"method": "card", "lines": []any{map[string]any{"sku": "A", "n": 2}}}
	ev.SourceComponent = unique("src")
	ev.CorrelationID = c.Events[0].CorrelationID
	ev.CausationID = c.Events[0].ID
	ev.Actor = "token:ops"
	ev.Source = "cross_component"
	ev.Note = "onEntry hook notify: mail server down"
	ev.TraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	ev.Reason = "customer asked by phone, ticket #42"
	mustCommit(t, s, c2)
	want = append(want, c2.Events...)
	h, err := s.History(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkEvents(t, want, h)
	// Event with empty maps and no optional fields.
	c3, _ := step(*c2.Instances[0].Instance, "Noop", "Paid", nil, base+2)
	c3.Events[0].Payload = nil
	c3.Events[0].Actor, c3.Events[0].Source = "", ""
	mustCommit(t, s, c3)
	h, _ = s.History(ctx, in.ID)
	checkEvents(t, append(want, c3.Events...), h)
}

func testCorrelated(t *testing.T, s store.Store) {
	ctx := context.Background()
	comp := unique("comp")
	corr, otherCorr := newID(), newID()
	a := newInstance(comp, "A", "S0", nil, base)
	b := newInstance(comp, "B", "S0", nil, base)
	ca := create(a)
	ca.Events[0].CorrelationID = corr
	mustCommit(t, s, ca)
	cb := create(b)
	cb.Events[0].CorrelationID = otherCorr
	cb.Events[0].PersistedAt = base + 1
	mustCommit(t, s, cb)
	var want []store.Event
	want = append(want, ca.Events...)
	// Interleaved transitions of a and b, one of b's out of the correlation.
	c1, a1 := step(a, "E1", "S1", nil, base+5)
	c1.Events[0].CorrelationID, c1.Events[0].CausationID = corr, ca.Events[0].ID
	c2, b1 := step(b, "E2", "S1", nil, base+3)
	c2.Events[0].CorrelationID, c2.Events[0].CausationID = corr, ca.Events[0].ID
	c3, _ := step(a1, "E3", "S2", nil, base+7)
	c3.Events[0].CorrelationID, c3.Events[0].CausationID = corr, c1.Events[0].ID
	c4, _ := step(b1, "E4", "S2", nil, base+9)
	c4.Events[0].CorrelationID = otherCorr
	for _, c := range []*store.Commit{c1, c2, c3, c4} {
		mustCommit(t, s, c)
	}
	want = append(want, c2.Events[0], c1.Events[0], c3.Events[0])
	// Events of the same millisecond come in id order.
	c5, _ := step(*c3.Instances[0].Instance, "E5", "S3", nil, base+20)
	c6, _ := step(*c4.Instances[0].Instance, "E6", "S3", nil, base+20)
	c5.Events[0].CorrelationID, c6.Events[0].CorrelationID = corr, corr
	mustCommit(t, s, c5)
	mustCommit(t, s, c6)
	if c5.Events[0].ID < c6.Events[0].ID {
		want = append(want, c5.Events[0], c6.Events[0])
	} else {
		want = append(want, c6.Events[0], c5.Events[0])
	}
	got, err := s.Correlated(ctx, corr)
	if err != nil {
		t.Fatal(err)
	}
	checkEvents(t, want, got)
	if got, err := s.Correlated(ctx, newID()); err != nil || len(got) != 0 {
		t.Errorf("Correlated(unknown) = %v, %v", got, err)
	}
}

// testHistoryPage pages an instance's history both ways: every event once, in order, pages of
// the size asked, the last one with no cursor; a bad cursor is refused; an unknown instance
// has an empty page.
func testHistoryPage(t *testing.T, s store.Store) {
	p, ok := s.(store.HistoryPager)
	if !ok {
		t.Skip("store does not page histories")
	}
	ctx := context.Background()
	in := newInstance(unique("comp"), "Order", "S0", nil, base)
	c := create(in)
	mustCommit(t, s, c)
	all := slices.Clone(c.Events)
	for i := range 11 {
		var ci *store.Commit
		ci, in = step(in, "Loop", "S0", map[string]any{"i": i}, base+int64(i)+1)
		mustCommit(t, s, ci)
		all = append(all, ci.Events...)
	}
	read := func(newest bool, limit int) ([]store.Event, int) {
		t.Helper()
		var got []store.Event
		pages, cur := 0, ""
		for {
			page, next, err := p.HistoryPage(ctx, in.ID, store.EventPage{Limit: limit, Cursor: cur, Newest: newest})
			if err != nil {
				t.Fatalf("HistoryPage(newest=%v, limit=%d, page %d): %v", newest, limit, pages, err)
			}
			pages++
			if next != "" && len(page) != limit {
				t.Fatalf("page %d has %d events and a next cursor, want %d", pages, len(page), limit)
			}
			got = append(got, page...)
			if next == "" {
				return got, pages
			}
			if pages > 100 {
				t.Fatal("paging does not end")
			}
			cur = next
		}
	}
	for _, limit := range []int{1, 5, 12, 100} {
		got, pages := read(false, limit)
		checkEvents(t, all, got)
		if want := (len(all) + limit - 1) / limit; pages != want && !(len(all)%limit == 0 && pages == want+1) {
			t.Errorf("limit %d: %d pages, want %d", limit, pages, want)
		}
		got, _ = read(true, limit)
		slices.Reverse(got)
		checkEvents(t, all, got)
	}
	if _, _, err := p.HistoryPage(ctx, in.ID, store.EventPage{Cursor: "not a cursor"}); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("bad cursor: %v, want ErrBadCursor", err)
	}
	if page, next, err := p.HistoryPage(ctx, newID(), store.EventPage{}); err != nil || len(page) != 0 || next != "" {
		t.Errorf("unknown instance: %v %q %v, want an empty page", page, next, err)
	}
	if got := (store.EventPage{Limit: 1 << 20}).EventLimit(); got != store.MaxEventLimit {
		t.Errorf("limit capped at %d, want %d", got, store.MaxEventLimit)
	}
}
