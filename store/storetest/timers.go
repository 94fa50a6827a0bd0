package storetest

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/xcomponent/xcomponent/store"
)

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

func timerAt(due int64) store.Timer {
	return store.Timer{Event: "TIMEOUT", TargetState: "Done", DueAt: due, TotalMs: due - base, Kind: store.TimerTimeout, ArmedAt: base}
}

func claimer(t *testing.T, s store.Store) store.TimerClaimer {
	t.Helper()
	c, ok := s.(store.TimerClaimer)
	if !ok {
		t.Skipf("%T is not shared between processes (no store.TimerClaimer)", s)
	}
	return c
}

func claim(t *testing.T, c store.TimerClaimer, comp string, dueBy, now, leaseUntil int64, limit int) []store.Instance {
	t.Helper()
	got, err := c.ClaimDueTimers(context.Background(), store.TimerClaim{Component: comp, DueBy: dueBy, Now: now, LeaseUntil: leaseUntil, Limit: limit})
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	return got
}

// testTimerClaims: due instances are handed out earliest deadline first, once per lease; a
// write clears the lease and moves the deadline; spent timers, completed instances and other
// components are never claimed.
func testTimerClaims(t *testing.T, s store.Store) {
	cl := claimer(t, s)
	comp := unique("claims")
	a := newInstance(comp, "M", "Waiting", nil, base)
	a.Timers = []store.Timer{timerAt(base + 1_000)}
	b := newInstance(comp, "M", "Waiting", nil, base)
	b.Timers = []store.Timer{timerAt(base + 5_000), timerAt(base + 90_000)}
	none := newInstance(comp, "M", "Idle", nil, base)
	spent := newInstance(comp, "M", "Waiting", nil, base)
	spent.Timers = []store.Timer{timerAt(base + 500)}
	spent.Timers[0].Spent = true
	done := newInstance(comp, "M", "Done", nil, base)
	done.Status = store.StatusCompleted
	done.Timers = []store.Timer{timerAt(base + 500)}
	other := newInstance(unique("other"), "M", "Waiting", nil, base)
	other.Timers = []store.Timer{timerAt(base + 500)}
	for _, in := range []store.Instance{a, b, none, spent, done, other} {
		mustCreate(t, s, in)
	}

	if got := claim(t, cl, comp, base+999, base+999, base+10_999, 10); len(got) != 0 {
		t.Fatalf("nothing is due yet, claimed %v", ids(got))
	}
	got := claim(t, cl, comp, base+2_000, base+2_000, base+12_000, 10)
	if !slices.Equal(ids(got), []string{a.ID}) {
		t.Fatalf("claim at +2s: %v, want [a %s]", ids(got), a.ID)
	}
	checkInstance(t, a, got[0])
	if got := claim(t, cl, comp, base+2_000, base+2_000, base+12_000, 10); len(got) != 0 {
		t.Fatalf("a leased instance was claimed again: %v", ids(got))
	}
	if got := claim(t, cl, comp, base+6_000, base+6_000, base+16_000, 10); !slices.Equal(ids(got), []string{b.ID}) {
		t.Fatalf("claim at +6s: %v, want [b %s] (a is leased until +12s)", ids(got), b.ID)
	}
	// A write clears a's lease and moves its deadline.
	c, a2 := step(a, "TICK", "Waiting", nil, base+6_500)
	a2.Timers = []store.Timer{timerAt(base + 7_000)}
	c.Instances[0].Instance = recPtr(a2)
	mustCommit(t, s, c)
	if got := claim(t, cl, comp, base+6_999, base+6_999, base+16_999, 10); len(got) != 0 {
		t.Fatalf("a's new deadline is +7s, claimed at +6.999s: %v", ids(got))
	}
	got = claim(t, cl, comp, base+8_000, base+8_000, base+18_000, 10)
	if !slices.Equal(ids(got), []string{a.ID}) {
		t.Fatalf("claim at +8s: %v, want [a] (written since its claim; b leased until +16s)", ids(got))
	}
	checkInstance(t, a2, got[0])
	// An expired lease: both again, earliest deadline first; the limit is honoured.
	got = claim(t, cl, comp, base+20_000, base+20_000, base+30_000, 1)
	if !slices.Equal(ids(got), []string{b.ID}) {
		t.Fatalf("claim at +20s, limit 1: %v, want [b] (due +5s, before a's +7s)", ids(got))
	}
	got = claim(t, cl, comp, base+20_000, base+20_000, base+30_000, 10)
	if !slices.Equal(ids(got), []string{a.ID}) {
		t.Fatalf("claim at +20s: %v, want [a]", ids(got))
	}
	// Completing a removes its deadline.
	c, a3 := step(a2, "GO", "Done", nil, base+21_000)
	a3.Status = store.StatusCompleted
	c.Instances[0].Instance = recPtr(a3)
	mustCommit(t, s, c)
	if got := claim(t, cl, comp, base+100_000, base+100_000, base+110_000, 10); !slices.Equal(ids(got), []string{b.ID}) {
		t.Fatalf("claim at +100s: %v, want [b] only", ids(got))
	}
}

// testTimerClaimsConcurrent: claimers racing over many due instances get each one once.
func testTimerClaimsConcurrent(t *testing.T, s store.Store) {
	cl := claimer(t, s)
	comp := unique("race")
	const n, claimers = 60, 4
	for i := range n {
		in := newInstance(comp, "M", "Waiting", nil, base)
		in.Timers = []store.Timer{timerAt(base + int64(i))}
		mustCreate(t, s, in)
	}
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	errs := make(chan error, claimers)
	for range claimers {
		wg.Go(func() {
			for {
				got, err := cl.ClaimDueTimers(context.Background(), store.TimerClaim{Component: comp, DueBy: base + n,
					Now: base + n, LeaseUntil: base + 60_000, Limit: 7})
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, in := range got {
					seen[in.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != n {
		t.Errorf("%d instances claimed, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("instance %s claimed %d times under one lease", id, k)
		}
	}
}
