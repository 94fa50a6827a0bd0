package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/xcomponent/xcomponent/store"
)

func openInternal(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "rows.db"), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// creation is a commit creating instance id with n events (seq 0 … n-1) and inbox id inbox.
func creation(id string, n int, inbox string) *store.Commit {
	c := &store.Commit{
		Instances: []store.InstanceWrite{{Instance: &store.Instance{ID: id, Machine: "M", State: "S", Status: store.StatusActive}, ExpectVersion: -1}},
		InboxID:   inbox,
	}
	for i := range n {
		c.Events = append(c.Events, store.Event{ID: fmt.Sprintf("%s-e%d", id, i), InstanceID: id, Machine: "M",
			Type: "E", ToState: "S", Seq: int64(i), PersistedAt: 1000 + int64(i), Data: map[string]any{"i": i}})
	}
	return c
}

func checkHistory(t *testing.T, s *Store, id string, n int) {
	t.Helper()
	h, err := s.History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != n {
		t.Fatalf("history of %s: %d events, want %d", id, len(h), n)
	}
	for i, e := range h {
		if want := fmt.Sprintf("%s-e%d", id, i); e.ID != want || e.Seq != int64(i) || e.Data["i"] != float64(i) {
			t.Fatalf("history of %s: event %d is %s seq %d data %v, want %s", id, i, e.ID, e.Seq, e.Data, want)
		}
	}
}

// TestMultiRowChunks: one commit with more events than one statement can bind (2,100 rows of
// 20 parameters: 42,000 > SQLite's 32,766 variables) is inserted by the fast path (checked
// directly: Commit would hide its failure behind the slow path) by chunks, in order.
func TestMultiRowChunks(t *testing.T) {
	s := openInternal(t)
	const n = 2100
	ctx := context.Background()
	if err := s.fast(ctx, []*store.Commit{creation("big", n, "inbox-big"), creation("small", 3, "inbox-small"), creation("none", 2, "")}); err != nil {
		t.Fatal(err)
	}
	checkHistory(t, s, "small", 3)
	checkHistory(t, s, "none", 2)
	checkHistory(t, s, "big", n)
	var nullCreated int
	if err := s.db.QueryRow(`SELECT count(*) FROM fsm_events WHERE created_at IS NULL`).Scan(&nullCreated); err != nil {
		t.Fatal(err)
	}
	if nullCreated != 0 {
		t.Errorf("%d events without created_at", nullCreated)
	}
	if err := s.Commit(context.Background(), creation("again", 1, "inbox-big")); !errors.Is(err, store.ErrDuplicate) {
		t.Errorf("inbox id of the big commit again: %v, want ErrDuplicate", err)
	}
}

// TestMultiRowBatch: a batch mixing events and inbox ids, with a commit reusing an inbox id of
// the same batch, one reusing an event id of the same batch and one reusing an inbox id of an
// earlier batch: those fail alone (the fast path's multi-row inserts fail, the slow path finds
// them) and the others land with all their rows.
func TestMultiRowBatch(t *testing.T) {
	s := openInternal(t)
	if err := s.Commit(context.Background(), creation("old", 1, "inbox-old")); err != nil {
		t.Fatal(err)
	}
	dupEvent := creation("d", 1, "inbox-d")
	dupEvent.Events[0].ID = "a-e1"
	batch := []*store.Commit{
		creation("a", 3, "inbox-a"),
		creation("b", 300, "inbox-b"), // more than one chunk
		creation("c", 1, "inbox-a"),   // inbox id of a, same batch
		dupEvent,
		creation("e", 1, ""),
		creation("f", 2, "inbox-old"), // inbox id of an earlier batch
		creation("g", 5, "inbox-g"),
	}
	errs := s.runBatch(batch)
	for i, want := range []error{nil, nil, store.ErrDuplicate, errors.New("constraint"), nil, store.ErrDuplicate, nil} {
		switch {
		case want == nil && errs[i] != nil:
			t.Errorf("commit %d: %v", i, errs[i])
		case want != nil && errs[i] == nil:
			t.Errorf("commit %d: applied, want an error", i)
		case errors.Is(want, store.ErrDuplicate) && !errors.Is(errs[i], store.ErrDuplicate):
			t.Errorf("commit %d: %v, want ErrDuplicate", i, errs[i])
		}
	}
	checkHistory(t, s, "a", 3)
	checkHistory(t, s, "b", 300)
	checkHistory(t, s, "e", 1)
	checkHistory(t, s, "g", 5)
	for _, id := range []string{"c", "d", "f"} {
		if _, err := s.Instance(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("instance %s of a failed commit: %v, want ErrNotFound", id, err)
		}
		checkHistory(t, s, id, 0)
	}
	// The inbox ids of the commits that landed are recorded; those of the failed ones are not.
	for id, want := range map[string]bool{"inbox-a": true, "inbox-b": true, "inbox-g": true, "inbox-d": false} {
		err := s.Commit(context.Background(), creation("probe-"+id, 0, id))
		if got := errors.Is(err, store.ErrDuplicate); got != want || (!want && err != nil) {
			t.Errorf("inbox %s recorded: commit again gives %v, want duplicate %v", id, err, want)
		}
	}
}

// move is a commit taking instance id from version v to v+1 (with its event), expecting v.
func move(id string, v int64, state string) *store.Commit {
	in := &store.Instance{ID: id, Machine: "M", State: state, Status: store.StatusActive, Version: v + 1,
		Data: map[string]any{"v": v + 1}, UpdatedAt: 2000 + v}
	return &store.Commit{
		Instances: []store.InstanceWrite{{Instance: in, ExpectVersion: v}},
		Events: []store.Event{{ID: fmt.Sprintf("%s-e%d", id, v+1), InstanceID: id, Machine: "M", Type: "E",
			ToState: state, Seq: v + 1, PersistedAt: 2000 + v, Data: in.Data}},
	}
}

// TestMultiRowUpdates: a batch's snapshot updates are one multi-row UPDATE … FROM (VALUES …)
// in the fast path (checked directly, by chunks); an instance moved twice in one batch, two
// commits expecting the same version, a commit on an unknown instance and one changing a
// column a transition does not change are resolved as with one statement per commit.
func TestMultiRowUpdates(t *testing.T) {
	s := openInternal(t)
	ctx := context.Background()
	const n = 600 // more than one chunk
	var creates, moves []*store.Commit
	for i := range n {
		creates = append(creates, creation(fmt.Sprintf("u%d", i), 1, ""))
		moves = append(moves, move(fmt.Sprintf("u%d", i), 0, "T"))
	}
	if err := s.fast(ctx, creates); err != nil {
		t.Fatal(err)
	}
	if err := s.fast(ctx, moves); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		in, err := s.Instance(ctx, fmt.Sprintf("u%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if in.Version != 1 || in.State != "T" || in.Data["v"] != float64(1) || in.UpdatedAt != 2000 {
			t.Fatalf("instance u%d after the batch: %+v", i, in)
		}
	}

	reparent := move("u3", 1, "S")
	reparent.Instances[0].Instance.ParentID = "u4" // not a column a transition changes
	batch := []*store.Commit{
		move("u0", 1, "S"), move("u0", 2, "T"), // twice in the batch: both land
		move("u1", 1, "S"), move("u1", 1, "X"), // same expected version: the second conflicts
		move("nope", 0, "S"), // unknown instance
		reparent,
		move("u2", 1, "S"),
	}
	errs := s.runBatch(batch)
	for i, want := range []error{nil, nil, nil, store.ErrConflict, store.ErrNotFound, nil, nil} {
		if (want == nil) != (errs[i] == nil) || (want != nil && !errors.Is(errs[i], want)) {
			t.Errorf("commit %d: %v, want %v", i, errs[i], want)
		}
	}
	for id, want := range map[string]struct {
		v      int64
		state  string
		parent string
	}{"u0": {3, "T", ""}, "u1": {2, "S", ""}, "u2": {2, "S", ""}, "u3": {2, "S", "u4"}, "u5": {1, "T", ""}} {
		in, err := s.Instance(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if in.Version != want.v || in.State != want.state || in.ParentID != want.parent {
			t.Errorf("instance %s: version %d state %s parent %q, want %+v", id, in.Version, in.State, in.ParentID, want)
		}
	}
	h, err := s.History(ctx, "u0")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 4 {
		t.Errorf("history of u0: %d events, want 4", len(h))
	}
}

// TestWalAutocheckpoint: the committer's connection checkpoints every walAutocheckpoint pages.
func TestWalAutocheckpoint(t *testing.T) {
	s := openInternal(t)
	var n int
	if err := s.wconn.QueryRowContext(context.Background(), "PRAGMA wal_autocheckpoint").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != walAutocheckpoint {
		t.Errorf("wal_autocheckpoint %d, want %d", n, walAutocheckpoint)
	}
}
