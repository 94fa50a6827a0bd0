package wire

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func roundTrip[T any](t *testing.T, v T) {
	t.Helper()
	b, err := Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode[T](b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, v) {
		t.Fatalf("round trip of %T:\n got %#v\nwant %#v\njson %s", v, got, v, b)
	}
}

var ev = Event{Type: "PAY", Payload: map[string]any{"amount": 12.5, "orderId": "o-1"}, Timestamp: 1700000000123,
	ID: "e1", CorrelationID: "c1", CausationID: "k1", Actor: "alice", Source: "api"}
var tr = Trace{CommandID: "cmd-1", CorrelationID: "corr-1", CausationID: "cause-1"}

func TestRoundTrips(t *testing.T) {
	roundTrip(t, Announce{RuntimeID: "r1", ComponentName: "Orders", Component: json.RawMessage(`{"name":"Orders","stateMachines":[{"name":"Order","initialState":"Draft","x-unknown":[1,2]}]}`),
		Host: "h", Port: 3000, Timestamp: 1, RuntimeName: "runtime-1", Version: "v1", Status: "ready"})
	roundTrip(t, Heartbeat{RuntimeID: "r1", ComponentName: "Orders", Timestamp: 2, RuntimeName: "n", Version: "v", Status: "ready"})
	roundTrip(t, Shutdown{RuntimeID: "r1", ComponentName: "Orders", Timestamp: 3})
	roundTrip(t, Discover{Type: TypeDiscover, Timestamp: 4, Trace: tr})
	roundTrip(t, QueryInstances{Type: TypeQueryInstances, Timestamp: 5, Trace: tr})
	roundTrip(t, QueryResponse{Type: TypeInstances, RuntimeID: "r1", ComponentName: "Orders", Timestamp: 6, RuntimeName: "n", Trace: tr,
		Instances: []InstanceSnapshot{{ID: "i1", MachineName: "Order", CurrentState: "Draft", Context: map[string]any{"n": 1.0},
			PendingTimeouts: []PendingTimeout{{"event": "TIMEOUT", "dueAt": 1.7e12}}, Status: "active", Version: 3}}})
	roundTrip(t, StateChange{RuntimeID: "r1", ComponentName: "Orders", EventType: EventStateChange, Timestamp: 7, RuntimeName: "n", Trace: tr,
		Data: StateChangeData{InstanceID: "i1", MachineName: "Order", PreviousState: "Draft", NewState: "Paid", Event: ev,
			Context: map[string]any{"a": "b"}, PendingTimeouts: []PendingTimeout{}, Status: "active", Version: 4}})
	roundTrip(t, InstanceCreated{RuntimeID: "r1", ComponentName: "Orders", EventType: EventInstanceCreated, Timestamp: 8,
		Data: InstanceCreatedData{InstanceID: "i1", MachineName: "Order", CurrentState: "Draft", Context: map[string]any{},
			Status: "active", Version: 1, ParentID: "p", SourceComponent: "S", SourceInstanceID: "si"}})
	roundTrip(t, InstanceCompleted{RuntimeID: "r1", ComponentName: "Orders", EventType: EventInstanceCompleted, Timestamp: 9,
		Data: InstanceCompletedData{InstanceID: "i1", MachineName: "Order", FinalState: "Done", Context: map[string]any{"x": true}, Status: "completed", Version: 9}})
	roundTrip(t, TimeoutTriggered{RuntimeID: "r1", ComponentName: "Orders", EventType: EventTimeoutTriggered, Timestamp: 10,
		Data: TimeoutTriggeredData{InstanceID: "i1", MachineName: "Order", Event: Event{Type: "TIMEOUT", Payload: map[string]any{}}, FromState: "A", ToState: "B", Version: 2}})
	roundTrip(t, TriggerEvent{ComponentName: "Orders", InstanceID: "i1", Event: ev, Timestamp: 11, RuntimeName: "n", Trace: tr})
	roundTrip(t, CreateInstance{ComponentName: "Orders", MachineName: "Order", Context: map[string]any{"orderId": "o-1"}, Event: &ev,
		SourceComponent: "Shop", SourceInstanceID: "s1", Timestamp: 12, RuntimeName: "n", InstanceID: "i9", ParentID: "p1", Trace: tr})
	roundTrip(t, CrossComponentEvent{TargetComponent: "Orders", TargetMachine: "Order", Event: ev,
		MatchingRules:   []MatchingRule{{EventProperty: "orderId", InstanceProperty: "id", Operator: "===", Value: "o-1"}, {InstanceProperty: "n", Operator: ">", Value: 3.0}},
		SourceComponent: "Payments", SourceInstanceID: "p1", Timestamp: 13, RuntimeName: "n", Trace: tr})
}

func keys(t *testing.T, v any) []string {
	t.Helper()
	b, err := Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Without our additions, the encoded messages have exactly TS's keys, plus the one addition
// always sent: the version of the fsm:events:* data (0 is a version: an instance's creation).
func TestEncodedKeysAreTS(t *testing.T) {
	cases := []struct {
		v    any
		want string
	}{
		{Announce{}, "component componentName host port runtimeId timestamp"},
		{Heartbeat{}, "componentName runtimeId timestamp"},
		{Shutdown{}, "componentName runtimeId timestamp"},
		{Discover{Type: TypeDiscover}, "timestamp type"},
		{QueryInstances{Type: TypeQueryInstances}, "timestamp type"},
		{QueryResponse{}, "componentName instances runtimeId timestamp type"},
		{InstanceSnapshot{}, "context currentState id machineName pendingTimeouts"},
		{StateChange{}, "componentName data eventType runtimeId timestamp"},
		{StateChangeData{}, "context event instanceId machineName newState pendingTimeouts previousState version"},
		{InstanceCreatedData{}, "context currentState instanceId machineName version"},
		{InstanceCompletedData{}, "context finalState instanceId machineName version"},
		{TimeoutTriggeredData{}, "event fromState instanceId machineName toState version"},
		{Event{}, "payload type"},
		{TriggerEvent{}, "event instanceId"},
		{CreateInstance{}, "componentName context timestamp"},
		{CrossComponentEvent{}, "event matchingRules sourceComponent sourceInstanceId targetComponent targetMachine timestamp"},
		{MatchingRule{}, "eventProperty instanceProperty operator value"},
	}
	for _, c := range cases {
		if got := strings.Join(keys(t, c.v), " "); got != c.want {
			t.Errorf("%T keys = %q, want %q", c.v, got, c.want)
		}
	}
}

func TestRoutingKey(t *testing.T) {
	if got := RoutingKey(ChannelTriggerEvent); got != "fsm.commands.trigger_event" {
		t.Fatalf("RoutingKey = %q", got)
	}
	if len(Channels()) != 13 {
		t.Fatalf("Channels() has %d entries", len(Channels()))
	}
	for _, c := range Channels() {
		if strings.Contains(RoutingKey(c), ":") || ChannelOf(RoutingKey(c)) != c {
			t.Errorf("bad routing key for %s", c)
		}
	}
}

// Messages as xcomponent-ai sends them: none of our additions, sometimes extra fields.
func TestDecodeTSMessages(t *testing.T) {
	a, err := Decode[Announce]([]byte(`{"runtimeId":"6f1c1a0e-8a4e-4c1e-9d55-1f0c2b7e9a10","componentName":"OrderComponent",
		"component":{"name":"OrderComponent","entryMachine":"Order","stateMachines":[{"name":"Order","initialState":"Created",
		"states":[{"name":"Created","type":"entry"},{"name":"Done","type":"final"}],"transitions":[{"from":"Created","to":"Done","event":"COMPLETE"}]}]},
		"host":"localhost","port":0,"timestamp":1732700000000}`))
	if err != nil {
		t.Fatal(err)
	}
	if a.ComponentName != "OrderComponent" || a.Port != 0 || a.Timestamp != 1732700000000 || a.RuntimeName != "" ||
		!strings.Contains(string(a.Component), `"entryMachine":"Order"`) {
		t.Fatalf("announce: %+v", a)
	}

	h, err := Decode[Shutdown]([]byte(`{"runtimeId":"r","componentName":"C","timestamp":1732700000001}`))
	if err != nil || h.RuntimeID != "r" || h.Timestamp != 1732700000001 {
		t.Fatalf("shutdown: %+v %v", h, err)
	}

	d, err := Decode[Discover]([]byte(`{"type":"discover","timestamp":1732700000002}`))
	if err != nil || d.Type != TypeDiscover || d.CommandID != "" {
		t.Fatalf("discover: %+v %v", d, err)
	}
	q, err := Decode[QueryInstances]([]byte(`{"type":"query_all_instances","timestamp":1}`))
	if err != nil || q.Type != TypeQueryInstances {
		t.Fatalf("query: %+v %v", q, err)
	}

	r, err := Decode[QueryResponse]([]byte(`{"type":"instances","runtimeId":"r","componentName":"C","instances":[
		{"id":"i1","machineName":"Order","currentState":"Created","context":{"orderId":"o1","amount":10},"pendingTimeouts":[{"event":"TIMEOUT","remaining":500}]}],
		"timestamp":2}`))
	if err != nil || len(r.Instances) != 1 || r.Instances[0].Context["amount"] != 10.0 || r.Instances[0].PendingTimeouts[0]["event"] != "TIMEOUT" {
		t.Fatalf("response: %+v %v", r, err)
	}

	body := []byte(`{"runtimeId":"r","componentName":"C","eventType":"state_change","data":{"instanceId":"i1","machineName":"Order",
		"previousState":"Created","newState":"Done","event":{"type":"COMPLETE","payload":{},"timestamp":3},"context":{"x":1},"pendingTimeouts":[]},
		"timestamp":4,"somethingNew":true}`)
	peek, err := Decode[Envelope[json.RawMessage]](body)
	if err != nil || peek.EventType != EventStateChange {
		t.Fatalf("peek: %+v %v", peek, err)
	}
	sc, err := Decode[StateChange](body)
	if err != nil || sc.Data.NewState != "Done" || sc.Data.Event.Type != "COMPLETE" || sc.Data.Event.Timestamp != 3 || sc.Data.Version != 0 {
		t.Fatalf("state change: %+v %v", sc, err)
	}
	ic, err := Decode[InstanceCreated]([]byte(`{"runtimeId":"r","componentName":"C","eventType":"instance_created",
		"data":{"instanceId":"i1","machineName":"Order","currentState":"Created","context":{}},"timestamp":5}`))
	if err != nil || ic.Data.CurrentState != "Created" {
		t.Fatalf("created: %+v %v", ic, err)
	}
	cc, err := Decode[InstanceCompleted]([]byte(`{"runtimeId":"r","componentName":"C","eventType":"instance_completed",
		"data":{"instanceId":"i1","machineName":"Order","finalState":"Done","context":null},"timestamp":6}`))
	if err != nil || cc.Data.FinalState != "Done" {
		t.Fatalf("completed: %+v %v", cc, err)
	}

	// trigger_event without componentName or timestamp, event without timestamp.
	te, err := Decode[TriggerEvent]([]byte(`{"instanceId":"i1","event":{"type":"COMPLETE","payload":{"by":"ui"}}}`))
	if err != nil || te.ComponentName != "" || te.Event.Payload["by"] != "ui" || te.Timestamp != 0 {
		t.Fatalf("trigger: %+v %v", te, err)
	}
	// create_instance without machineName.
	ci, err := Decode[CreateInstance]([]byte(`{"componentName":"C","context":{"orderId":"o1"},"sourceComponent":"S","sourceInstanceId":"s1","timestamp":7}`))
	if err != nil || ci.MachineName != "" || ci.Event != nil || ci.Context["orderId"] != "o1" {
		t.Fatalf("create: %+v %v", ci, err)
	}
	x, err := Decode[CrossComponentEvent]([]byte(`{"targetComponent":"Orders","targetMachine":"Order",
		"event":{"type":"PAYMENT_CONFIRMED","payload":{"orderId":"o1"},"timestamp":8},
		"matchingRules":[{"eventProperty":"orderId","instanceProperty":"orderId","operator":"===","value":"o1"}],
		"sourceComponent":"Payments","sourceInstanceId":"p1","timestamp":9}`))
	if err != nil || len(x.MatchingRules) != 1 || x.MatchingRules[0].Value != "o1" || x.CommandID != "" {
		t.Fatalf("cross: %+v %v", x, err)
	}
	// The older TS shape: matchContext instead of matchingRules.
	x2, err := Decode[CrossComponentEvent]([]byte(`{"targetComponent":"Orders","targetMachine":"Order","event":{"type":"E"},
		"matchContext":{"orderId":"o1"},"sourceComponent":"P","sourceInstanceId":"p1","timestamp":9}`))
	if err != nil || x2.MatchContext["orderId"] != "o1" || x2.MatchingRules != nil {
		t.Fatalf("cross (matchContext): %+v %v", x2, err)
	}

	if _, err := Decode[TriggerEvent]([]byte(`{"instanceId":`)); err == nil {
		t.Fatal("truncated JSON decoded")
	}
}

// xcomponent-ai reads event.payload without checking: it is sent ({}) even when empty.
func TestEventPayloadAlwaysSent(t *testing.T) {
	for _, e := range []Event{{Type: "GO"}, {Type: "GO", Payload: map[string]any{}}} {
		b, err := Encode(StateChangeData{Event: e})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"event":{"type":"GO","payload":{}}`) {
			t.Fatalf("payload %v encoded as %s", e.Payload, b)
		}
	}
}
