package distributed_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/distributed/distributedtest"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/wire"
)

// A command with xc-reply: none is applied (its state_change says so) and not answered, nor is
// a create without any id from the xcomponent-ai channels; the others still are. Absence is
// checked behind a later command of the same instance, whose reply comes after.
func TestReplyNone(t *testing.T) {
	url := vhost(t)
	dsn := pgtest.NewDatabase(t)
	client := newClient(t, url)
	rep := subscribeReplies(t, client)
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	created := make(chan string, 4)
	s, err := client.Subscribe(ctx, wire.ChannelInstanceCreated, func(_ context.Context, m bus.Message) error {
		var v struct {
			Data struct {
				InstanceID string         `json:"instanceId"`
				Context    map[string]any `json:"context"`
			} `json:"data"`
		}
		if json.Unmarshal(m.Body, &v) == nil && v.Data.Context["k"] == "no-id" {
			created <- v.Data.InstanceID
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	distributedtest.Start(t, counterConfig(url, dsn, "runtime-a", t))

	id := uuid.NewString()
	createID, silentID, tickID := uuid.NewString(), uuid.NewString(), uuid.NewString()
	publish := func(kind string, v any, meta bus.Meta) {
		t.Helper()
		if err := bus.PublishCommand(ctx, client, counters, id, kind, mustJSON(t, v), meta); err != nil {
			t.Fatal(err)
		}
	}
	publish(wire.ChannelCreateInstance, wire.CreateInstance{ComponentName: counters, InstanceID: id, Context: map[string]any{}}, bus.Meta{MessageID: createID})
	publish(wire.ChannelTriggerEvent, wire.TriggerEvent{ComponentName: counters, InstanceID: id, Event: wire.Event{Type: "TICK", Payload: map[string]any{"n": 0}}},
		bus.Meta{MessageID: silentID, Headers: map[string]string{bus.HeaderReply: bus.ReplyNone}})
	publish(wire.ChannelTriggerEvent, wire.TriggerEvent{ComponentName: counters, InstanceID: id, Event: wire.Event{Type: "TICK", Payload: map[string]any{"n": 1}}},
		bus.Meta{MessageID: tickID})
	eventually(t, "the reply to the second TICK", func() bool { return len(rep.get(tickID)) > 0 })
	if len(rep.get(createID)) == 0 {
		t.Fatal("the create was not answered")
	}
	if r := rep.get(silentID); len(r) != 0 {
		t.Fatalf("the TICK with xc-reply: none was answered: %+v", r)
	}
	if r := rep.get(tickID)[0]; r.Status != wire.ReplyApplied || r.Instance == nil || r.Instance.Version != 2 {
		t.Fatalf("second TICK: %+v, want applied at version 2 (the silent TICK applied before it)", r)
	}

	// A create without any id through the xcomponent-ai channel (as its dashboard sends it).
	body := mustJSON(t, wire.CreateInstance{ComponentName: counters, Context: map[string]any{"k": "no-id"}, Timestamp: wire.Now()})
	if err := client.Publish(ctx, wire.ChannelCreateInstance, body, bus.Meta{}); err != nil {
		t.Fatal(err)
	}
	var noID string
	select {
	case noID = <-created:
	case <-ctx.Done():
		t.Fatal("the create without id was not applied")
	}
	tick := uuid.NewString()
	if err := bus.PublishCommand(ctx, client, counters, noID, wire.ChannelTriggerEvent,
		mustJSON(t, wire.TriggerEvent{ComponentName: counters, InstanceID: noID, Event: wire.Event{Type: "TICK", Payload: map[string]any{"n": 0}}}),
		bus.Meta{MessageID: tick}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the reply to the TICK of the instance created without id", func() bool { return len(rep.get(tick)) > 0 })
	for _, r := range rep.all() {
		if r.Command == wire.ChannelCreateInstance && r.Instance != nil && r.Instance.ID == noID {
			t.Fatalf("the create without id was answered: %+v", r)
		}
	}
}
