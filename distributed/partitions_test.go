package distributed_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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

const counters = "Counters"

// waitReplies waits for the replies to the create and the k TICKs of every instance, and names
// the missing ones on timeout.
func waitReplies(t *testing.T, rep *replies, instances []string, k int) {
	t.Helper()
	ids := []string{}
	for _, id := range instances {
		ids = append(ids, "create-"+id)
		for n := range k {
			ids = append(ids, fmt.Sprintf("tick-%s-%d", id, n))
		}
	}
	missing := func() []string {
		var out []string
		for _, id := range ids {
			if len(rep.get(id)) == 0 {
				out = append(out, id)
			}
		}
		return out
	}
	deadline := time.Now().Add(2 * timeout)
	for m := missing(); len(m) > 0; m = missing() {
		if time.Now().After(deadline) {
			t.Fatalf("no reply to %d commands, e.g. %v", len(m), m[:min(5, len(m))])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// replies records the command replies by command id.
type replies struct {
	mu   sync.Mutex
	by   map[string][]wire.CommandReply
	msgs map[string]map[string]bool // command id → the reply messages' ids (a publish retried after a lost confirm delivers a message twice)
}

func (r *replies) handler(t *testing.T) bus.Handler {
	return func(_ context.Context, m bus.Message) error {
		rep, err := wire.Decode[wire.CommandReply](m.Body)
		if err != nil {
			t.Errorf("reply: %v", err)
			return nil
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.msgs[rep.CommandID] == nil {
			r.msgs[rep.CommandID] = map[string]bool{}
		}
		if r.msgs[rep.CommandID][m.MessageID] {
			return nil // the same reply again
		}
		r.msgs[rep.CommandID][m.MessageID] = true
		r.by[rep.CommandID] = append(r.by[rep.CommandID], rep)
		return nil
	}
}

func (r *replies) get(id string) []wire.CommandReply {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]wire.CommandReply(nil), r.by[id]...)
}

func (r *replies) all() []wire.CommandReply {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []wire.CommandReply
	for _, reps := range r.by {
		out = append(out, reps...)
	}
	return out
}

func newClient(t *testing.T, url string) *rabbitmq.Bus {
	t.Helper()
	client, err := rabbitmq.New(rabbitmq.Options{URL: url, Logger: logger(t), MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func subscribeReplies(t *testing.T, client bus.Bus) *replies {
	t.Helper()
	rep := &replies{by: map[string][]wire.CommandReply{}, msgs: map[string]map[string]bool{}}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sub, err := client.Subscribe(ctx, wire.ChannelCommandReply, rep.handler(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return rep
}

func counterConfig(url, dsn, name string, t *testing.T) distributed.Config {
	return distributed.Config{ComponentFile: "testdata/counter.yaml", BrokerURL: url, StoreSpec: dsn,
		RuntimeName: name, HeartbeatInterval: 200 * time.Millisecond, Partitions: 4, Prefetch: 64,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second, Logger: logger(t)}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkOrder checks, row by row, that each instance's TICK events are 0..k-1 in version order,
// each once.
func checkOrder(t *testing.T, db *pgx.Conn, instances []string, k int) {
	t.Helper()
	for _, id := range instances {
		rows, err := db.Query(context.Background(),
			"SELECT (event_payload->>'n')::int FROM fsm_events WHERE instance_id = $1 AND event_type = 'TICK' ORDER BY seq", id)
		if err != nil {
			t.Fatal(err)
		}
		ns, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			t.Fatal(err)
		}
		if len(ns) != k {
			t.Fatalf("instance %s: %d TICK rows, want %d: %v", id, len(ns), k, ns)
		}
		for i, n := range ns {
			if n != i {
				t.Fatalf("instance %s: TICKs applied in the order %v, want 0..%d", id, ns, k-1)
			}
		}
	}
}

// TestPartitionsOrderRepliesAndSharing: two runtimes of one component share its partitions;
// commands published straight to the partitions and on the xcomponent-ai channels (through
// the ingress queue) are applied once each, in order per instance, and answered.
func TestPartitionsOrderRepliesAndSharing(t *testing.T) {
	url := vhost(t)
	dsn := pgtest.NewDatabase(t)
	client := newClient(t, url)
	rep := subscribeReplies(t, client)

	a := distributedtest.Start(t, counterConfig(url, dsn, "runtime-a", t))
	b := distributedtest.Start(t, counterConfig(url, dsn, "runtime-b", t))

	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	const m, k = 24, 15 // instances, TICKs per instance
	instances := make([]string, m)
	var wg sync.WaitGroup
	errs := make(chan error, m)
	for i := range m {
		wg.Add(1)
		go func() {
			defer wg.Done()
			viaIngress := i%2 == 1
			id := uuid.NewString()
			instances[i] = id
			pub := func(kind string, v any, cmdID string) error {
				body := mustJSON(t, v)
				if viaIngress {
					return client.Publish(ctx, kind, body, bus.Meta{MessageID: cmdID})
				}
				return bus.PublishCommand(ctx, client, counters, id, kind, body, bus.Meta{MessageID: cmdID})
			}
			create := wire.CreateInstance{ComponentName: counters, Context: map[string]any{"i": i}, InstanceID: id, Timestamp: wire.Now()}
			if err := pub(wire.ChannelCreateInstance, create, "create-"+id); err != nil {
				errs <- err
				return
			}
			for n := range k {
				tick := wire.TriggerEvent{InstanceID: id, Event: wire.Event{Type: "TICK", Payload: map[string]any{"n": n}}}
				if n%2 == 0 {
					tick.ComponentName = counters
				}
				if err := pub(wire.ChannelTriggerEvent, tick, fmt.Sprintf("tick-%s-%d", id, n)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitReplies(t, rep, instances, k)

	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(context.Background()) })
	checkOrder(t, db, instances, k)

	// Replies are at-least-once: a command redelivered by a partition hand-over (committed, its
	// acknowledgement not yet sent) is answered again as a duplicate. Each command must be
	// applied exactly once.
	by := map[string]int{}
	applied := map[string]int{}
	for _, r := range rep.all() {
		if (r.Status != wire.ReplyApplied && r.Status != wire.ReplyDuplicate) || r.Type != wire.TypeCommandReply || r.ComponentName != counters || r.Instance == nil || r.Timestamp == 0 {
			t.Fatalf("unexpected reply %+v", r)
		}
		if r.Status == wire.ReplyApplied {
			by[r.RuntimeID]++
			applied[r.CommandID]++
		}
	}
	appliedReply := func(id string) []wire.CommandReply {
		var out []wire.CommandReply
		for _, r := range rep.get(id) {
			if r.Status == wire.ReplyApplied {
				out = append(out, r)
			}
		}
		return out
	}
	for _, id := range instances {
		r := appliedReply("create-" + id)
		if len(r) != 1 || r[0].Instance.ID != id || r[0].Instance.CurrentState != "Counting" || r[0].Command != wire.ChannelCreateInstance {
			t.Fatalf("create reply for %s: %+v", id, rep.get("create-"+id))
		}
		last := appliedReply(fmt.Sprintf("tick-%s-%d", id, k-1))
		if len(last) != 1 || last[0].Instance.Version != int64(k) || last[0].PreviousState != "Counting" || last[0].Instance.Context["n"] != float64(k-1) {
			t.Fatalf("last tick reply for %s: %+v", id, rep.get(fmt.Sprintf("tick-%s-%d", id, k-1)))
		}
		for n := range k {
			if c := applied[fmt.Sprintf("tick-%s-%d", id, n)]; c != 1 {
				t.Fatalf("tick %d of %s answered applied %d times", n, id, c)
			}
		}
	}
	if len(by) != 2 || by[a.Info.RuntimeID] == 0 || by[b.Info.RuntimeID] == 0 {
		t.Fatalf("commands applied per runtime: %v (runtimes %s, %s): the partitions are not shared", by, a.Info.RuntimeID, b.Info.RuntimeID)
	}

	// A command published again with its id is a duplicate; refusals and dead letters are
	// answered with their reason.
	tick := wire.TriggerEvent{ComponentName: counters, InstanceID: instances[0], Event: wire.Event{Type: "TICK", Payload: map[string]any{"n": 0}}}
	before := len(rep.get(fmt.Sprintf("tick-%s-0", instances[0])))
	if err := bus.PublishCommand(ctx, client, counters, instances[0], wire.ChannelTriggerEvent, mustJSON(t, tick), bus.Meta{MessageID: fmt.Sprintf("tick-%s-0", instances[0])}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "duplicate reply", func() bool { return len(rep.get(fmt.Sprintf("tick-%s-0", instances[0]))) == before+1 })
	if r := rep.get(fmt.Sprintf("tick-%s-0", instances[0]))[before]; r.Status != wire.ReplyDuplicate || r.Instance == nil || r.Instance.Version != int64(k) {
		t.Fatalf("duplicate reply: %+v", r)
	}
	checkOrder(t, db, instances[:1], k)

	unknown := uuid.NewString()
	for _, c := range []struct {
		id, channel, status, code string
		body                      any
		direct                    bool
	}{
		{"refused-1", wire.ChannelTriggerEvent, wire.ReplyRefused, "not_found", wire.TriggerEvent{ComponentName: counters, InstanceID: unknown, Event: wire.Event{Type: "TICK"}}, true},
		{"refused-2", wire.ChannelTriggerEvent, wire.ReplyRefused, "not_accepted", wire.TriggerEvent{ComponentName: counters, InstanceID: instances[1], Event: wire.Event{Type: "NOPE"}}, false},
		{"dead-1", wire.ChannelTriggerEvent, wire.ReplyDeadLettered, "not_found", wire.TriggerEvent{InstanceID: unknown, Event: wire.Event{Type: "TICK"}}, false},
		{"dead-2", wire.ChannelCreateInstance, wire.ReplyDeadLettered, "not_found", wire.CreateInstance{ComponentName: "NoSuchComponent", Timestamp: wire.Now()}, false},
		{"dead-3", wire.ChannelTriggerEvent, wire.ReplyDeadLettered, "invalid", map[string]any{"instanceId": 42}, false},
	} {
		body := mustJSON(t, c.body)
		if c.direct {
			err = bus.PublishCommand(ctx, client, counters, unknown, c.channel, body, bus.Meta{MessageID: c.id})
		} else {
			err = client.Publish(ctx, c.channel, body, bus.Meta{MessageID: c.id})
		}
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "reply to "+c.id, func() bool { return len(rep.get(c.id)) == 1 })
		r := rep.get(c.id)[0]
		if r.Status != c.status || r.Code != c.code || r.Error == "" {
			t.Fatalf("%s: reply %+v, want %s/%s with a reason", c.id, r, c.status, c.code)
		}
	}
	// The dead letters are in the ingress's dead-letter queue, once each, with their reason.
	dead := map[string]string{}
	var dmu sync.Mutex
	sub, err := client.Consume(ctx, bus.DeadLetterQueue(bus.IngressQueue), nil, func(_ context.Context, m bus.Message) error {
		dmu.Lock()
		defer dmu.Unlock()
		if _, dup := dead[m.MessageID]; dup {
			t.Errorf("dead letter %s twice", m.MessageID)
		}
		dead[m.MessageID] = m.Headers[bus.HeaderDeadLetterReason]
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Close() }()
	eventually(t, "dead letters", func() bool {
		dmu.Lock()
		defer dmu.Unlock()
		return len(dead) == 3
	})
	dmu.Lock()
	for id, reason := range dead {
		if !strings.HasPrefix(id, "dead-") || reason == "" {
			t.Fatalf("dead letter %s with reason %q", id, reason)
		}
	}
	dmu.Unlock()
}

// A runtime configured with another partition count than the running ones is refused.
func TestPartitionCountMismatch(t *testing.T) {
	url := vhost(t)
	dsn := pgtest.NewDatabase(t)
	distributedtest.Start(t, counterConfig(url, dsn, "runtime-a", t))
	cfg := counterConfig(url, dsn, "runtime-b", t)
	cfg.Partitions = 8
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := distributed.Run(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "partition count") {
		t.Fatalf("Run with 8 partitions next to 4: %v", err)
	}
}

// Commands for a component with no live runtime expire to its dead-letter queue with the
// reason, instead of piling up.
func TestCommandsExpireWithoutRuntime(t *testing.T) {
	url := vhost(t)
	dsn := pgtest.NewDatabase(t)
	cfg := counterConfig(url, dsn, "runtime-a", t)
	cfg.CommandTTL = 300 * time.Millisecond
	distributedtest.Start(t, cfg).Stop(t)

	client := newClient(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	id := uuid.NewString()
	tick := wire.TriggerEvent{ComponentName: counters, InstanceID: id, Event: wire.Event{Type: "TICK"}}
	if err := bus.PublishCommand(ctx, client, counters, id, wire.ChannelTriggerEvent, mustJSON(t, tick), bus.Meta{MessageID: "expiring"}); err != nil {
		t.Fatal(err)
	}
	got := make(chan bus.Message, 1)
	sub, err := client.Consume(ctx, bus.DeadLetterQueue(bus.CommandQueue(counters)), nil, func(_ context.Context, m bus.Message) error {
		got <- m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Close() }()
	select {
	case m := <-got:
		if m.MessageID != "expiring" || !strings.Contains(m.Headers[bus.HeaderDeadLetterReason], "expired") ||
			m.Headers[bus.HeaderCommand] != wire.ChannelTriggerEvent {
			t.Fatalf("dead letter %s, headers %v", m.MessageID, m.Headers)
		}
	case <-ctx.Done():
		t.Fatal("command did not expire to the dead-letter queue")
	}
}
