package e2e

import (
	"context"
	"fmt"
	"github.com/xcomponent/xcomponent/internal/faults"
	"testing"
	"time"
)

// TestTimerTakeoverAfterKill9: two `serve` processes on one database (PostgreSQL; and one
// SQLite file shared by two processes in one folder). Every
// instance is created through A, so B has never loaded one and receives no event: A arms and
// fires all the timers (periodic 100ms ticks, one-shot 2.5s timeouts). A is killed with
// SIGKILL. B claims the due timers from the database and fires them: the tickers go on ticking
// and the waiters armed by A reach Done. Across the kill, every arming fired once: each TICK is
// caused by the event before it (a tick fired twice would give two with one cause), each
// waiter has one WAKE, and every history is seq 1..version exactly once.
//
// It logs the time from the kill to the first timer B fired (docs/benchmarks.md).
func TestTimerTakeoverAfterKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: -short")
	}
	t.Parallel()
	for _, name := range []string{"postgres", "sqlite"} {
		t.Run(name, func(t *testing.T) { testTimerTakeoverAfterKill9(t, name) })
	}
}

func testTimerTakeoverAfterKill9(t *testing.T, backendName string) {
	b := newBackend(t, backendName)
	a := startServe(t, "timers-a", b.spec)
	survivor := startServe(t, "timers-b", b.spec)
	ca := newClient(a.URL)
	defer ca.close()
	const tickers, waiters = 8, 16
	var tickerIDs, waiterIDs []string
	for range tickers {
		tickerIDs = append(tickerIDs, ca.create(t, "Ticker", nil).ID)
	}
	// A ticks them: wait for a few ticks of each.
	if err := faults.Poll(60*time.Second, func() (bool, error) {
		snaps := b.readSnapshots(t)
		for _, id := range tickerIDs {
			if snaps[id].Version < 5 {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		t.Fatalf("tickers in A: %v", err)
	}
	for range waiters {
		waiterIDs = append(waiterIDs, ca.create(t, "Waiter", nil).ID)
	}
	atKill := b.readSnapshots(t)
	killed := time.Now()
	a.Kill()
	t.Logf("A killed (SIGKILL; exit seen after %v)", time.Since(killed).Round(time.Millisecond))

	// B takes over: every ticker ticks 10 more times, every waiter fires.
	if err := faults.Poll(60*time.Second, func() (bool, error) {
		snaps := b.readSnapshots(t)
		for _, id := range tickerIDs {
			if snaps[id].Version < atKill[id].Version+10 {
				return false, nil
			}
		}
		for _, id := range waiterIDs {
			if snaps[id].State != "Done" {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		t.Fatalf("takeover by B: %v\n%s", err, survivor.Tail(40))
	}
	survivor.Stop()

	evs := b.readEvents(t)
	snaps := b.readSnapshots(t)
	cause := b.readCauses(t)
	killMs := killed.UnixMilli()
	var first int64 // persisted_at of the first timer event B fired
	for _, id := range append(append([]string{}, tickerIDs...), waiterIDs...) {
		hist := evs[id]
		checkChain(t, id, hist, snaps[id], true)
		for i, e := range hist {
			if e.Type != "TICK" && e.Type != "WAKE" {
				continue
			}
			if e.PersistedAt > killMs && (first == 0 || e.PersistedAt < first) {
				first = e.PersistedAt
			}
			if i > 0 && cause[e.ID] != hist[i-1].ID {
				t.Errorf("instance %s: %s seq %d caused by %s, want the event before it %s: an arming fired twice",
					id, e.Type, e.Seq, cause[e.ID], hist[i-1].ID)
			}
		}
	}
	var maxLate int64 // how late after its deadline B fired a waiter armed by A
	for _, id := range waiterIDs {
		wakes := 0
		for _, e := range evs[id] {
			if e.Type == "WAKE" {
				wakes++
				maxLate = max(maxLate, e.PersistedAt-(evs[id][0].PersistedAt+waiterTimeoutMs))
			}
		}
		if wakes != 1 {
			t.Errorf("waiter %s: %d WAKE events, want 1", id, wakes)
		}
	}
	if first == 0 {
		t.Fatal("no timer event after the kill")
	}
	t.Logf("%s: kill -9 of the arming process → first timer fired by the survivor: %v; waiters armed by A fired by B at most %v after their deadline (poll 1s, takeover delay 500ms)",
		b.name, time.Duration(first-killMs)*time.Millisecond, time.Duration(maxLate)*time.Millisecond)
}

// readCauses returns the causation id of every event, by event id.
func (b backend) readCauses(t testing.TB) map[string]string {
	t.Helper()
	db := b.open(t)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, `SELECT CAST(id AS TEXT), COALESCE(CAST(causation_id AS TEXT), '') FROM fsm_events`)
	if err != nil {
		t.Fatalf("read causation ids (%s): %v", b.name, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, cause string
		if err := rows.Scan(&id, &cause); err != nil {
			t.Fatalf("read causation ids (%s): %v", b.name, err)
		}
		out[id] = cause
	}
	if err := rows.Err(); err != nil {
		t.Fatal(fmt.Errorf("read causation ids (%s): %w", b.name, err))
	}
	return out
}
