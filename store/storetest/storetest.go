// Package storetest is the behavioural test suite every store.Store implementation must pass.
//
// Conventions the suite checks in a number-agnostic way: data and payload maps are compared
// after a JSON round trip, because the SQL stores keep them as JSON and give back float64
// numbers (and an empty map for a nil one) while the memory store gives back the values it was
// given. Timer lists compare nil and empty as equal.
//
// Ids are UUID strings (the PostgreSQL store keeps them in UUID columns).
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/xcomponent/xcomponent/store"
)

// Run runs the suite. open must return a new, empty store for each call and arrange for it to
// be closed at the end of the test (Close must be idempotent: the suite also closes stores).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"CreateAndRead", testCreateAndRead},
		{"Transitions", testTransitions},
		{"ConflictAppliesNothing", testConflictAppliesNothing},
		{"CreateExisting", testCreateExisting},
		{"UpdateUnknown", testUpdateUnknown},
		{"MultiInstanceCommitAtomic", testMultiInstanceAtomic},
		{"DuplicateInbox", testDuplicateInbox},
		{"Outbox", testOutbox},
		{"LoadLive", testLoadLive},
		{"Search", testSearch},
		{"SearchPagination", testSearchPagination},
		{"SearchDefaultLimit", testSearchDefaultLimit},
		{"HistoryRoundTrip", testHistoryRoundTrip},
		{"Correlated", testCorrelated},
		{"Timers", testTimers},
		{"TimerClaims", testTimerClaims},
		{"TimerClaimsConcurrent", testTimerClaimsConcurrent},
		{"EntryPointUnique", testEntryPointUnique},
		{"ConcurrentDifferentInstances", testConcurrentDifferent},
		{"ConcurrentSameInstance", testConcurrentSame},
		{"ConcurrentConflictIsolation", testConflictIsolation},
		{"PingClose", testPingClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			tc.fn(t, s)
		})
	}
}

const base int64 = 1_700_000_000_000 // a fixed ms epoch

func newID() string { return uuid.NewString() }

// newInstance returns a fresh active instance record at version 0.
func newInstance(component, machine, state string, data map[string]any, at int64) store.Instance {
	return store.Instance{
		ID: newID(), Component: component, Machine: machine, State: state, Data: data,
		Status: store.StatusActive, CreatedAt: at, UpdatedAt: at,
	}
}

// create is the commit recording the creation of in.
func create(in store.Instance) *store.Commit {
	return &store.Commit{
		Events:    []store.Event{createdEvent(in)},
		Instances: []store.InstanceWrite{{Instance: recPtr(in), ExpectVersion: -1}},
	}
}

func createdEvent(in store.Instance) store.Event {
	return store.Event{
		ID: newID(), InstanceID: in.ID, Component: in.Component, Machine: in.Machine,
		Type: store.EventCreated, Payload: map[string]any{"initialContext": in.Data, "triggerEvent": "api"},
		ToState: in.State, Data: in.Data, Actor: "test", Source: "api", Seq: 0, PersistedAt: in.CreatedAt,
		CorrelationID: newID(),
	}
}

// step is the commit of one transition of in to state `to` with new data at time at, and the
// instance after it.
func step(in store.Instance, event, to string, data map[string]any, at int64) (*store.Commit, store.Instance) {
	next := in
	next.State = to
	next.Data = data
	next.UpdatedAt = at
	next.Version = in.Version + 1
	ev := store.Event{
		ID: newID(), InstanceID: in.ID, Component: in.Component, Machine: in.Machine, Type: event,
		Payload: map[string]any{}, FromState: in.State, ToState: to, Data: data, Actor: "test",
		Source: "api", Seq: next.Version, PersistedAt: at,
	}
	return &store.Commit{
		Events:    []store.Event{ev},
		Instances: []store.InstanceWrite{{Instance: recPtr(next), ExpectVersion: in.Version}},
	}, next
}

func mustCommit(t *testing.T, s store.Store, c *store.Commit) {
	t.Helper()
	if err := s.Commit(context.Background(), c); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func mustCreate(t *testing.T, s store.Store, in store.Instance) {
	t.Helper()
	mustCommit(t, s, create(in))
}

// norm maps v through a JSON round trip, so that numbers are float64 whatever their Go type,
// and nil maps and slices become empty ones.
func norm(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("norm: %v", err))
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("norm: %v", err))
	}
	switch out.(type) {
	case nil:
		if reflect.TypeOf(v) != nil && reflect.TypeOf(v).Kind() == reflect.Map {
			return map[string]any{}
		}
		if reflect.TypeOf(v) != nil && reflect.TypeOf(v).Kind() == reflect.Slice {
			return []any{}
		}
	}
	return out
}

// equalJSON reports whether a and b are equal after norm.
func equalJSON(a, b any) bool { return reflect.DeepEqual(norm(a), norm(b)) }

func checkInstance(t *testing.T, want, got store.Instance) {
	t.Helper()
	w, g := want, got
	w.Data, g.Data = nil, nil
	w.Timers, g.Timers = nil, nil
	if !reflect.DeepEqual(w, g) {
		t.Errorf("instance:\n got  %+v\n want %+v", g, w)
	}
	if !equalJSON(want.Data, got.Data) {
		t.Errorf("instance %s data: got %v, want %v", want.ID, norm(got.Data), norm(want.Data))
	}
	if len(want.Timers) != len(got.Timers) || (len(want.Timers) > 0 && !reflect.DeepEqual(want.Timers, got.Timers)) {
		t.Errorf("instance %s timers: got %+v, want %+v", want.ID, got.Timers, want.Timers)
	}
}

func checkEvents(t *testing.T, want, got []store.Event) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("events: got %d, want %d:\n got  %+v\n want %+v", len(got), len(want), got, want)
	}
	for i := range want {
		w, g := want[i], got[i]
		w.Payload, g.Payload, w.Data, g.Data = nil, nil, nil, nil
		if !reflect.DeepEqual(w, g) {
			t.Errorf("event %d:\n got  %+v\n want %+v", i, g, w)
		}
		if !equalJSON(want[i].Payload, got[i].Payload) {
			t.Errorf("event %d payload: got %v, want %v", i, norm(got[i].Payload), norm(want[i].Payload))
		}
		if !equalJSON(want[i].Data, got[i].Data) {
			t.Errorf("event %d data: got %v, want %v", i, norm(got[i].Data), norm(want[i].Data))
		}
	}
}

func ids(ins []store.Instance) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.ID
	}
	return out
}

func msgIDs(ms []store.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func unique(prefix string) string { return prefix + "-" + newID()[:8] }

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

// outboxOf returns the pending outbox of a component as ids.
func outboxOf(t *testing.T, s store.Store, component string) []string {
	t.Helper()
	ms, err := s.PendingOutbox(context.Background(), component, 0)
	if err != nil {
		t.Fatalf("PendingOutbox: %v", err)
	}
	return msgIDs(ms)
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

// searchAll pages through q with the given page size and returns every instance.
func searchAll(t *testing.T, s store.Store, q store.Query) []store.Instance {
	t.Helper()
	var out []store.Instance
	q.Cursor = ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("search: no end of pages")
		}
		page, next, err := s.Search(context.Background(), q)
		if err != nil {
			t.Fatalf("Search(%+v): %v", q, err)
		}
		if q.Limit > 0 && len(page) > q.Limit {
			t.Fatalf("page of %d for limit %d", len(page), q.Limit)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		if len(page) == 0 {
			t.Fatalf("empty page with a next cursor %q", next)
		}
		q.Cursor = next
	}
}

func testSearch(t *testing.T, s store.Store) {
	comp, other := unique("comp"), unique("comp")
	parentA, parentB := newID(), newID()
	names := []string{"Alice Martin", "bob", "Émile Zola", "ALICE cooper", "carol"}
	var all []store.Instance
	for i := range 30 {
		component := comp
		if i%5 == 4 {
			component = other
		}
		machine := []string{"Order", "Payment"}[i%2]
		state := []string{"Created", "Paid", "Done"}[i%3]
		in := newInstance(component, machine, state, map[string]any{
			"name": names[i%len(names)], "i": i, "tags": []any{"t" + fmt.Sprint(i)},
		}, base+int64(i))
		in.UpdatedAt = base + int64(i*7%30)*1000 // distinct, not in creation order
		switch i % 6 {
		case 0:
			in.ParentID, in.ParentMachine = parentA, "Parent"
		case 3:
			in.ParentID, in.ParentMachine = parentB, "Parent"
		}
		switch i % 4 {
		case 1:
			in.Status = store.StatusCompleted
		case 2:
			in.Status = store.StatusError
		}
		mustCreate(t, s, in)
		all = append(all, in)
	}
	expect := func(q store.Query) []string {
		var out []store.Instance
		for i := range all {
			if store.Matches(&all[i], q) {
				out = append(out, all[i])
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].UpdatedAt > out[j].UpdatedAt })
		return ids(out)
	}
	queries := []store.Query{
		{Component: comp},
		{Component: other},
		{Component: comp, Machine: "Order"},
		{Component: comp, State: "Paid"},
		{Component: comp, Status: store.StatusActive},
		{Component: comp, Status: store.StatusCompleted},
		{Component: comp, Status: store.StatusError},
		{Component: comp, Text: "alice"},
		{Component: comp, Text: "MARTIN"},
		{Component: comp, Text: "émile"},
		{Component: comp, Text: "ÉMILE"},
		{Component: comp, Text: "t17"},
		{Component: comp, Text: "no such text"},
		{Component: comp, Text: strings.ToUpper(all[3].ID[9:18])},
		{Component: comp, From: base + 10_000},
		{Component: comp, To: base + 10_000},
		{Component: comp, From: base + 5_000, To: base + 12_000},
		{Component: comp, Machine: "Payment", Status: store.StatusActive, From: base + 3_000},
		{Machine: "Order", Component: other, State: "Done"},
		{Component: comp, ParentID: parentA},
		{ParentID: parentB},
		{ParentID: parentB, Status: store.StatusActive},
		{ParentID: newID()},
	}
	for _, q := range queries {
		want := expect(q)
		got := ids(searchAll(t, s, q))
		if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("Search(%+v):\n got  %v\n want %v", q, got, want)
		}
		q.Limit = 3
		got = ids(searchAll(t, s, q))
		if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("Search(%+v) by pages of 3:\n got  %v\n want %v", q, got, want)
		}
	}
	// Records come back whole.
	page, _, err := s.Search(context.Background(), store.Query{Component: comp, Text: all[0].ID})
	if err != nil || len(page) != 1 {
		t.Fatalf("Search by id: %v, %v", page, err)
	}
	checkInstance(t, all[0], page[0])
	if _, _, err := s.Search(context.Background(), store.Query{Cursor: "garbage!"}); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("Search with a bad cursor: %v, want ErrBadCursor", err)
	}
}

func testSearchPagination(t *testing.T, s store.Store) {
	comp := unique("comp")
	// Many instances sharing update times: pages must still neither repeat nor skip one.
	var all []string
	c := &store.Commit{}
	for i := range 53 {
		in := newInstance(comp, "M", "S", nil, base)
		in.UpdatedAt = base + int64(i/10)
		c.Instances = append(c.Instances, store.InstanceWrite{Instance: recPtr(in), ExpectVersion: -1})
		all = append(all, in.ID)
	}
	mustCommit(t, s, c)
	for _, limit := range []int{1, 4, 10, 52, 53, 54} {
		got := searchAll(t, s, store.Query{Component: comp, Limit: limit})
		if len(got) != len(all) {
			t.Errorf("limit %d: %d results, want %d", limit, len(got), len(all))
		}
		seen := map[string]bool{}
		for i, in := range got {
			if seen[in.ID] {
				t.Errorf("limit %d: %s twice", limit, in.ID)
			}
			seen[in.ID] = true
			if i > 0 && in.UpdatedAt > got[i-1].UpdatedAt {
				t.Errorf("limit %d: not newest first at %d", limit, i)
			}
		}
		for _, id := range all {
			if !seen[id] {
				t.Errorf("limit %d: %s missing", limit, id)
			}
		}
	}
}

func testSearchDefaultLimit(t *testing.T, s store.Store) {
	comp := unique("comp")
	c := &store.Commit{}
	for i := range 120 {
		in := newInstance(comp, "M", "S", nil, base+int64(i))
		c.Instances = append(c.Instances, store.InstanceWrite{Instance: recPtr(in), ExpectVersion: -1})
	}
	mustCommit(t, s, c)
	page, next, err := s.Search(context.Background(), store.Query{Component: comp})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 100 || next == "" {
		t.Fatalf("default page: %d results, next %q; want 100 and a cursor", len(page), next)
	}
	page, next, err = s.Search(context.Background(), store.Query{Component: comp, Cursor: next})
	if err != nil || len(page) != 20 || next != "" {
		t.Fatalf("second page: %d results, next %q, %v; want 20 and no cursor", len(page), next, err)
	}
}

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

func testTimers(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := newInstance(unique("comp"), "M", "Waiting", nil, base)
	in.Timers = []store.Timer{
		{Event: "TIMEOUT", TargetState: "Expired", DueAt: base + 30_000, TotalMs: 30_000, Kind: store.TimerTimeout, Transition: 0, ArmedAt: base},
		{Event: "TICK", TargetState: "Waiting", DueAt: base + 1_000, TotalMs: 1_000, Kind: store.TimerAuto, Transition: 4, ArmedAt: base},
	}
	mustCreate(t, s, in)
	got, err := s.Instance(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkInstance(t, in, got)

	c, next := step(in, "TICK", "Waiting", nil, base+1_000)
	next.Timers = []store.Timer{in.Timers[0], {Event: "TICK", TargetState: "Waiting", DueAt: base + 2_000, TotalMs: 1_000, Kind: store.TimerAuto, Transition: 4, ArmedAt: base + 1_000}}
	c.Instances[0].Instance = recPtr(next)
	mustCommit(t, s, c)
	got, _ = s.Instance(ctx, in.ID)
	checkInstance(t, next, got)

	c, last := step(next, "GO", "Done", nil, base+2_000)
	last.Timers = nil
	c.Instances[0].Instance = recPtr(last)
	mustCommit(t, s, c)
	got, _ = s.Instance(ctx, in.ID)
	checkInstance(t, last, got)
	live, _ := s.LoadLive(ctx, in.Component)
	if len(live) != 1 || len(live[0].Timers) != 0 {
		t.Errorf("LoadLive timers: %+v", live)
	}
}

func testConcurrentDifferent(t *testing.T, s store.Store) {
	ctx := context.Background()
	comp := unique("comp")
	const writers, steps = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*steps)
	ins := make([]store.Instance, writers)
	for w := range writers {
		ins[w] = newInstance(comp, "M", "S", map[string]any{"n": 0}, base)
		wg.Go(func() {
			in := ins[w]
			if err := s.Commit(ctx, create(in)); err != nil {
				errs <- err
				return
			}
			for i := range steps {
				c, next := step(in, "Inc", "S", map[string]any{"n": i + 1}, base+int64(i))
				c.Outbox = []store.Message{{ID: newID(), Component: comp, Kind: "k", Body: []byte("m"), CreatedAt: base}}
				c.InboxID = newID()
				if err := s.Commit(ctx, c); err != nil {
					errs <- fmt.Errorf("writer %d step %d: %w", w, i, err)
					return
				}
				in = next
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, in := range ins {
		got, err := s.Instance(ctx, in.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != steps || !equalJSON(got.Data, map[string]any{"n": steps}) {
			t.Errorf("%s: version %d data %v", in.ID, got.Version, got.Data)
		}
		h, _ := s.History(ctx, in.ID)
		if len(h) != steps+1 {
			t.Errorf("%s: %d events, want %d", in.ID, len(h), steps+1)
		}
		for i, e := range h {
			if e.Seq != int64(i) {
				t.Errorf("%s: event %d has seq %d", in.ID, i, e.Seq)
				break
			}
		}
	}
	if ob := outboxOf(t, s, comp); len(ob) != writers*steps {
		t.Errorf("outbox: %d messages, want %d", len(ob), writers*steps)
	}
}

func testConcurrentSame(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := newInstance(unique("comp"), "Counter", "S", map[string]any{"count": 0}, base)
	mustCreate(t, s, in)
	const writers, each = 8, 10
	var (
		mu      sync.Mutex
		winners = map[int64]int{} // expected version -> writer
		wg      sync.WaitGroup
	)
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for done := 0; done < each; {
				cur, err := s.Instance(ctx, in.ID)
				if err != nil {
					errs <- err
					return
				}
				n := int(norm(cur.Data).(map[string]any)["count"].(float64))
				c, _ := step(cur, "Inc", "S", map[string]any{"count": n + 1, "by": w}, base+cur.Version+1)
				err = s.Commit(ctx, c)
				switch {
				case err == nil:
					mu.Lock()
					if prev, dup := winners[cur.Version]; dup {
						errs <- fmt.Errorf("version %d won by writers %d and %d", cur.Version, prev, w)
					}
					winners[cur.Version] = w
					mu.Unlock()
					done++
				case errors.Is(err, store.ErrConflict):
				default:
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := s.Instance(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != writers*each || !equalJSON(got.Data["count"], writers*each) {
		t.Errorf("final version %d count %v, want %d (a lost update?)", got.Version, got.Data["count"], writers*each)
	}
	h, _ := s.History(ctx, in.ID)
	if len(h) != writers*each+1 {
		t.Errorf("%d events, want %d", len(h), writers*each+1)
	}
	for i, e := range h {
		if e.Seq != int64(i) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		if i > 0 && !equalJSON(e.Data["count"], i) {
			t.Fatalf("event %d has count %v", i, e.Data["count"])
		}
	}
}

// testConflictIsolation fires valid and stale commits at once: with group commit they share
// transactions, and a stale one must fail alone.
func testConflictIsolation(t *testing.T, s store.Store) {
	ctx := context.Background()
	comp := unique("comp")
	const n = 64
	ins := make([]store.Instance, n)
	c := &store.Commit{}
	for i := range ins {
		ins[i] = newInstance(comp, "M", "S", nil, base)
		c.Instances = append(c.Instances, store.InstanceWrite{Instance: recPtr(ins[i]), ExpectVersion: -1})
	}
	mustCommit(t, s, c)
	start := make(chan struct{})
	results := make([]error, n)
	commits := make([]*store.Commit, n)
	for i := range ins {
		commits[i], _ = step(ins[i], "Go", "T", map[string]any{"i": i}, base+1)
		commits[i].Outbox = []store.Message{{ID: newID(), Component: comp, Kind: "k", Body: []byte("x"), CreatedAt: base}}
		switch i % 4 {
		case 1:
			commits[i].Instances[0].ExpectVersion = 3 // stale
		case 2:
			commits[i].InboxID = newID()
		case 3:
			commits[i] = create(ins[i]) // exists already
		}
	}
	var wg sync.WaitGroup
	for i := range ins {
		wg.Go(func() {
			<-start
			results[i] = s.Commit(ctx, commits[i])
		})
	}
	close(start)
	wg.Wait()
	landed := 0
	for i, err := range results {
		got, gerr := s.Instance(ctx, ins[i].ID)
		if gerr != nil {
			t.Fatal(gerr)
		}
		switch i % 4 {
		case 0, 2:
			if err != nil {
				t.Errorf("commit %d: %v", i, err)
			}
			if got.Version != 1 {
				t.Errorf("commit %d: version %d, want 1", i, got.Version)
			}
			landed++
		default:
			if !errors.Is(err, store.ErrConflict) {
				t.Errorf("commit %d: %v, want ErrConflict", i, err)
			}
			if got.Version != 0 {
				t.Errorf("commit %d: version %d, want 0", i, got.Version)
			}
		}
	}
	if ob := outboxOf(t, s, comp); len(ob) != landed {
		t.Errorf("outbox: %d messages, want %d", len(ob), landed)
	}
}

func testPingClose(t *testing.T, s store.Store) {
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// recPtr returns a pointer to a copy of in: records given to Commit must not change afterwards.
func recPtr(in store.Instance) *store.Instance { return &in }
