package busbackend_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/distributed/distributedtest"
	"github.com/xcomponent/xcomponent/internal/busbackend"
	"github.com/xcomponent/xcomponent/internal/httpapi"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
)

// keyed posts body with an Idempotency-Key and returns the status, the answer and whether it
// says Idempotent-Replayed.
func (d *dashboard) keyed(t *testing.T, path, key string, body any) (int, sendAnswer, bool) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", d.srv.URL+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(httpapi.HeaderIdempotencyKey, key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out struct {
		sendAnswer
		InstanceID string `json:"instanceId"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, data)
	}
	if out.InstanceID != "" {
		out.Instance.ID = out.InstanceID
	}
	return resp.StatusCode, out.sendAnswer, resp.Header.Get(httpapi.HeaderIdempotentReplayed) == "true"
}

func countType(h []historyEntry, typ string) int {
	n := 0
	for _, e := range h {
		if e.Event.Type == typ {
			n++
		}
	}
	return n
}

// TestIdempotencyKeyOverTheBus: through the distributed dashboard, with runtimes over RabbitMQ
// and PostgreSQL, a retried create makes one instance and a retried event fires once, answered
// 201/200 with Idempotent-Replayed whether the runtime reports the command id applied (a
// duplicate reply) or the dashboard finds it in the history (the instance moved on); a second
// dashboard replays the first one's request; concurrent same-key requests apply once.
func TestIdempotencyKeyOverTheBus(t *testing.T) {
	_, url := rmqtest.NewVhost(t)
	dsn := pgtest.NewNamedDatabase(t, "xc_idem_")
	distributedtest.Start(t, distributed.Config{ComponentFile: "../../distributed/testdata/counter.yaml", BrokerURL: url, StoreSpec: dsn,
		RuntimeName: "runtime-counters", HeartbeatInterval: 200 * time.Millisecond, MinBackoff: 50 * time.Millisecond,
		MaxBackoff: time.Second, Logger: logger(t)})
	d := startDashboard(t, url, dsn, busbackend.Config{CommandTimeout: 20 * time.Second})
	d2 := startDashboard(t, url, dsn, busbackend.Config{CommandTimeout: 20 * time.Second})
	for _, x := range []*dashboard{d, d2} {
		eventually(t, "runtime up", func() bool { return countStatus(x.runtimes(t), "Counters", busbackend.StatusUp) == 1 })
	}
	const base = "/api/components/Counters/instances"
	countInstances := func() int {
		var l struct {
			Instances []instanceAnswer `json:"instances"`
		}
		if st := d.call(t, "GET", base+"?limit=1000", nil, &l); st != 200 {
			t.Fatalf("list: %d", st)
		}
		return len(l.Instances)
	}

	// Create, retried on the same dashboard and on another: one instance.
	st, first, rep := d.keyed(t, base, "order-1", map[string]any{})
	if st != 201 || rep || first.Instance.ID == "" {
		t.Fatalf("create: %d replayed=%v %+v", st, rep, first)
	}
	id := first.Instance.ID
	for _, x := range []*dashboard{d, d2} {
		st, again, rep := x.keyed(t, base, "order-1", map[string]any{})
		if st != 201 || !rep || again.Instance.ID != id || again.Instance.CurrentState != "Counting" {
			t.Fatalf("retried create: %d replayed=%v %+v, want 201 replayed with %s", st, rep, again, id)
		}
	}
	if n := countInstances(); n != 1 {
		t.Fatalf("%d instances after retried creates, want 1", n)
	}

	// A self-loop the runtime would apply again: its store's inbox refuses the id, the
	// duplicate reply is answered 200 replayed.
	events := base + "/" + id + "/events"
	for i, x := range []*dashboard{d, d, d2} {
		st, s, rep := x.keyed(t, events, "tick-1", map[string]any{"type": "TICK", "payload": map[string]any{"n": 1}})
		if st != 200 || rep != (i > 0) || s.PreviousState != "Counting" || s.NewState != "Counting" {
			t.Fatalf("tick #%d: %d replayed=%v %+v", i+1, st, rep, s)
		}
	}
	if st, s, _ := d.keyed(t, events, "tick-1", map[string]any{"type": "TICK", "payload": map[string]any{"n": 2}}); st != 422 ||
		!strings.Contains(s.Error, httpapi.HeaderIdempotencyKey) {
		t.Fatalf("key reused with another payload: %d %+v, want 422", st, s)
	}
	if n := countType(d.history(t, id), "TICK"); n != 1 {
		t.Fatalf("%d TICK events after retries, want 1", n)
	}
	// A dashboard without database: the runtime's duplicate reply, and the ids it saw itself.
	d3 := startDashboard(t, url, "", busbackend.Config{CommandTimeout: 20 * time.Second})
	eventually(t, "runtime up for the dashboard without database", func() bool {
		return countStatus(d3.runtimes(t), "Counters", busbackend.StatusUp) == 1
	})
	// Its view learns the instance from the runtime's query answer, or from this event's
	// state_change (it subscribed to the events before the registry).
	var seen instanceAnswer
	if st := d.call(t, "POST", events, map[string]any{"type": "TICK", "payload": map[string]any{"n": 0}}, &seen); st != 200 {
		t.Fatalf("tick without key: %d", st)
	}
	eventually(t, "instance in the view of the dashboard without database", func() bool {
		return d3.call(t, "GET", "/api/instances/"+id, nil, &seen) == 200
	})
	for i, x := range []struct {
		key string
		n   int
	}{{"tick-1", 1}, {"tick-3", 3}, {"tick-3", 3}} {
		key := x.key
		st, s, rep := d3.keyed(t, events, key, map[string]any{"type": "TICK", "payload": map[string]any{"n": x.n}})
		if st != 200 || rep != (i != 1) || s.Instance.CurrentState != "Counting" {
			t.Fatalf("%s on the dashboard without database: %d replayed=%v %+v", key, st, rep, s)
		}
	}
	if n := countType(d.history(t, id), "TICK"); n != 3 {
		t.Fatalf("%d TICK events after the retries without database, want 3 (tick-1, the one without key, tick-3)", n)
	}

	// Concurrent duplicates on two dashboards: each answered (200, or 409 while the same key
	// is in flight on that dashboard), one applied.
	const n = 6
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for i := range n {
		wg.Add(1)
		go func(x *dashboard) {
			defer wg.Done()
			st, s, _ := x.keyed(t, events, "tick-2", map[string]any{"type": "TICK", "payload": map[string]any{"n": 2}})
			if st != 200 && !(st == 409 && strings.Contains(s.Error, "in progress")) {
				t.Errorf("concurrent tick: %d %+v", st, s)
			}
			mu.Lock()
			statuses[st]++
			mu.Unlock()
		}([]*dashboard{d, d2}[i%2])
	}
	wg.Wait()
	if n := countType(d.history(t, id), "TICK"); n != 4 || statuses[200] < 2 {
		t.Fatalf("%d TICK events after concurrent same-key ticks (answers %v), want 4 and at least one 200 per dashboard", n, statuses)
	}
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st, s, _ := d2.keyed(t, base, "order-2", map[string]any{}); st != 201 && !(st == 409 && strings.Contains(s.Error, "in progress")) {
				t.Errorf("concurrent create: %d %+v", st, s)
			}
		}()
	}
	wg.Wait()
	if n := countInstances(); n != 2 {
		t.Fatalf("%d instances after concurrent same-key creates, want 2", n)
	}

	// Terminate, retried: the runtime finds its id applied (duplicate reply).
	st, third, _ := d.keyed(t, base, "order-3", map[string]any{})
	if st != 201 {
		t.Fatalf("create: %d %+v", st, third)
	}
	for i, x := range []*dashboard{d, d2} {
		st, s, rep := x.keyed(t, base+"/"+third.Instance.ID+"/terminate", "stop-0", map[string]any{"reason": "test"})
		if st != 200 || rep != (i > 0) || s.Instance.Status != "terminated" {
			t.Fatalf("terminate #%d: %d replayed=%v %+v", i+1, st, rep, s)
		}
	}
	if n := countType(d.history(t, third.Instance.ID), "INSTANCE_TERMINATED"); n != 1 {
		t.Fatalf("%d terminations, want 1", n)
	}

	// An event that ended the instance, retried: the dashboard refuses it before any runtime
	// (not active), then finds it applied in the history.
	for i := range 2 {
		st, s, rep := d.keyed(t, events, "stop-1", map[string]any{"type": "STOP"})
		if st != 200 || rep != (i > 0) || s.NewState != "Done" || s.PreviousState != "Counting" {
			t.Fatalf("stop #%d: %d replayed=%v %+v", i+1, st, rep, s)
		}
	}
	if n := countType(d.history(t, id), "STOP"); n != 1 {
		t.Fatalf("%d STOP events, want 1", n)
	}
}
