package wiremap_test

import (
	"errors"
	"reflect"
	"testing"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/internal/wiremap"
	"github.com/xcomponent/xcomponent/wire"
)

// A routed message of one runtime reaches the engine of another as the same message: engine →
// wire → bytes → wire → engine.
func TestRoutedMessageRoundTrip(t *testing.T) {
	m := xc.Message{
		ID: "0193f0a0-0000-7000-8000-000000000001", Kind: xc.MessageBroadcast, Component: "Payments",
		Machine: "Payment", State: "Waiting",
		Event: xc.Event{Type: "PAID", Payload: map[string]any{"orderId": "o-1", "amount": 30.0},
			CorrelationID: "0193f0a0-0000-7000-8000-0000000000c0", CausationID: "0193f0a0-0000-7000-8000-0000000000ca",
			Actor: "Orders", Source: xc.SourceCascade, SourceComponent: "Orders"},
		Rules: []xc.Rule{{EventProperty: "orderId", InstanceProperty: "order.id", Operator: component.OpEq, Value: "o-1"},
			{EventProperty: "amount", InstanceProperty: "due", Operator: component.OpLte, Value: 30.0}},
		Origin: xc.SourceCascade, SourceComponent: "Orders", SourceInstanceID: "0193f0a0-0000-7000-8000-0000000000aa",
	}
	channel, v, err := wiremap.MessageToWire(m, "r1", 1767225600000)
	if err != nil || channel != wire.ChannelCrossComponentEvent {
		t.Fatalf("MessageToWire: %s %v", channel, err)
	}
	body, err := wire.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := wire.Decode[wire.CrossComponentEvent](body)
	if err != nil {
		t.Fatal(err)
	}
	got := wiremap.CrossFromWire(cmd, "Payments", wiremap.CrossIDs{ID: m.ID, CorrelationID: cmd.Trace.CorrelationID, CausationID: cmd.Trace.CausationID})

	want := m
	want.Event.Payload = map[string]any{"orderId": "o-1", "amount": 30.0, "_sourceComponent": "Orders"}
	want.Event.Actor = "Orders" // the sender's component
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
}

func TestMessageToWire(t *testing.T) {
	ch, v, err := wiremap.MessageToWire(xc.Message{ID: "m1", Kind: xc.MessageCreate, Component: "Shop", Machine: "Order",
		Event: xc.Event{Type: "ORDER"}, ParentID: "p1"}, "r1", 5)
	if c, ok := v.(wire.CreateInstance); err != nil || ch != wire.ChannelCreateInstance || !ok ||
		c.Context == nil || c.ParentID != "p1" || c.Event.Type != "ORDER" || c.Trace.CommandID != "m1" || c.RuntimeName != "r1" {
		t.Fatalf("create: %s %+v %v", ch, v, err)
	}
	ch, v, err = wiremap.MessageToWire(xc.Message{ID: "m2", Kind: xc.MessageSend, Component: "Shop", InstanceID: "i1",
		Event: xc.Event{Type: "PAY", Source: xc.SourceHook}}, "r1", 5)
	if tr, ok := v.(wire.TriggerEvent); err != nil || ch != wire.ChannelTriggerEvent || !ok ||
		tr.InstanceID != "i1" || tr.Event.ID != "m2" || tr.Event.Source != "hook" || tr.Event.Payload == nil {
		t.Fatalf("send: %s %+v %v", ch, v, err)
	}
	_, _, err = wiremap.MessageToWire(xc.Message{Kind: xc.MessageBroadcast, Rules: []xc.Rule{{EventProperty: "x", Missing: true}}}, "r1", 5)
	if !errors.Is(err, wiremap.ErrNothingToSend) {
		t.Fatalf("missing rule value: %v", err)
	}
}

// xcomponent-ai's variants: matchContext, a rule without value or operator.
func TestCrossFromWireVariants(t *testing.T) {
	got := wiremap.CrossFromWire(wire.CrossComponentEvent{Event: wire.Event{Type: "GO", Payload: map[string]any{"k": "v"}},
		MatchContext: map[string]any{"b": 2.0, "a": 1.0}}, "C", wiremap.CrossIDs{ID: "x"})
	if len(got.Rules) != 2 || got.Rules[0].InstanceProperty != "a" || got.Rules[1].Value != 2.0 ||
		got.Origin != xc.SourceCrossComponent || got.Event.Actor != "broker" {
		t.Fatalf("matchContext: %+v", got)
	}
	got = wiremap.CrossFromWire(wire.CrossComponentEvent{Event: wire.Event{Type: "GO", Payload: map[string]any{"k": "v"}},
		MatchingRules: []wire.MatchingRule{{EventProperty: "k"}}}, "C", wiremap.CrossIDs{ID: "x"})
	if len(got.Rules) != 1 || got.Rules[0].InstanceProperty != "k" || got.Rules[0].Value != "v" {
		t.Fatalf("rule without value: %+v", got.Rules)
	}
}
