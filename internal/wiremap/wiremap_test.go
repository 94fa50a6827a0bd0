package wiremap_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/clock"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/internal/wiremap"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/wire"
)

const orders = `
name: Orders
entryMachine: Order
stateMachines:
  - name: Order
    initialState: Draft
    states: [{name: Draft}, {name: Placed}, {name: Done, type: final}]
    transitions:
      - {from: Draft, to: Placed, event: PLACE}
      - {from: Placed, to: Done, event: FINISH}
      - {from: Placed, to: Done, event: EXPIRE, type: timeout, timeoutMs: 60000}
`

var origin = wiremap.Origin{RuntimeID: "rt-1", RuntimeName: "orders-a", Component: "Orders"}

// engineEvents runs an order through the engine and returns the runtime events it emitted.
func engineEvents(t *testing.T) []xc.RuntimeEvent {
	t.Helper()
	comp, err := component.Parse([]byte(orders), "orders.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eng := xc.New(xc.Options{Clock: clock.NewFake(time.UnixMilli(1767225600000))})
	t.Cleanup(func() { _ = eng.Close(context.Background()) })
	ctx := context.Background()
	if err := eng.Load(ctx, comp); err != nil {
		t.Fatal(err)
	}
	events, stop := eng.Subscribe(64)
	defer stop()
	in, err := eng.Create(ctx, xc.CreateRequest{Component: "Orders", Data: map[string]any{"orderId": "o-1", "amount": 12.5}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Send(ctx, in.ID, xc.Event{Type: "PLACE", Payload: map[string]any{"by": "alice"}, CorrelationID: "corr-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Send(ctx, in.ID, xc.Event{Type: "FINISH"}); err != nil {
		t.Fatal(err)
	}
	var out []xc.RuntimeEvent
	deadline := time.After(10 * time.Second)
	for len(out) < 4 { // created, 2 state changes, completed
		select {
		case ev := <-events:
			out = append(out, ev)
		case <-deadline:
			t.Fatalf("only %d runtime events", len(out))
		}
	}
	return out
}

// carried is what the protocol keeps of a runtime event: the event's type, payload ({} when
// empty), ids, actor and source (not its sourceComponent); contexts as {} when empty.
func carried(ev xc.RuntimeEvent) xc.RuntimeEvent {
	keep := func(e xc.Event) xc.Event {
		if e.Payload == nil {
			e.Payload = map[string]any{}
		}
		e.SourceComponent = ""
		return e
	}
	ctxOf := func(m map[string]any) map[string]any {
		if m == nil {
			return map[string]any{}
		}
		return m
	}
	switch d := ev.Data.(type) {
	case xc.StateChanged:
		d.Event, d.Context = keep(d.Event), ctxOf(d.Context)
		ev.Data = d
	case xc.TimeoutFired:
		d.Event = keep(d.Event)
		ev.Data = d
	case xc.InstanceCreated:
		d.Context = ctxOf(d.Context)
		ev.Data = d
	case xc.InstanceCompleted:
		d.Context = ctxOf(d.Context)
		ev.Data = d
	}
	return ev
}

// roundTrip sends ev through the wire: ToWire, Encode, Decode.
func roundTrip(t *testing.T, ev xc.RuntimeEvent) (wiremap.Incoming, []byte) {
	t.Helper()
	out, ok := wiremap.ToWire(ev, origin, 1)
	if !ok {
		t.Fatalf("%s not carried", ev.Kind())
	}
	body, err := wire.Encode(out.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	in, err := wiremap.Decode(out.Channel, body)
	if err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if in.RuntimeID != origin.RuntimeID || in.RuntimeName != origin.RuntimeName {
		t.Fatalf("origin %q %q", in.RuntimeID, in.RuntimeName)
	}
	return in, body
}

func TestEngineEventsRoundTrip(t *testing.T) {
	evs := engineEvents(t)
	wantKinds := []xc.RuntimeEventKind{xc.EvInstanceCreated, xc.EvStateChange, xc.EvStateChange, xc.EvInstanceCompleted}
	for i, ev := range evs {
		if ev.Kind() != wantKinds[i] {
			t.Fatalf("event %d is %s, want %s", i, ev.Kind(), wantKinds[i])
		}
		in, body := roundTrip(t, ev)
		if want := carried(ev); !reflect.DeepEqual(in.Event, want) {
			t.Errorf("%s round trip:\n got %#v\nwant %#v\nbody %s", ev.Kind(), in.Event, want, body)
		}
	}
	// The engine numbers every event with the instance's version after it.
	versions := []int64{
		evs[0].Data.(xc.InstanceCreated).Version, evs[1].Data.(xc.StateChanged).Version,
		evs[2].Data.(xc.StateChanged).Version, evs[3].Data.(xc.InstanceCompleted).Version,
	}
	if !reflect.DeepEqual(versions, []int64{0, 1, 2, 2}) {
		t.Fatalf("versions %v, want [0 1 2 2]", versions)
	}
	sc := evs[1].Data.(xc.StateChanged)
	if sc.Event.CorrelationID != "corr-1" || sc.StateType != component.StateRegular || sc.Status != store.StatusActive {
		t.Fatalf("state change %+v", sc)
	}
}

func TestTimeoutAndFullStateChangeRoundTrip(t *testing.T) {
	pending := []xc.PendingTimeout{{Event: "EXPIRE", TargetState: "Done", DueAt: 1767225660000, RemainingMs: 60000, TotalMs: 60000, Kind: "timeout"}}
	evs := []xc.RuntimeEvent{
		{Component: "Orders", InstanceID: "i-1", Timestamp: 1767225600000, Data: xc.StateChanged{
			InstanceID: "i-1", MachineName: "Order", PreviousState: "Draft", NewState: "Placed", StateType: component.StateRegular,
			Event:   xc.Event{Type: "PLACE", Payload: map[string]any{"n": 2.0}, ID: "e-1", CorrelationID: "c-1"},
			Context: map[string]any{"orderId": "o-1"}, PendingTimeouts: pending, Status: store.StatusActive, Version: 7}},
		{Component: "Orders", InstanceID: "i-1", Timestamp: 1767225660000, Data: xc.TimeoutFired{
			InstanceID: "i-1", MachineName: "Order", Event: xc.Event{Type: "EXPIRE", ID: "e-2", CorrelationID: "c-1"},
			FromState: "Placed", ToState: "Done", Version: 8}},
		{Component: "Orders", InstanceID: "i-2", Timestamp: 1767225600000, Data: xc.InstanceCreated{
			InstanceID: "i-2", MachineName: "Order", CurrentState: "Draft", Context: map[string]any{}, Status: store.StatusActive,
			IsEntryPoint: true, ParentInstanceID: "p-1"}},
		{Component: "Orders", InstanceID: "i-1", Timestamp: 1767225660000, Data: xc.InstanceCompleted{
			InstanceID: "i-1", MachineName: "Order", FinalState: "Done", Status: store.StatusCompleted, Context: map[string]any{"x": true}, Version: 8}},
	}
	for _, ev := range evs {
		in, body := roundTrip(t, ev)
		if !reflect.DeepEqual(in.Event, carried(ev)) {
			t.Errorf("%s round trip:\n got %#v\nwant %#v\nbody %s", ev.Kind(), in.Event, carried(ev), body)
		}
	}
}

func TestKindsNotCarried(t *testing.T) {
	for _, d := range []xc.RuntimeEventData{xc.EventIgnored{}, xc.HookError{}, xc.InstanceError{}, xc.BroadcastCompleted{},
		xc.CascadeCompleted{}, xc.CrossComponentSent{}, nil} {
		if _, ok := wiremap.ToWire(xc.RuntimeEvent{Data: d}, origin, 1); ok {
			t.Errorf("%T is not part of the protocol", d)
		}
	}
}

// The wire shape of what we publish: version always, event.payload always, the header from the
// origin, the causation id for the AMQP header.
func TestToWireShape(t *testing.T) {
	ev := xc.RuntimeEvent{InstanceID: "i-1", Data: xc.StateChanged{InstanceID: "i-1", MachineName: "Order",
		PreviousState: "A", NewState: "B", Event: xc.Event{Type: "GO", ID: "e-9"}, Version: 3}}
	out, _ := wiremap.ToWire(ev, origin, 42)
	env := out.Envelope.(*wire.StateChange)
	if out.Channel != wire.ChannelStateChange || out.CausationID != "e-9" || env.ComponentName != "Orders" ||
		env.Timestamp != 42 || env.EventType != wire.EventStateChange || env.RuntimeID != "rt-1" {
		t.Fatalf("envelope %+v, out %+v", env, out)
	}
	body, _ := wire.Encode(env)
	for _, want := range []string{`"event":{"type":"GO","payload":{},"timestamp":42,"id":"e-9"}`, `"version":3`, `"context":{}`, `"pendingTimeouts":[]`} {
		if !contains(body, want) {
			t.Errorf("%s lacks %s", body, want)
		}
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Messages of xcomponent-ai runtimes have none of our additions.
func TestDecodeTSMessages(t *testing.T) {
	const id = "a1b2c3d4-0000-4000-8000-000000000001"
	in, err := wiremap.Decode(wire.ChannelStateChange, fixture(t, "ts_state_change.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := xc.RuntimeEvent{Component: "Shop", InstanceID: id, Timestamp: 1767225600500, Data: xc.StateChanged{
		InstanceID: id, MachineName: "Basket", PreviousState: "Open", NewState: "CheckedOut",
		Event:   xc.Event{Type: "CHECKOUT", Payload: map[string]any{"items": 3.0}},
		Context: map[string]any{"customer": "c-42", "items": 3.0},
		PendingTimeouts: []xc.PendingTimeout{{Event: "ABANDON", TargetState: "Abandoned", DueAt: 1767225660500,
			RemainingMs: 60000, TotalMs: 60000}},
	}}
	if !reflect.DeepEqual(in.Event, want) {
		t.Fatalf("state_change:\n got %#v\nwant %#v", in.Event, want)
	}
	if in.RuntimeName != "" || in.Trace != (wire.Trace{}) || in.RuntimeID != "7f0c1c9e-5b7a-4a57-9d1e-1f1f7b0b0a01" {
		t.Fatalf("origin %+v", in)
	}

	in, err = wiremap.Decode(wire.ChannelInstanceCreated, fixture(t, "ts_instance_created.json"))
	if err != nil {
		t.Fatal(err)
	}
	if d := in.Event.Data.(xc.InstanceCreated); d.Status != store.StatusActive || d.CurrentState != "Open" || d.Version != 0 ||
		d.Context["customer"] != "c-42" || in.Event.InstanceID != id {
		t.Fatalf("instance_created %+v", in.Event)
	}

	in, err = wiremap.Decode(wire.ChannelInstanceCompleted, fixture(t, "ts_instance_completed.json"))
	if err != nil {
		t.Fatal(err)
	}
	if d := in.Event.Data.(xc.InstanceCompleted); d.Status != store.StatusCompleted || d.FinalState != "Delivered" || d.Context == nil {
		t.Fatalf("instance_completed %+v", in.Event)
	}

	in, err = wiremap.Decode(wire.ChannelTimeoutTriggered, fixture(t, "ts_timeout_triggered.json"))
	if err != nil {
		t.Fatal(err)
	}
	if d := in.Event.Data.(xc.TimeoutFired); d.Event.Type != "ABANDON" || d.FromState != "Open" || d.ToState != "Abandoned" || in.Event.Kind() != xc.EvTimeoutFired {
		t.Fatalf("timeout_triggered %+v", in.Event)
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct{ channel, body string }{
		{wire.ChannelStateChange, `{"data":`},
		{wire.ChannelStateChange, `{"componentName":"Shop","data":{"machineName":"Basket"}}`},
		{wire.ChannelInstanceCreated, `[1]`},
		{wire.ChannelAnnounce, `{}`},
	}
	for _, c := range cases {
		if _, err := wiremap.Decode(c.channel, []byte(c.body)); err == nil {
			t.Errorf("%s %s: no error", c.channel, c.body)
		}
	}
}

func TestInstanceViews(t *testing.T) {
	resp, err := wire.Decode[wire.QueryResponse](fixture(t, "ts_query_response.json"))
	if err != nil {
		t.Fatal(err)
	}
	now := int64(1767225640500)
	v := wiremap.InstanceView(resp.ComponentName, resp.Instances[0], now)
	want := xc.Instance{ID: "a1b2c3d4-0000-4000-8000-000000000001", ComponentName: "Shop", MachineName: "Basket",
		CurrentState: "Open", Context: map[string]any{"customer": "c-42"}, Status: store.StatusActive,
		PendingTimeouts: []xc.PendingTimeout{{Event: "ABANDON", TargetState: "Abandoned", DueAt: 1767225660500, RemainingMs: 20000, TotalMs: 60000}}}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("view:\n got %#v\nwant %#v", v, want)
	}
	if v := wiremap.InstanceView("Shop", resp.Instances[1], now); v.PendingTimeouts == nil || v.Context == nil {
		t.Fatalf("empty view %+v", v)
	}

	// Ours: engine view → snapshot → JSON → view.
	ours := xc.Instance{ID: "i-1", ComponentName: "Orders", MachineName: "Order", CurrentState: "Done",
		Context: map[string]any{"n": 1.0}, Status: store.StatusCompleted, Version: 5,
		PendingTimeouts: []xc.PendingTimeout{{Event: "EXPIRE", TargetState: "Done", DueAt: now + 100, RemainingMs: 100, TotalMs: 60000, Kind: "timeout"}}}
	body, err := wire.Encode(wire.QueryResponse{Type: wire.TypeInstances, ComponentName: "Orders", Instances: []wire.InstanceSnapshot{wiremap.Snapshot(ours)}})
	if err != nil {
		t.Fatal(err)
	}
	back, err := wire.Decode[wire.QueryResponse](body)
	if err != nil {
		t.Fatal(err)
	}
	if got := wiremap.InstanceView(back.ComponentName, back.Instances[0], now); !reflect.DeepEqual(got, ours) {
		t.Fatalf("snapshot round trip:\n got %#v\nwant %#v", got, ours)
	}
}
