package storetest

import (
	"context"
	"testing"

	"github.com/xcomponent/xcomponent/store"
)

// testTerminated: an instance an operator terminated (status terminated, timers dropped, the
// reason in its history) leaves the live set, the timer claims and the matcher, and stays
// searchable by its status.
func testTerminated(t *testing.T, s store.Store) {
	ctx := context.Background()
	comp := unique("term")
	in := newInstance(comp, "M", "Waiting", map[string]any{"orderId": "T-1"}, base)
	in.Timers = []store.Timer{{Event: "TIMEOUT", TargetState: "Expired", DueAt: base + 1_000, TotalMs: 1_000,
		Kind: store.TimerTimeout, ArmedAt: base}}
	mustCreate(t, s, in)

	c, next := step(in, "INSTANCE_TERMINATED", "Waiting", in.Data, base+500)
	next.Status = store.StatusTerminated
	next.Timers = nil
	c.Instances[0].Instance = recPtr(next)
	ev := &c.Events[0]
	ev.Actor, ev.Source, ev.Reason = "alice", "operator", "customer called: cancel the order"
	mustCommit(t, s, c)

	got, err := s.Instance(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.StatusTerminated || got.State != "Waiting" || len(got.Timers) != 0 || got.Version != 1 {
		t.Errorf("terminated record = status %s, state %s, timers %v, version %d", got.Status, got.State, got.Timers, got.Version)
	}
	live, err := s.LoadLive(ctx, comp)
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 0 {
		t.Errorf("LoadLive after terminate = %v, want none", ids(live))
	}
	found, _, err := s.Search(ctx, store.Query{Component: comp, Status: store.StatusTerminated})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].ID != in.ID {
		t.Errorf("Search status terminated = %v, want [%s]", ids(found), in.ID)
	}
	if found, _, _ = s.Search(ctx, store.Query{Component: comp, Status: store.StatusActive}); len(found) != 0 {
		t.Errorf("Search status active = %v, want none", ids(found))
	}
	if cl, ok := s.(store.TimerClaimer); ok {
		claimed, err := cl.ClaimDueTimers(ctx, store.TimerClaim{Component: comp, DueBy: base + 10_000, Now: base + 10_000,
			LeaseUntil: base + 20_000, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(claimed) != 0 {
			t.Errorf("ClaimDueTimers returned the terminated instance: %v", ids(claimed))
		}
	}
	if m, ok := s.(store.Matcher); ok {
		matched, err := m.Match(ctx, store.MatchQuery{Component: comp, Machine: "M"})
		if err != nil {
			t.Fatal(err)
		}
		if len(matched) != 0 {
			t.Errorf("Match returned the terminated instance: %v", ids(matched))
		}
	}
	h, err := s.History(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[1].Reason != "customer called: cancel the order" || h[1].Actor != "alice" || h[1].Type != "INSTANCE_TERMINATED" {
		t.Errorf("history = %+v", h)
	}
}
