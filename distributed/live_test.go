package distributed_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/bus/rabbitmq"
	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/distributed/distributedtest"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/wire"
)

// TestLiveEventsWireDetails: what a consumer of the fsm:events:* channels and of query
// answers relies on (docs/design.md, "Live events"): a version on every event, event.payload
// always present, completed instances still listed by query_instances, the runtime named in
// announce's host, drops counted on /metrics.
func TestLiveEventsWireDetails(t *testing.T) {
	url := vhost(t)
	dsn := pgtest.NewDatabase(t)
	client, err := rabbitmq.New(rabbitmq.Options{URL: url, Logger: logger(t), MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	rec := &recorder{msgs: map[string][]bus.Message{}}
	for _, ch := range []string{wire.ChannelAnnounce, wire.ChannelStateChange, wire.ChannelInstanceCreated,
		wire.ChannelInstanceCompleted, wire.ChannelQueryResponse} {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		sub, err := client.Subscribe(ctx, ch, rec.handler)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
	}
	port := freePort(t)
	a := distributedtest.Start(t, distributed.Config{ComponentFile: "testdata/approval.yaml", BrokerURL: url, StoreSpec: dsn,
		RuntimeName: "replica-a", HeartbeatInterval: 200 * time.Millisecond, Port: port,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second, Logger: logger(t)})

	// announce: host is the runtime name, hostname the machine's.
	eventually(t, "announce", func() bool { return len(rec.get(wire.ChannelAnnounce)) > 0 })
	hostname, _ := os.Hostname()
	for _, m := range rec.get(wire.ChannelAnnounce) {
		ann, err := wire.Decode[wire.Announce](m.Body)
		if err != nil {
			t.Fatal(err)
		}
		if ann.Host != "replica-a" || ann.Hostname != hostname || ann.RuntimeName != "replica-a" {
			t.Fatalf("announce host %q hostname %q (machine %q): %s", ann.Host, ann.Hostname, hostname, m.Body)
		}
	}

	publish(t, client, wire.ChannelCreateInstance, wire.CreateInstance{ComponentName: component, Context: map[string]any{"n": 1}, Timestamp: wire.Now()}, uuid.NewString())
	eventually(t, "instance_created", func() bool { return len(rec.get(wire.ChannelInstanceCreated)) == 1 })
	created := rec.get(wire.ChannelInstanceCreated)[0]
	id := dataOf(t, created.Body)["instanceId"].(string)
	if v, ok := dataOf(t, created.Body)["version"]; !ok || v != 0.0 {
		t.Fatalf("instance_created version %v (present %v): %s", v, ok, created.Body)
	}

	// Events without payload: data.event.payload is {}; versions 1 and 2; the completion
	// repeats the version of its transition.
	for _, typ := range []string{"SUBMIT", "APPROVE"} {
		publish(t, client, wire.ChannelTriggerEvent, map[string]any{"componentName": component, "instanceId": id, "event": map[string]any{"type": typ}}, uuid.NewString())
	}
	eventually(t, "two state_change", func() bool { return len(rec.get(wire.ChannelStateChange)) == 2 })
	for i, m := range rec.get(wire.ChannelStateChange) {
		d := dataOf(t, m.Body)
		ev, _ := d["event"].(map[string]any)
		payload, ok := ev["payload"].(map[string]any)
		if !ok || len(payload) != 0 || d["version"] != float64(i+1) || d["instanceId"] != id {
			t.Fatalf("state_change %d: %s", i, m.Body)
		}
	}
	eventually(t, "instance_completed", func() bool { return len(rec.get(wire.ChannelInstanceCompleted)) == 1 })
	if d := dataOf(t, rec.get(wire.ChannelInstanceCompleted)[0].Body); d["version"] != 2.0 || d["status"] != "completed" || d["finalState"] != "Approved" {
		t.Fatalf("instance_completed: %v", d)
	}

	// A second, active instance; the query answer lists both, the completed one with its status.
	publish(t, client, wire.ChannelCreateInstance, wire.CreateInstance{ComponentName: component, Context: map[string]any{"n": 2}, Timestamp: wire.Now()}, uuid.NewString())
	eventually(t, "second instance_created", func() bool { return len(rec.get(wire.ChannelInstanceCreated)) == 2 })
	publish(t, client, wire.ChannelQueryInstances, wire.QueryInstances{Type: wire.TypeQueryInstances, Timestamp: wire.Now()}, uuid.NewString())
	eventually(t, "query response", func() bool { return len(rec.get(wire.ChannelQueryResponse)) > 0 })
	resp, err := wire.Decode[wire.QueryResponse](rec.get(wire.ChannelQueryResponse)[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]string{}
	for _, in := range resp.Instances {
		statuses[in.ID] = fmt.Sprintf("%s %s v%d", in.Status, in.CurrentState, in.Version)
	}
	if len(resp.Instances) != 2 || statuses[id] != "completed Approved v2" {
		t.Fatalf("query answer: %v", statuses)
	}

	// Drops are counted on /metrics (none here).
	code, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	for _, want := range []string{`live_events_dropped_total{reason="buffer_full"} 0`, `live_events_dropped_total{reason="publish_failed"} 0`} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("/metrics (%d) lacks %s", code, want)
		}
	}
	a.Stop(t)
}

// dataOf returns the data object of an fsm:events:* body.
func dataOf(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var env struct {
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	return env.Data
}

// Every runtime event either reaches the broker or is counted: with a one-event buffer and a
// burst of creates, the instance_created messages received plus live_events_dropped_total
// account for every instance created.
func TestLiveEventsDroppedAreCounted(t *testing.T) {
	url := vhost(t)
	dsn := pgtest.NewDatabase(t)
	client, err := rabbitmq.New(rabbitmq.Options{URL: url, Logger: logger(t), MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	rec := &recorder{msgs: map[string][]bus.Message{}}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	sub, err := client.Subscribe(ctx, wire.ChannelInstanceCreated, rec.handler)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	port := freePort(t)
	oc := &outcomes{n: map[string]int{}}
	a := distributedtest.Start(t, distributed.Config{ComponentFile: "testdata/approval.yaml", BrokerURL: url, StoreSpec: dsn,
		RuntimeName: "tiny-buffer", EventBuffer: 1, Prefetch: 64, Port: port, OnCommand: oc.add,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second, Logger: logger(t)})

	const n = 200
	for i := range n {
		publish(t, client, wire.ChannelCreateInstance, wire.CreateInstance{ComponentName: component, Context: map[string]any{"n": i}, Timestamp: wire.Now()}, uuid.NewString())
	}
	eventually(t, "creates applied", func() bool { return oc.count(wire.ChannelCreateInstance, distributed.OutcomeApplied) == n })
	metric := func(reason string) int {
		_, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		prefix := `live_events_dropped_total{reason="` + reason + `"} `
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				var x float64
				if _, err := fmt.Sscan(v, &x); err == nil {
					return int(x)
				}
			}
		}
		t.Fatalf("/metrics has no %s", prefix)
		return 0
	}
	eventually(t, "every instance_created published or counted as dropped", func() bool {
		return len(rec.get(wire.ChannelInstanceCreated))+metric("buffer_full")+metric("publish_failed") == n
	})
	t.Logf("%d published, %d dropped (buffer full)", len(rec.get(wire.ChannelInstanceCreated)), metric("buffer_full"))
	a.Stop(t)
}
