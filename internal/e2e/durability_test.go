package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/internal/faults"
)

const (
	killRounds       = 3  // kill -9 / restart cycles per store
	killCounters     = 16 // instances receiving the stream
	sendersPerCount  = 2  // concurrent senders per instance
	killAfterAcks    = 300
	waitersPerRound  = 4
	waiterTimeoutMs  = 2500 // testdata/durable.yaml, Waiter
	conditionTimeout = 60 * time.Second
)

// TestKillMidStream: senders stream events to instances; the server is killed with SIGKILL
// while requests are in flight, and restarted on the same store, several times. After each
// kill the store must hold every acknowledged event exactly once, with the version and state
// its answer gave, each instance's history must be an unbroken chain 1..version whose
// snapshot agrees with its last event, no event may be applied twice, and the restarted
// server must serve the stored versions and go on from them. Timers armed just before a kill
// must fire after the restart, once, not before their deadline.
func TestKillMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: -short")
	}
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t, name)
			srv := startServe(t, "kill-0", b.spec)
			c := newClient(srv.URL)
			var counters []string
			for range killCounters {
				counters = append(counters, c.create(t, "Counter", map[string]any{"owner": "e2e"}).ID)
			}
			var led ledger
			var pending, all []armed   // waiters armed before the last kill; before any kill
			var recovery time.Duration // worst restart → first event acknowledged
			for round := 1; round <= killRounds; round++ {
				restarted := time.Now()
				if round > 1 {
					srv = startServe(t, fmt.Sprintf("kill-%d", round-1), b.spec)
					c = newClient(srv.URL)
					t.Logf("round %d: restarted in %v", round, srv.Ready.Round(time.Millisecond))
					checkServed(t, c, b, counters)
				}
				tr := startTraffic(c, "s", fmt.Sprintf("r%d", round), counters, sendersPerCount, 0)
				if round > 1 {
					if err := faults.Poll(conditionTimeout, func() (bool, error) { return tr.acks.Load() > 0, nil }); err != nil {
						t.Fatalf("round %d: no event acknowledged after the restart: %v", round, err)
					}
					recovery = max(recovery, time.Since(restarted))
				}
				// Let the stream run, and the timers of the previous round fire meanwhile.
				if err := faults.Poll(conditionTimeout, func() (bool, error) { return tr.acks.Load() >= killAfterAcks, nil }); err != nil {
					t.Fatalf("round %d: %d events acknowledged: %v", round, tr.acks.Load(), err)
				}
				waitFired(t, c, pending)
				// Arm new timers, then kill while the stream is still running.
				pending = nil
				for range waitersPerRound {
					in := c.create(t, "Waiter", nil)
					if len(in.PendingTimeouts) != 1 {
						t.Fatalf("waiter %s: pending timeouts %+v", in.ID, in.PendingTimeouts)
					}
					pending = append(pending, armed{id: in.ID, dueAt: in.PendingTimeouts[0].DueAt})
				}
				all = append(all, pending...)
				tr.stopping.Store(true)
				killedAt := time.Now().UnixMilli()
				srv.Kill()
				tr.wait()
				c.close()
				tr.checkNoErrors(t)
				b.awaitSessionsGone(t)
				led.add(tr)
				a, u, r := tr.counts()
				t.Logf("round %d: SIGKILL during the stream: %d events acknowledged, %d requests without answer, %d rejected",
					round, a, u, r)
				v := led.verify(t, b, counters, false)
				t.Logf("after round %d: %d events in all were committed but the kill came before their answer", round, v.appliedUnanswered)
				checkArmed(t, b, pending, killedAt)
				if t.Failed() {
					return
				}
			}

			// Last restart: the API serves the stored versions, the instances go on from them,
			// the last timers fire.
			srv = startServe(t, "kill-final", b.spec)
			c = newClient(srv.URL)
			defer c.close()
			stored := checkServed(t, c, b, counters)
			tr := startTraffic(c, "s", "final", counters, 1, 1)
			tr.wait()
			tr.checkNoErrors(t)
			for _, s := range tr.senders {
				if len(s.acks) == 1 && s.acks[0].version != stored[s.instance].Version+1 {
					t.Errorf("after restart, the next event of %s got version %d, want %d", s.instance, s.acks[0].version, stored[s.instance].Version+1)
				}
			}
			waitFired(t, c, pending)
			c.close() // idle keep-alive connections would delay the graceful stop
			srv.Stop()
			led.add(tr)
			led.verify(t, b, counters, false)
			checkFired(t, b, all)
			judgeAndRecord(t, b, &led, faults.ScenarioKillServe, "`serve`, "+map[string]string{"sqlite": "SQLite", "postgres": "PostgreSQL"}[name],
				recovery, "restart → first event acknowledged, worst of 2", fmt.Sprintf(
					"%d SIGKILLs mid-stream (%d concurrent senders on %d instances); %d timers armed before the kills fired once after the restarts, not before their deadline",
					killRounds, killCounters*sendersPerCount, killCounters, len(all)))
		})
	}
}

// checkServed checks that a restarted server serves the instances as the store has them,
// and returns the store's snapshots.
func checkServed(t *testing.T, c *client, b backend, ids []string) map[string]snapRow {
	t.Helper()
	stored := b.readSnapshots(t)
	for _, id := range ids {
		in := c.get(t, id)
		if in.Version != stored[id].Version || in.CurrentState != stored[id].State {
			t.Errorf("after restart %s is %s v%d, the store has %s v%d", id, in.CurrentState, in.Version, stored[id].State, stored[id].Version)
		}
	}
	return stored
}

// armed is a Waiter instance with its timer's deadline.
type armed struct {
	id    string
	dueAt int64
}

// checkArmed checks from the store that the waiters are still waiting, their timer stored.
// A waiter whose deadline passed before the kill (a slow, loaded machine: arming four took
// longer than their timeout) may have fired already: checkFired judges it at the end.
func checkArmed(t *testing.T, b backend, ws []armed, killedAt int64) {
	t.Helper()
	snaps := b.readSnapshots(t)
	evs := b.readEvents(t)
	for _, w := range ws {
		if w.dueAt <= killedAt {
			t.Logf("waiter %s: its deadline passed %v before the kill", w.id, time.Duration(killedAt-w.dueAt)*time.Millisecond)
			continue
		}
		s := snaps[w.id]
		if s.State != "Waiting" || len(s.Timers) != 1 || s.Timers[0].DueAt != w.dueAt || len(evs[w.id]) != 1 {
			t.Errorf("waiter %s after the kill: state %q, timers %+v, %d events; want Waiting with its timer due at %d",
				w.id, s.State, s.Timers, len(evs[w.id]), w.dueAt)
		}
	}
}

// waitFired waits until every waiter is Done, through the API.
func waitFired(t *testing.T, c *client, ws []armed) {
	t.Helper()
	for _, w := range ws {
		err := faults.Poll(conditionTimeout, func() (bool, error) {
			var in apiInstance
			st, raw, err := c.do("GET", "/api/instances/"+w.id, nil, &in)
			if err != nil || st != http.StatusOK {
				return false, fmt.Errorf("get %s: %d %v %s", w.id, st, err, raw)
			}
			return in.CurrentState == "Done", nil
		})
		if err != nil {
			t.Fatalf("timer of waiter %s (due %v) did not fire after the restart: %v", w.id, time.UnixMilli(w.dueAt), err)
		}
	}
}

// checkFired checks from the store that each waiter's timer fired exactly once, not before
// its deadline.
func checkFired(t *testing.T, b backend, ws []armed) {
	t.Helper()
	evs := b.readEvents(t)
	snaps := b.readSnapshots(t)
	for _, w := range ws {
		hist := evs[w.id]
		checkChain(t, w.id, hist, snaps[w.id], true)
		if len(hist) != 2 || hist[1].Type != "WAKE" || hist[1].To != "Done" {
			t.Errorf("waiter %s: history %+v, want creation then one WAKE", w.id, hist)
			continue
		}
		if hist[1].PersistedAt < w.dueAt {
			t.Errorf("waiter %s: timer fired at %d, before its deadline %d", w.id, hist[1].PersistedAt, w.dueAt)
		}
		if snaps[w.id].Status != "completed" {
			t.Errorf("waiter %s: status %q", w.id, snaps[w.id].Status)
		}
	}
}

// TestGracefulRestart: a server stopped with SIGTERM serves, after a restart, the very
// instances it had (state, version, data, timers); stopped with SIGTERM in the middle of a
// stream, in-flight requests are finished, not cut (no error answer), and every event it
// applied was acknowledged. (Both failed before bf9112c: the request contexts were cancelled
// at shutdown, and an event whose caller had given up while queued was applied anyway.)
func TestGracefulRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: -short")
	}
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t, name)
			srv := startServe(t, "graceful-0", b.spec)
			c := newClient(srv.URL)
			var counters []string
			for range 8 {
				counters = append(counters, c.create(t, "Counter", map[string]any{"owner": "e2e", "n": 0}).ID)
			}
			var led ledger
			tr := startTraffic(c, "s", "settled", counters, 2, 15)
			tr.wait()
			tr.checkNoErrors(t)
			led.add(tr)
			before := map[string]apiInstance{}
			for _, id := range counters {
				before[id] = c.get(t, id)
			}
			c.close()
			srv.Stop()

			srv = startServe(t, "graceful-1", b.spec)
			c = newClient(srv.URL)
			for _, id := range counters {
				same(t, before[id], c.get(t, id))
			}

			// SIGTERM in the middle of a stream.
			tr = startTraffic(c, "s", "stream", counters, 2, 0)
			if err := faults.Poll(conditionTimeout, func() (bool, error) { return tr.acks.Load() >= 200, nil }); err != nil {
				t.Fatal(err)
			}
			tr.stopping.Store(true)
			srv.Stop()
			tr.wait()
			c.close()
			tr.checkNoErrors(t)
			led.add(tr)
			a, u, r := tr.counts()
			t.Logf("SIGTERM mid-stream: %d acknowledged, %d without answer, %d rejected", a, u, r)
			for _, s := range tr.senders {
				for tok, rej := range s.rejected {
					t.Errorf("graceful stop: in-flight request %s answered %d %s: it should have been finished", tok, rej.status, strings.TrimSpace(rej.body))
				}
			}
			led.verify(t, b, counters, true)

			srv = startServe(t, "graceful-2", b.spec)
			c = newClient(srv.URL)
			defer c.close()
			checkServed(t, c, b, counters)
			c.close()
			srv.Stop()
		})
	}
}

// same compares what a restart must keep of an instance.
func same(t *testing.T, want, got apiInstance) {
	t.Helper()
	if got.ID != want.ID || got.CurrentState != want.CurrentState || got.Version != want.Version || got.Status != want.Status ||
		fmt.Sprint(got.Context) != fmt.Sprint(want.Context) || fmt.Sprint(got.PendingTimeouts) != fmt.Sprint(want.PendingTimeouts) {
		t.Errorf("instance changed across a graceful restart:\nbefore %+v\nafter  %+v", want, got)
	}
}
