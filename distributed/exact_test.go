package distributed_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/wire"
)

// TestCommandsKeepNumbersExact: commands published on the broker by anyone (found by
// wire.FuzzDecode) get the same data checks as the HTTP API. An integer beyond 2^53 is refused
// instead of being stored rounded (the runtime decoded commands as float64:
// 9007199254740993 became 9007199254740992), one within the range is stored exactly, and a
// cross-component rule value no store can compare (a NUL character, an integer beyond 2^53) is
// dead-lettered instead of retried forever against PostgreSQL (22P05).
func TestCommandsKeepNumbersExact(t *testing.T) {
	s := newShopTest(t)
	s.runtime("testdata/desk.yaml", "desk-1")
	raw := func(channel, body string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := s.client.Publish(ctx, channel, []byte(body), bus.Meta{MessageID: uuid.NewString()}); err != nil {
			t.Fatal(err)
		}
	}
	raw(wire.ChannelCreateInstance, `{"componentName":"Desk","context":{"name":"big","n":9007199254740993}}`)
	raw(wire.ChannelCreateInstance, `{"componentName":"Desk","context":{"name":"max","n":9007199254740992,"m":-9007199254740992}}`)
	create := wire.ChannelCreateInstance
	eventually(t, "creates handled", func() bool {
		return s.oc.count(create, distributed.OutcomeApplied) == 1 && s.oc.count(create, distributed.OutcomeRefused) == 1
	})
	if n := s.count("SELECT count(*) FROM fsm_snapshots WHERE context->>'name' = 'big'"); n != 0 {
		t.Fatalf("the create with 9007199254740993 made %d instance(s), want it refused", n)
	}
	if n := s.count(`SELECT count(*) FROM fsm_snapshots WHERE context->>'name' = 'max'
		AND context->'n' = '9007199254740992'::jsonb AND context->'m' = '-9007199254740992'::jsonb`); n != 1 {
		t.Fatal("2^53 not stored exactly")
	}
	var id string
	if err := s.db.QueryRow(context.Background(), "SELECT instance_id::text FROM fsm_snapshots WHERE context->>'name' = 'max'").Scan(&id); err != nil {
		t.Fatal(err)
	}
	raw(wire.ChannelTriggerEvent, `{"componentName":"Desk","instanceId":"`+id+`","event":{"type":"NOTE","payload":{"n":-9007199254740993}}}`)
	trigger := wire.ChannelTriggerEvent
	eventually(t, "trigger refused", func() bool { return s.oc.count(trigger, distributed.OutcomeRefused) == 1 })

	cross := wire.ChannelCrossComponentEvent
	raw(cross, `{"targetComponent":"Desk","targetMachine":"Ticket","event":{"type":"NOTE","payload":{}},
		"matchingRules":[{"instanceProperty":"name","operator":"===","value":"a\u0000b"}]}`)
	raw(cross, `{"targetComponent":"Desk","targetMachine":"Ticket","event":{"type":"NOTE","payload":{}},
		"matchContext":{"n":9007199254740993}}`)
	raw(cross, `{"targetComponent":"Desk","targetMachine":"Ticket","event":{"type":"NOTE","payload":{"x":1}},
		"matchingRules":[{"instanceProperty":"n","operator":"===","value":9007199254740992}]}`)
	eventually(t, "cross-component events handled", func() bool {
		return s.oc.count(cross, distributed.OutcomeDeadLettered) == 2 && s.oc.count(cross, distributed.OutcomeApplied) == 1
	})
	if v := s.count("SELECT version FROM fsm_snapshots WHERE instance_id = $1::uuid", id); v != 1 {
		t.Fatalf("version %d after the one applicable NOTE, want 1", v)
	}
}
