package e2e

import (
	"testing"
)

// TestTwoProcessesOnePostgres: two `serve` processes on one PostgreSQL database receive, at
// the same time, events for the same instances (each instance has senders on both). Each
// sender sends its events one after the other. Afterwards every instance's history is
// seq 1..version exactly once, each transition starting from the state the previous one ended
// in (no lost update), the snapshot's version is the number of transitions, every
// acknowledged event is there with the version its answer gave (no version acknowledged
// twice), and each sender's events appear in its sending order.
func TestTwoProcessesOnePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: -short")
	}
	t.Parallel()
	b := newBackend(t, "postgres")
	a := startServe(t, "multi-a", b.spec)
	bb := startServe(t, "multi-b", b.spec)
	ca, cb := newClient(a.URL), newClient(bb.URL)
	var counters []string
	for range 8 {
		counters = append(counters, ca.create(t, "Counter", map[string]any{"owner": "e2e"}).ID)
	}
	const perInstance, perSender = 3, 40 // senders per instance on each process, events per sender
	tr := startTraffic(ca, "a", "multi", counters, perInstance, perSender)
	tr.add(cb, "b", "multi", counters, perInstance, perSender)
	tr.wait()
	ca.close() // idle keep-alive connections would delay the graceful stop
	cb.close()
	a.Stop()
	bb.Stop()

	acked, unknown, rejected := tr.counts()
	t.Logf("%d events sent: %d acknowledged, %d without answer, %d rejected", acked+unknown+rejected, acked, unknown, rejected)
	statuses := map[int]int{}
	for _, s := range tr.senders {
		for tok, rej := range s.rejected {
			statuses[rej.status]++
			if statuses[rej.status] <= 3 {
				t.Logf("%s via %s: HTTP %d %s", tok, s.via, rej.status, rej.body)
			}
		}
	}
	for _, srv := range []*server{a, bb} {
		if l := srv.Logged("internal error"); len(l) > 0 {
			t.Logf("%s logged %d internal errors, e.g. %v", srv.Name, len(l), l[0].Attrs["err"])
		}
	}
	if unknown > 0 {
		t.Errorf("%d requests got no answer", unknown)
	}
	// Version conflicts between the processes are retried by the engine (with backoff); none
	// may reach a client.
	for st, n := range statuses {
		t.Errorf("%d events refused with HTTP %d", n, st)
	}
	if acked == 0 {
		t.Fatal("no event acknowledged")
	}

	var led ledger
	led.add(tr)
	v := led.verify(t, b, counters, true)
	// No version acknowledged twice across the two processes.
	byVersion := map[string]map[int64]string{}
	for _, s := range tr.senders {
		for _, a := range s.acks {
			m := byVersion[a.instance]
			if m == nil {
				m = map[int64]string{}
				byVersion[a.instance] = m
			}
			if other, dup := m[a.version]; dup {
				t.Errorf("instance %s: version %d acknowledged twice: %s and %s", a.instance, a.version, other, a.token)
			}
			m[a.version] = a.token
		}
	}
	// Both processes did write each instance.
	for _, id := range counters {
		via := map[string]int{}
		for _, s := range tr.senders {
			if s.instance == id {
				via[s.via] += len(s.acks)
			}
		}
		if via["a"] == 0 || via["b"] == 0 {
			t.Errorf("instance %s: acknowledged events per process %v: both should have written it", id, via)
		}
		if v.versions[id] != int64(len(byVersion[id])) {
			t.Logf("instance %s: version %d, %d acknowledged", id, v.versions[id], len(byVersion[id]))
		}
	}
}
