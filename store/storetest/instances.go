package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/xcomponent/xcomponent/store"
)

// Instances: creation, transitions, optimistic concurrency, atomic commits, restore.

func testCreateAndRead(t *testing.T, s store.Store) {
	ctx := context.Background()
	data := map[string]any{
		"n": 1, "f": 2.5, "s": "x", "b": true, "nil": nil,
		"nested": map[string]any{"list": []any{1, "two", false, map[string]any{"k": int64(3)}}, "m": map[string]any{"deep": "é"}},
	}
	in := newInstance(unique("comp"), "Order", "Created", data, base)
	in.IsEntryPoint = true
	in.ParentID = newID()
	in.ParentMachine = "Parent"
	in.Timers = []store.Timer{{Event: "TIMEOUT", TargetState: "Expired", DueAt: base + 5000, TotalMs: 5000, Kind: store.TimerTimeout, Transition: 3, ArmedAt: base}}
	c := create(in)
	mustCommit(t, s, c)

	got, err := s.Instance(ctx, in.ID)
	if err != nil {
		t.Fatalf("Instance: %v", err)
	}
	checkInstance(t, in, got)

	h, err := s.History(ctx, in.ID)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	checkEvents(t, c.Events, h)

	if _, err := s.Instance(ctx, newID()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Instance(unknown): %v, want ErrNotFound", err)
	}
	if _, err := s.Instance(ctx, "not-a-uuid"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Instance(not-a-uuid): %v, want ErrNotFound", err)
	}
	if h, err := s.History(ctx, newID()); err != nil || len(h) != 0 {
		t.Errorf("History(unknown) = %v, %v; want empty", h, err)
	}
}

func testTransitions(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := newInstance(unique("comp"), "Order", "Created", map[string]any{"n": 0}, base)
	want := []store.Event{}
	c := create(in)
	mustCommit(t, s, c)
	want = append(want, c.Events...)
	states := []string{"Validated", "Paid", "Shipped", "Shipped"}
	for i, st := range states {
		var next store.Instance
		c, next = step(in, "E"+st, st, map[string]any{"n": i + 1, "hist": states[:i+1]}, base+int64(i+1)*10)
		c.Events[0].Payload = map[string]any{"i": i, "nested": map[string]any{"x": []any{i}}}
		c.Events[0].CausationID = want[len(want)-1].ID
		c.Events[0].CorrelationID = want[0].CorrelationID
		mustCommit(t, s, c)
		want = append(want, c.Events...)
		in = next
	}
	got, err := s.Instance(ctx, in.ID)
	if err != nil {
		t.Fatalf("Instance: %v", err)
	}
	if got.Version != int64(len(states)) {
		t.Errorf("version %d, want %d", got.Version, len(states))
	}
	checkInstance(t, in, got)
	h, err := s.History(ctx, in.ID)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	checkEvents(t, want, h)
}

func testConflictAppliesNothing(t *testing.T, s store.Store) {
	ctx := context.Background()
	comp := unique("comp")
	in := newInstance(comp, "Order", "Created", map[string]any{"n": 0}, base)
	mustCreate(t, s, in)
	c1, v1 := step(in, "Go", "A", map[string]any{"n": 1}, base+1)
	mustCommit(t, s, c1)

	// A stale writer: expects version 0 while the store holds 1.
	stale, _ := step(in, "Go", "B", map[string]any{"n": 99}, base+2)
	stale.Outbox = []store.Message{{ID: newID(), Component: comp, Kind: "event", Body: []byte("x"), CreatedAt: base + 2}}
	stale.InboxID = newID()
	err := s.Commit(ctx, stale)
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale commit: %v, want ErrConflict", err)
	}
	got, err := s.Instance(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkInstance(t, v1, got)
	h, err := s.History(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 {
		t.Errorf("history has %d events after a conflict, want 2", len(h))
	}
	if ob := outboxOf(t, s, comp); len(ob) != 0 {
		t.Errorf("outbox after a conflict: %v", ob)
	}
	// The inbox id of the failed commit was not recorded: it can be applied now.
	c2, v2 := step(v1, "Go", "B", map[string]any{"n": 2}, base+3)
	c2.InboxID = stale.InboxID
	if err := s.Commit(ctx, c2); err != nil {
		t.Fatalf("commit reusing the inbox id of a failed commit: %v", err)
	}
	got, _ = s.Instance(ctx, in.ID)
	checkInstance(t, v2, got)

	// A writer expecting a version ahead of the store conflicts too.
	ahead, _ := step(v2, "Go", "C", nil, base+4)
	ahead.Instances[0].ExpectVersion = 7
	if err := s.Commit(ctx, ahead); !errors.Is(err, store.ErrConflict) {
		t.Errorf("commit expecting a future version: %v, want ErrConflict", err)
	}
}

func testCreateExisting(t *testing.T, s store.Store) {
	ctx := context.Background()
	comp := unique("comp")
	in := newInstance(comp, "Order", "Created", map[string]any{"n": 0}, base)
	mustCreate(t, s, in)
	again := in
	again.State = "Other"
	c := create(again)
	c.Outbox = []store.Message{{ID: newID(), Component: comp, Kind: "k", Body: []byte("b"), CreatedAt: base}}
	c.InboxID = newID()
	if err := s.Commit(ctx, c); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("creating an existing id: %v, want ErrConflict", err)
	}
	got, _ := s.Instance(ctx, in.ID)
	checkInstance(t, in, got)
	if h, _ := s.History(ctx, in.ID); len(h) != 1 {
		t.Errorf("history has %d events, want 1", len(h))
	}
	if ob := outboxOf(t, s, comp); len(ob) != 0 {
		t.Errorf("outbox after a conflict: %v", ob)
	}
}

func testUpdateUnknown(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := newInstance(unique("comp"), "Order", "Created", nil, base)
	c, _ := step(in, "Go", "A", nil, base+1)
	if err := s.Commit(ctx, c); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("updating an unknown instance: %v, want ErrNotFound", err)
	}
	if h, _ := s.History(ctx, in.ID); len(h) != 0 {
		t.Errorf("history of a failed commit: %v", h)
	}
	if _, err := s.Instance(ctx, in.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Instance after a failed commit: %v, want ErrNotFound", err)
	}
}

func testMultiInstanceAtomic(t *testing.T, s store.Store) {
	ctx := context.Background()
	comp := unique("comp")
	a := newInstance(comp, "A", "S0", map[string]any{"n": 0}, base)
	b := newInstance(comp, "B", "S0", map[string]any{"n": 0}, base)
	mustCreate(t, s, a)
	mustCreate(t, s, b)
	ca, _ := step(a, "Go", "S1", map[string]any{"n": 1}, base+1)
	cb, _ := step(b, "Go", "S1", map[string]any{"n": 1}, base+1)
	cb.Instances[0].ExpectVersion = 5 // wrong
	child := newInstance(comp, "Child", "C0", nil, base+1)
	cc := create(child)
	c := &store.Commit{
		Events:    slices.Concat(ca.Events, cb.Events, cc.Events),
		Instances: slices.Concat(ca.Instances, cc.Instances, cb.Instances),
		Outbox:    []store.Message{{ID: newID(), Component: comp, Kind: "k", Body: []byte("b"), CreatedAt: base}},
		InboxID:   newID(),
	}
	if err := s.Commit(ctx, c); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("commit with one stale instance: %v, want ErrConflict", err)
	}
	got, _ := s.Instance(ctx, a.ID)
	checkInstance(t, a, got)
	if _, err := s.Instance(ctx, child.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("child of a failed commit exists: %v", err)
	}
	for _, id := range []string{a.ID, b.ID} {
		if h, _ := s.History(ctx, id); len(h) != 1 {
			t.Errorf("history of %s has %d events, want 1", id, len(h))
		}
	}
	if ob := outboxOf(t, s, comp); len(ob) != 0 {
		t.Errorf("outbox after a failed commit: %v", ob)
	}
	// The same commit with the right version lands whole.
	cb.Instances[0].ExpectVersion = 0
	c.Instances = slices.Concat(ca.Instances, cc.Instances, cb.Instances)
	mustCommit(t, s, c)
	for _, id := range []string{a.ID, b.ID, child.ID} {
		if _, err := s.Instance(ctx, id); err != nil {
			t.Errorf("Instance(%s): %v", id, err)
		}
	}
	if ob := outboxOf(t, s, comp); len(ob) != 1 {
		t.Errorf("outbox: %v, want 1 message", ob)
	}
}

func testLoadLive(t *testing.T, s store.Store) {
	ctx := context.Background()
	comp := unique("comp")
	mk := func(at int64, status store.Status, entry bool, component string) store.Instance {
		machine := "M"
		if entry && status == store.StatusActive {
			machine = "N" // one entry point per component and machine
		}
		in := newInstance(component, machine, "S", map[string]any{"at": at}, base+at)
		in.Status = status
		in.IsEntryPoint = entry
		mustCreate(t, s, in)
		return in
	}
	active1 := mk(1, store.StatusActive, false, comp)
	mk(2, store.StatusCompleted, false, comp)
	mk(3, store.StatusError, false, comp)
	entryDone := mk(4, store.StatusCompleted, true, comp)
	entryActive := mk(5, store.StatusActive, true, comp)
	mk(6, store.StatusActive, false, unique("other"))
	// An instance that completes through a transition leaves the live set.
	gone := mk(7, store.StatusActive, false, comp)
	c, next := step(gone, "Finish", "Done", nil, base+8)
	next.Status = store.StatusCompleted
	c.Instances[0].Instance = recPtr(next)
	mustCommit(t, s, c)
	active2 := mk(9, store.StatusActive, false, comp)

	got, err := s.LoadLive(ctx, comp)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Instance{active1, entryDone, entryActive, active2}
	if !reflect.DeepEqual(ids(got), ids(want)) {
		t.Fatalf("LoadLive: %v, want %v (created order)", ids(got), ids(want))
	}
	for i := range want {
		checkInstance(t, want[i], got[i])
	}
	if got, err := s.LoadLive(ctx, unique("none")); err != nil || len(got) != 0 {
		t.Errorf("LoadLive(unknown) = %v, %v", got, err)
	}
}

// testEntryPointUnique: one entry-point instance per component and machine; a second one is
// refused with ErrEntryPointExists and applies nothing, also when many are created at once.
func testEntryPointUnique(t *testing.T, s store.Store) {
	ctx := context.Background()
	comp := unique("entry")
	first := newInstance(comp, "Main", "Idle", nil, base)
	first.IsEntryPoint = true
	mustCreate(t, s, first)
	second := newInstance(comp, "Main", "Idle", nil, base)
	second.IsEntryPoint = true
	err := s.Commit(ctx, create(second))
	if !errors.Is(err, store.ErrEntryPointExists) {
		t.Fatalf("second entry point: %v, want ErrEntryPointExists", err)
	}
	if _, err := s.Instance(ctx, second.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused entry point was stored: %v", err)
	}
	if h, _ := s.History(ctx, second.ID); len(h) != 0 {
		t.Errorf("the refused entry point has %d events", len(h))
	}
	// Ordinary instances of the machine, entry points of other machines and components: fine.
	mustCreate(t, s, newInstance(comp, "Main", "Idle", nil, base))
	other := newInstance(comp, "Other", "Idle", nil, base)
	other.IsEntryPoint = true
	mustCreate(t, s, other)
	// Writing the entry point again keeps it the entry point.
	c, next := step(first, "GO", "Busy", nil, base+1)
	mustCommit(t, s, c)
	if got, _ := s.Instance(ctx, first.ID); !got.IsEntryPoint || got.Version != next.Version {
		t.Errorf("entry point after a transition: %+v", got)
	}

	race := unique("entry-race")
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			in := newInstance(race, "Main", "Idle", map[string]any{"i": i}, base)
			in.IsEntryPoint = true
			errs[i] = s.Commit(ctx, create(in))
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrEntryPointExists):
			t.Errorf("creator %d: %v, want nil or ErrEntryPointExists", i, err)
		}
	}
	live, err := s.LoadLive(ctx, race)
	if err != nil {
		t.Fatal(err)
	}
	if won != 1 || len(live) != 1 {
		t.Errorf("%d of %d concurrent entry-point creations succeeded, %d stored: want 1", won, n, len(live))
	}
}

// testStreamLive: StreamLive hands over LoadLive's records (in any order), and so does
// StreamLiveReusing when it decodes into records handed back dirty: every field set anew,
// the context map cleared, the timers not reused.
func testStreamLive(t *testing.T, s store.Store) {
	ls, ok := s.(store.LiveStreamer)
	if !ok {
		t.Skip("not a store.LiveStreamer")
	}
	ctx := context.Background()
	comp := unique("comp")
	for i := range 30 {
		data := map[string]any{"i": float64(i), "name": fmt.Sprintf("n%d", i), "nested": map[string]any{"a": []any{1.0, "x"}}}
		if i%3 == 0 {
			data = map[string]any{"only": true} // another shape
		}
		if i%7 == 0 {
			data["esc"] = "a\"b" // outside the fast JSON reader
		}
		in := newInstance(comp, "M", "S", data, base+int64(i))
		if i%4 == 0 {
			in.Timers = []store.Timer{{Event: "T", TargetState: "S", DueAt: base + 100 + int64(i), TotalMs: 100, Kind: store.TimerTimeout, Transition: 2, ArmedAt: base}}
		}
		if i%5 == 0 {
			in.ParentID, in.ParentMachine = newID(), "P"
		}
		mustCreate(t, s, in)
	}
	want, err := s.LoadLive(ctx, comp)
	if err != nil {
		t.Fatal(err)
	}
	byID := func(recs []*store.Instance) []store.Instance {
		out := make([]store.Instance, len(recs))
		for i, r := range recs {
			out[i] = *r
		}
		sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
		return out
	}
	check := func(what string, got []store.Instance) {
		t.Helper()
		w := append([]store.Instance(nil), want...)
		sort.Slice(w, func(i, j int) bool { return w[i].ID < w[j].ID })
		if !reflect.DeepEqual(ids(got), ids(w)) {
			t.Fatalf("%s: %v, want %v", what, ids(got), ids(w))
		}
		for i := range w {
			checkInstance(t, w[i], got[i])
		}
	}
	var got []*store.Instance
	if err := ls.StreamLive(ctx, comp, func(r *store.Instance) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	check("StreamLive", byID(got))

	lr, ok := s.(store.LiveRecycler)
	if !ok {
		return
	}
	dirty := func() []*store.Instance {
		var out []*store.Instance
		for range 8 {
			out = append(out, &store.Instance{
				ID: "junk", Component: "junk", Machine: "junk", State: "junk", Status: store.StatusError,
				IsEntryPoint: true, ParentID: "junk", ParentMachine: "junk", CreatedAt: 1, UpdatedAt: 1, Version: 9,
				Data:   map[string]any{"junk": 1.0, "i": "junk", "only": "junk"},
				Timers: []store.Timer{{Event: "junk"}},
			})
		}
		return out
	}
	free := make(chan []*store.Instance, 4)
	given := map[*store.Instance]bool{}
	for range 3 {
		b := dirty()
		for _, r := range b {
			given[r] = true
		}
		free <- b
	}
	got = got[:0]
	reused := 0
	err = lr.StreamLiveReusing(ctx, comp, free, func(r *store.Instance) error {
		if given[r] {
			reused++
		}
		cp := *r // the reused records are handed back below, and decoded into again
		cp.Data = maps.Clone(r.Data)
		got = append(got, &cp)
		if len(got)%5 == 0 {
			select {
			case free <- []*store.Instance{r}:
			default:
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if reused < 24 {
		t.Errorf("%d records reused, want at least the 24 handed over", reused)
	}
	check("StreamLiveReusing", byID(got))
}
