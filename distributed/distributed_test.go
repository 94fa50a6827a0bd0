package distributed_test

import (
	"context"
	"encoding/json"
	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/bus/rabbitmq"
	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/distributed/distributedtest"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/wire"
)

const (
	brokerAddr = rmqtest.BrokerAddr
	component  = "Approvals"
	timeout    = 20 * time.Second
)

// vhost gives the test its own vhost and returns its URL.
func vhost(t *testing.T) string {
	_, url := rmqtest.NewVhost(t)
	return url
}

func logger(t *testing.T) *slog.Logger { return distributedtest.Logger(t) }

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	distributedtest.Eventually(t, timeout, what, cond)
}

// recorder keeps the messages received on some channels.
type recorder struct {
	mu   sync.Mutex
	msgs map[string][]bus.Message
}

func (r *recorder) handler(_ context.Context, m bus.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs[m.Channel] = append(r.msgs[m.Channel], m)
	return nil
}

func (r *recorder) get(channel string) []bus.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bus.Message(nil), r.msgs[channel]...)
}

func (r *recorder) reset(channel string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.msgs, channel)
}

// outcomes counts the runtimes' command outcomes, in total and per command id.
type outcomes struct {
	mu   sync.Mutex
	n    map[string]int            // channel + " " + outcome
	byID map[string]map[string]int // channel + " " + command id → outcome → count
}

func (o *outcomes) add(channel, id, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n[channel+" "+outcome]++
	if o.byID == nil {
		o.byID = map[string]map[string]int{}
	}
	k := channel + " " + id
	if o.byID[k] == nil {
		o.byID[k] = map[string]int{}
	}
	o.byID[k][outcome]++
}

// countID is the number of outcomes of command id (as the runtime reports it: a UUID) on
// channel among outcomes.
func (o *outcomes) countID(channel, id string, outcomes ...string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	total := 0
	for _, oc := range outcomes {
		total += o.byID[channel+" "+id][oc]
	}
	return total
}

// handled says whether every command of want (id → copies published) has at least that many
// outcomes among outcomes. At least, not exactly: a partition hand-over (a runtime joining,
// or a peer's heartbeat late on a loaded machine) redelivers the commands committed but not yet
// acknowledged, which are then reported again as duplicates.
func (o *outcomes) handled(channel string, want map[string]int, outcomes ...string) bool {
	for id, copies := range want {
		if o.countID(channel, id, outcomes...) < copies {
			return false
		}
	}
	return true
}

// appliedOnce fails the test unless every command of ids was applied exactly once.
func (o *outcomes) appliedOnce(t *testing.T, channel string, ids []string) {
	t.Helper()
	for _, id := range ids {
		if got := o.countID(channel, id, distributed.OutcomeApplied); got != 1 {
			t.Fatalf("%s command %s applied %d times, want 1", channel, id, got)
		}
	}
}

func (o *outcomes) count(channel string, outcomes ...string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	total := 0
	for _, oc := range outcomes {
		total += o.n[channel+" "+oc]
	}
	return total
}

func publish(t *testing.T, b bus.Bus, channel string, v any, id string) {
	t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := b.Publish(ctx, channel, body, bus.Meta{MessageID: id}); err != nil {
		t.Fatalf("publish %s: %v", channel, err)
	}
}

func queryInt(t *testing.T, db *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// TestTwoRuntimesOneComponent runs two runtimes of one component on one PostgreSQL database
// and one vhost: each command is applied once, events and registry messages are in wire shape.
func TestTwoRuntimesOneComponent(t *testing.T) {
	url := vhost(t)
	dsn := pgtest.NewDatabase(t)

	client, err := rabbitmq.New(rabbitmq.Options{URL: url, Logger: logger(t), MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	rec := &recorder{msgs: map[string][]bus.Message{}}
	for _, ch := range []string{wire.ChannelAnnounce, wire.ChannelShutdown, wire.ChannelStateChange,
		wire.ChannelInstanceCreated, wire.ChannelQueryResponse, wire.ChannelHeartbeat} {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		sub, err := client.Subscribe(ctx, ch, rec.handler)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
	}

	oc := &outcomes{n: map[string]int{}}
	cfg := func(name string) distributed.Config {
		return distributed.Config{ComponentFile: "testdata/approval.yaml", BrokerURL: url, StoreSpec: dsn,
			RuntimeName: name, HeartbeatInterval: 200 * time.Millisecond, Prefetch: 4,
			MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second, Logger: logger(t), OnCommand: oc.add}
	}
	a := distributedtest.Start(t, cfg("runtime-a"))
	b := distributedtest.Start(t, cfg("runtime-b"))
	ids := map[string]bool{a.Info.RuntimeID: true, b.Info.RuntimeID: true}
	if len(ids) != 2 {
		t.Fatalf("runtime ids not distinct: %v", ids)
	}
	for _, id := range []string{a.Info.RuntimeID, b.Info.RuntimeID} {
		if _, err := uuid.Parse(id); err != nil {
			t.Fatalf("runtimeId %q is not a UUID", id)
		}
	}

	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(context.Background()) })

	// Creates: N commands, some published twice with the same message id (a redelivery or a
	// retried publish), plus one for another component (ignored).
	const n = 30
	createIDs := make([]string, n)
	for i := range n {
		createIDs[i] = uuid.NewString()
		publish(t, client, wire.ChannelCreateInstance, wire.CreateInstance{ComponentName: component,
			Context: map[string]any{"n": i}, Timestamp: wire.Now()}, createIDs[i])
	}
	for i := 0; i < n; i += 3 {
		publish(t, client, wire.ChannelCreateInstance, wire.CreateInstance{ComponentName: component,
			Context: map[string]any{"n": i}, Timestamp: wire.Now()}, createIDs[i])
	}
	publish(t, client, wire.ChannelCreateInstance, wire.CreateInstance{ComponentName: "Other", Timestamp: wire.Now()}, uuid.NewString())
	copies := map[string]int{}
	for i, id := range createIDs {
		copies[id] = 1
		if i%3 == 0 {
			copies[id] = 2
		}
	}
	eventually(t, "create commands handled", func() bool {
		return oc.handled(wire.ChannelCreateInstance, copies, distributed.OutcomeApplied, distributed.OutcomeDuplicate)
	})
	oc.appliedOnce(t, wire.ChannelCreateInstance, createIDs)
	if got := oc.count(wire.ChannelCreateInstance, distributed.OutcomeApplied); got != n {
		t.Fatalf("applied creates = %d, want %d", got, n)
	}
	if got := queryInt(t, db, "SELECT count(*) FROM fsm_snapshots"); got != n {
		t.Fatalf("fsm_snapshots rows = %d, want %d", got, n)
	}
	if got := queryInt(t, db, "SELECT count(*) FROM fsm_events WHERE event_type = 'INSTANCE_CREATED' AND id::text = ANY($1)", createIDs); got != n {
		t.Fatalf("creation events carrying the command id = %d, want %d", got, n)
	}
	eventually(t, "unknown-component create dead-lettered", func() bool {
		return oc.count(wire.ChannelCreateInstance, distributed.OutcomeDeadLettered) == 1
	})

	// Triggers: SUBMIT to each instance, each published twice with the same id.
	rows, err := db.Query(context.Background(), "SELECT instance_id::text FROM fsm_snapshots")
	if err != nil {
		t.Fatal(err)
	}
	instances, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	triggers := map[string]int{}
	var triggerIDs []string
	for _, inst := range instances {
		id := uuid.NewString()
		triggers[id], triggerIDs = 2, append(triggerIDs, id)
		cmd := wire.TriggerEvent{InstanceID: inst, Event: wire.Event{Type: "SUBMIT", Payload: map[string]any{"by": "test"}}}
		publish(t, client, wire.ChannelTriggerEvent, cmd, id)
		cmd.ComponentName = component
		publish(t, client, wire.ChannelTriggerEvent, cmd, id)
	}
	eventually(t, "trigger commands handled", func() bool {
		return oc.handled(wire.ChannelTriggerEvent, triggers, distributed.OutcomeApplied, distributed.OutcomeDuplicate, distributed.OutcomeRefused)
	})
	oc.appliedOnce(t, wire.ChannelTriggerEvent, triggerIDs)
	if got := oc.count(wire.ChannelTriggerEvent, distributed.OutcomeApplied); got != n {
		t.Fatalf("applied triggers = %d, want %d", got, n)
	}
	if got := queryInt(t, db, "SELECT count(*) FROM fsm_snapshots WHERE current_state = 'Submitted' AND version = 1 AND event_count = 2"); got != n {
		t.Fatalf("instances Submitted at version 1 = %d, want %d", got, n)
	}
	if got := queryInt(t, db, "SELECT count(*) FROM fsm_events WHERE event_type = 'SUBMIT'"); got != n {
		t.Fatalf("SUBMIT rows in fsm_events = %d, want %d", got, n)
	}

	// state_change events in wire shape, one per applied trigger.
	eventually(t, "state_change events", func() bool { return len(rec.get(wire.ChannelStateChange)) >= n })
	seen := map[string]bool{}
	for _, m := range rec.get(wire.ChannelStateChange) {
		var raw map[string]any
		if err := json.Unmarshal(m.Body, &raw); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"runtimeId", "componentName", "eventType", "timestamp", "data"} {
			if _, ok := raw[k]; !ok {
				t.Fatalf("state_change without %s: %s", k, m.Body)
			}
		}
		env, err := wire.Decode[wire.StateChange](m.Body)
		if err != nil {
			t.Fatal(err)
		}
		d := env.Data
		if !ids[env.RuntimeID] || env.ComponentName != component || env.EventType != wire.EventStateChange || env.Timestamp == 0 ||
			d.MachineName != "Request" || d.PreviousState != "Draft" || d.NewState != "Submitted" ||
			d.Event.Type != "SUBMIT" || d.Event.Payload["by"] != "test" || d.Context == nil || d.PendingTimeouts == nil {
			t.Fatalf("unexpected state_change: %s", m.Body)
		}
		if seen[d.InstanceID] {
			t.Fatalf("two state_change events for instance %s", d.InstanceID)
		}
		seen[d.InstanceID] = true
	}
	if len(seen) != n {
		t.Fatalf("state_change for %d instances, want %d", len(seen), n)
	}
	eventually(t, "instance_created events", func() bool { return len(rec.get(wire.ChannelInstanceCreated)) >= n })
	if got := len(rec.get(wire.ChannelInstanceCreated)); got != n {
		t.Fatalf("instance_created events = %d, want %d", got, n)
	}

	// Registry: heartbeats, discover ⇒ both announce, query_instances ⇒ both answer.
	eventually(t, "heartbeats from both runtimes", func() bool { return fromBoth(t, rec.get(wire.ChannelHeartbeat), ids) })
	rec.reset(wire.ChannelAnnounce)
	publish(t, client, wire.ChannelDiscover, wire.Discover{Type: wire.TypeDiscover, Timestamp: wire.Now()}, uuid.NewString())
	eventually(t, "announces after discover", func() bool { return fromBoth(t, rec.get(wire.ChannelAnnounce), ids) })
	for _, m := range rec.get(wire.ChannelAnnounce) {
		ann, err := wire.Decode[wire.Announce](m.Body)
		if err != nil {
			t.Fatal(err)
		}
		var def map[string]any
		if err := json.Unmarshal(ann.Component, &def); err != nil {
			t.Fatalf("announce component: %v", err)
		}
		if ann.ComponentName != component || def["name"] != component || def["stateMachines"] == nil || def["entryMachine"] != "Request" || ann.Timestamp == 0 {
			t.Fatalf("unexpected announce: %s", m.Body)
		}
	}
	publish(t, client, wire.ChannelQueryInstances, wire.QueryInstances{Type: wire.TypeQueryInstances, Timestamp: wire.Now()}, uuid.NewString())
	eventually(t, "query responses", func() bool { return fromBoth(t, rec.get(wire.ChannelQueryResponse), ids) })
	for _, m := range rec.get(wire.ChannelQueryResponse) {
		resp, err := wire.Decode[wire.QueryResponse](m.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Type != wire.TypeInstances || resp.ComponentName != component || len(resp.Instances) != n {
			t.Fatalf("unexpected query response (%d instances): %.300s", len(resp.Instances), m.Body)
		}
		for _, in := range resp.Instances {
			if in.CurrentState != "Submitted" || in.MachineName != "Request" || in.PendingTimeouts == nil {
				t.Fatalf("unexpected instance in query response: %+v", in)
			}
		}
	}

	// A poison command is dead-lettered, not retried forever nor lost.
	poisonID := uuid.NewString()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := client.Publish(ctx, wire.ChannelCreateInstance, []byte("{not json"), bus.Meta{MessageID: poisonID}); err != nil {
		t.Fatal(err)
	}
	dead := make(chan string, 1)
	dlq, err := client.Consume(ctx, bus.DeadLetterQueue(bus.IngressQueue), nil, func(_ context.Context, m bus.Message) error {
		if m.Headers[bus.HeaderDeadLetterReason] == "" {
			t.Errorf("dead letter %s without a reason: %+v", m.MessageID, m.Headers)
		}
		if m.MessageID == poisonID {
			dead <- m.MessageID
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = dlq.Close() }()
	select {
	case id := <-dead:
		if id != poisonID {
			t.Fatalf("dead letter %s, want %s", id, poisonID)
		}
	case <-ctx.Done():
		t.Fatal("poison command not dead-lettered")
	}

	// Graceful stop ⇒ shutdown messages.
	a.Stop(t)
	b.Stop(t)
	eventually(t, "shutdown messages", func() bool { return fromBoth(t, rec.get(wire.ChannelShutdown), ids) })
}

// fromBoth says whether msgs hold a message (with a runtimeId field) from every runtime of ids.
func fromBoth(t *testing.T, msgs []bus.Message, ids map[string]bool) bool {
	t.Helper()
	got := map[string]bool{}
	for _, m := range msgs {
		var v struct {
			RuntimeID     string `json:"runtimeId"`
			ComponentName string `json:"componentName"`
			Timestamp     int64  `json:"timestamp"`
		}
		if err := json.Unmarshal(m.Body, &v); err != nil {
			t.Fatalf("%s: %v", m.Channel, err)
		}
		if ids[v.RuntimeID] && v.ComponentName == component && v.Timestamp > 0 {
			got[v.RuntimeID] = true
		}
	}
	return len(got) == len(ids)
}
