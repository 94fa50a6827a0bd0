package distributed

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/wire"
)

type captured struct {
	mu   sync.Mutex
	msgs []bus.Message
}

func (c *captured) handle(_ context.Context, m bus.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
	return nil
}

func (c *captured) all() []bus.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]bus.Message(nil), c.msgs...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func hasKeys(t *testing.T, what string, m map[string]any, want ...string) {
	t.Helper()
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: no %q in %v", what, k, keys(m))
		}
	}
}

// outboxRow is the row an engine writes for m.
func outboxRow(t *testing.T, m xc.Message, at int64) store.Message {
	t.Helper()
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return store.Message{ID: m.ID, Component: "Shop", Kind: m.Kind, Body: body, CreatedAt: at}
}

// TestRelayWireShapes: what the relay publishes has xcomponent-ai's fields (so its runtimes
// apply it) plus our ids, carries the message id as AMQP message_id, and the outbox row goes
// only once the broker has it; a routed message that can reach no instance is not published.
func TestRelayWireShapes(t *testing.T) {
	ctx := context.Background()
	b := bus.NewMemory()
	defer func() { _ = b.Close() }()
	st := store.NewMemory()
	c := &captured{}
	for _, ch := range []string{wire.ChannelCreateInstance, wire.ChannelCrossComponentEvent, wire.ChannelTriggerEvent} {
		sub, err := b.Subscribe(ctx, ch, c.handle)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Close() }()
	}
	r := newRelay(slog.New(slog.NewTextHandler(io.Discard, nil)), b, st, "Shop", "rt-1", time.Hour)
	defer r.close()

	corr, cause, src := uuid.NewString(), uuid.NewString(), uuid.NewString()
	ev := xc.Event{CorrelationID: corr, CausationID: cause, Source: "cross_component", Actor: "Shop"}
	create := xc.Message{ID: uuid.NewString(), Kind: xc.MessageCreate, Component: "Billing", Machine: "Payment",
		Data: map[string]any{"orderId": "o1", "amount": 3}, Origin: "cross_component", SourceComponent: "Shop", SourceInstanceID: src}
	create.Event = ev
	create.Event.Type = "SUBMIT"
	event := xc.Message{ID: uuid.NewString(), Kind: xc.MessageBroadcast, Component: "Billing", Machine: "Payment",
		Rules:  []xc.Rule{{EventProperty: "orderId", InstanceProperty: "orderId", Operator: "===", Value: "o1"}},
		Origin: "cross_component", SourceComponent: "Shop", SourceInstanceID: src}
	event.Event = ev
	event.Event.Type, event.Event.Payload = "CANCEL", map[string]any{"orderId": "o1"}
	send := xc.Message{ID: uuid.NewString(), Kind: xc.MessageSend, Component: "Billing", InstanceID: uuid.NewString(),
		Origin: "hook", SourceComponent: "Shop", SourceInstanceID: src}
	send.Event = ev
	send.Event.Type = "PING"
	nowhere := xc.Message{ID: uuid.NewString(), Kind: xc.MessageBroadcast, Component: "Billing", Machine: "Payment",
		Rules:  []xc.Rule{{EventProperty: "orderId", InstanceProperty: "orderId", Operator: "===", Missing: true}},
		Origin: "cascade", SourceComponent: "Shop", SourceInstanceID: src}
	nowhere.Event = ev
	nowhere.Event.Type = "X"
	msgs := []xc.Message{create, event, send, nowhere}
	var rows []store.Message
	for _, m := range msgs {
		rows = append(rows, outboxRow(t, m, time.Now().UnixMilli()))
	}
	if err := st.Commit(ctx, &store.Commit{Outbox: rows}); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if err := r.Deliver(ctx, m); err != xc.ErrRelayed {
			t.Fatalf("Deliver: %v, want ErrRelayed", err)
		}
	}
	waitFor(t, "outbox emptied", func() bool {
		left, err := st.PendingOutbox(ctx, "Shop", 0)
		return err == nil && len(left) == 0
	})
	// The relay marks a row sent once its publish returned; the subscribers' handlers run
	// after that.
	waitFor(t, "3 messages delivered", func() bool { return len(c.all()) >= 3 })
	got := map[string]bus.Message{}
	for _, m := range c.all() {
		got[m.MessageID] = m
	}
	if len(got) != 3 {
		t.Fatalf("%d messages published, want 3 (the one whose rule has no value is not)", len(got))
	}
	decode := func(m bus.Message) map[string]any {
		var v map[string]any
		if err := json.Unmarshal(m.Body, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	cm := got[create.ID]
	if cm.Channel != wire.ChannelCreateInstance || cm.CorrelationID != corr || cm.Headers["causationId"] != cause {
		t.Fatalf("create: %+v", cm)
	}
	body := decode(cm)
	hasKeys(t, "create_instance", body, "componentName", "machineName", "context", "sourceComponent", "sourceInstanceId", "timestamp", "commandId")
	if body["componentName"] != "Billing" || body["sourceInstanceId"] != src || body["commandId"] != create.ID ||
		body["context"].(map[string]any)["orderId"] != "o1" {
		t.Errorf("create_instance body: %v", body)
	}
	em := got[event.ID]
	body = decode(em)
	hasKeys(t, "cross_component_event", body, "targetComponent", "targetMachine", "event", "matchingRules", "sourceComponent", "sourceInstanceId", "timestamp")
	rules := body["matchingRules"].([]any)
	rule := rules[0].(map[string]any)
	hasKeys(t, "matching rule", rule, "eventProperty", "instanceProperty", "operator", "value")
	if em.Channel != wire.ChannelCrossComponentEvent || rule["value"] != "o1" || body["event"].(map[string]any)["type"] != "CANCEL" {
		t.Errorf("cross_component_event: %s %v", em.Channel, body)
	}
	sm := got[send.ID]
	body = decode(sm)
	hasKeys(t, "trigger_event", body, "componentName", "instanceId", "event")
	if sm.Channel != wire.ChannelTriggerEvent || body["instanceId"] != send.InstanceID {
		t.Errorf("trigger_event: %s %v", sm.Channel, body)
	}
}

// TestRelaySweep: rows older than a sweep period are relayed without anyone calling Deliver
// (their writer died), recent ones are left to their writer, rows for this process's own
// components are handed to the engine.
func TestRelaySweep(t *testing.T) {
	ctx := context.Background()
	b := bus.NewMemory()
	defer func() { _ = b.Close() }()
	st := store.NewMemory()
	c := &captured{}
	sub, err := b.Subscribe(ctx, wire.ChannelCreateInstance, c.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Close() }()
	r := newRelay(slog.New(slog.NewTextHandler(io.Discard, nil)), b, st, "Shop", "rt-1", 50*time.Millisecond)
	defer r.close()
	now := time.Now()
	old := xc.Message{ID: uuid.NewString(), Kind: xc.MessageCreate, Component: "Billing", Machine: "Payment"}
	recent := xc.Message{ID: uuid.NewString(), Kind: xc.MessageCreate, Component: "Billing", Machine: "Payment"}
	own := xc.Message{ID: uuid.NewString(), Kind: xc.MessageSend, InstanceID: uuid.NewString(), Event: xc.Event{Type: "X"}}
	if err := st.Commit(ctx, &store.Commit{Outbox: []store.Message{
		outboxRow(t, old, now.Add(-time.Minute).UnixMilli()),
		outboxRow(t, own, now.Add(-time.Minute).UnixMilli()),
		outboxRow(t, recent, now.Add(time.Hour).UnixMilli()),
	}}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var redelivered []string
	r.startSweep(func(comp string) bool { return comp == "Shop" }, func(m xc.Message) {
		mu.Lock()
		redelivered = append(redelivered, m.ID)
		mu.Unlock()
	})
	waitFor(t, "old row relayed", func() bool {
		left, _ := st.PendingOutbox(ctx, "Shop", 0)
		for _, m := range left {
			if m.ID == old.ID {
				return false
			}
		}
		return true
	})
	waitFor(t, "own row redelivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(redelivered) > 0 && redelivered[0] == own.ID
	})
	msgs := c.all()
	if len(msgs) != 1 || msgs[0].MessageID != old.ID {
		t.Fatalf("published %v, want only the old row", msgs)
	}
	left, _ := st.PendingOutbox(ctx, "Shop", 0)
	ids := map[string]bool{}
	for _, m := range left {
		ids[m.ID] = true
	}
	if !ids[recent.ID] || !ids[own.ID] || len(ids) != 2 {
		t.Fatalf("left in the outbox: %v; want the recent row and the own row (settled by its delivery)", ids)
	}
}

// TestRelayDrain: drain returns once what was handed over is published and marked sent.
func TestRelayDrain(t *testing.T) {
	ctx := context.Background()
	b := bus.NewMemory()
	defer func() { _ = b.Close() }()
	st := store.NewMemory()
	c := &captured{}
	sub, err := b.Subscribe(ctx, wire.ChannelCreateInstance, c.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Close() }()
	r := newRelay(slog.New(slog.NewTextHandler(io.Discard, nil)), b, st, "Shop", "rt-1", time.Hour)
	defer r.close()
	var rows []store.Message
	var msgs []xc.Message
	for range 50 {
		m := xc.Message{ID: uuid.NewString(), Kind: xc.MessageCreate, Component: "Billing", Machine: "Payment", SourceInstanceID: uuid.NewString()}
		msgs = append(msgs, m)
		rows = append(rows, outboxRow(t, m, time.Now().UnixMilli()))
	}
	if err := st.Commit(ctx, &store.Commit{Outbox: rows}); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		_ = r.Deliver(ctx, m)
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r.drain(dctx)
	if dctx.Err() != nil {
		t.Fatal("drain timed out")
	}
	if left, _ := st.PendingOutbox(ctx, "Shop", 0); len(left) != 0 {
		t.Fatalf("%d rows left after drain", len(left))
	}
	waitFor(t, "all published", func() bool { return len(c.all()) == 50 })
}
