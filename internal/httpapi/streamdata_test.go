package httpapi

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/clock"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/xcomponenttest"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/stream_golden.txt")

// streamScenario emits a runtime event of every kind the engine has (each variant of
// cross_component_sent included).
const streamScenario = `
name: Golden
stateMachines:
  - name: Order
    initialState: Draft
    states:
      - name: Draft
      - name: Placed
        onEntry: enterPlaced
        cascadingRules:
          - {targetMachine: Line, targetState: Open, event: ORDER_PLACED, payload: {orderId: "{{orderId}}"},
             matchingRules: [{eventProperty: orderId, instanceProperty: orderId}]}
      - name: Waiting
      - name: Expired
        type: error
      - name: Billed
      - name: Receipted
      - name: Signalled
      - name: Done
        type: final
    transitions:
      - {from: Draft, to: Placed, event: PLACE}
      - {from: Placed, to: Done, event: FINISH}
      - {from: Placed, to: Done, event: CHECK, guard: "context.amount"}
      - {from: Draft, to: Waiting, event: WAIT}
      - {from: Waiting, to: Expired, event: EXPIRE, type: timeout, timeoutMs: 1000}
      - {from: Draft, to: Billed, event: BILL, type: cross_component, targetComponent: Billing, targetMachine: Invoice, contextMapping: {orderId: id}}
      - {from: Draft, to: Receipted, event: RECEIPT, type: cross_component, targetComponent: Golden, targetMachine: Receipt, contextMapping: {ref: id}}
      - from: Receipted
        to: Signalled
        event: SIGNAL
        type: cross_component
        targetComponent: Golden
        targetMachine: Receipt
        targetEvent: SETTLE
        matchingRules: [{eventProperty: ref, instanceProperty: ref}]
        contextMapping: {ref: id}
  - name: Line
    initialState: Open
    states: [{name: Open}, {name: Confirmed}]
    transitions:
      - {from: Open, to: Confirmed, event: ORDER_PLACED, matchingRules: [{eventProperty: orderId, instanceProperty: orderId}]}
      - {from: Open, to: Open, event: TOUCH}
  - name: Receipt
    initialState: Open
    states: [{name: Open}, {name: Settled, type: final}]
    transitions:
      - {from: Open, to: Settled, event: SETTLE}
`

type nopRemote struct{}

func (nopRemote) Deliver(context.Context, xc.Message) error { return nil }

// TestStreamDataGolden pins the JSON of every runtime event on the live stream: the browser
// dashboard and other SSE clients depend on it. Ids are replaced by their rank of appearance.
func TestStreamDataGolden(t *testing.T) {
	comp, err := component.Parse([]byte(streamScenario), "golden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fake := clock.NewFake(time.UnixMilli(1767225600000))
	var out strings.Builder
	eng := xcomponenttest.NewManual(xc.Options{Clock: fake, Remote: nopRemote{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		xcomponenttest.Options{Listen: func(ev xc.RuntimeEvent) {
			d := streamData(&ev)
			out.Write(sseMessage(fmt.Sprint(d["eventType"]), d))
		}})
	t.Cleanup(func() { _ = eng.Close(context.Background()) })
	eng.Handle("enterPlaced", func(context.Context, *xc.Hook) error { return errors.New("enterPlaced failed") })
	ctx := context.Background()
	if err := eng.Load(ctx, comp); err != nil {
		t.Fatal(err)
	}
	create := func(machine string, data map[string]any) string {
		in, err := eng.Create(ctx, xc.CreateRequest{Component: "Golden", Machine: machine, Data: data})
		if err != nil {
			t.Fatal(err)
		}
		return in.ID
	}
	send := func(id string, ev xc.Event) {
		_, _ = eng.Send(ctx, id, ev) // refusals are part of the scenario
		if err := eng.Settle(ctx); err != nil {
			t.Fatal(err)
		}
	}
	create("Line", map[string]any{"orderId": "o-1"})
	o1 := create("Order", map[string]any{"orderId": "o-1", "amount": 12.5})
	send(o1, xc.Event{Type: "PLACE", Payload: map[string]any{"by": "alice"}}) // hook error, cascade
	send(o1, xc.Event{Type: "NOPE"})                                          // event_ignored
	send(o1, xc.Event{Type: "CHECK"})                                         // instance_error (guard not boolean)
	send(o1, xc.Event{Type: "FINISH"})                                        // completed
	o2 := create("Order", nil)
	send(o2, xc.Event{Type: "WAIT"})
	if err := eng.Advance(ctx, 2*time.Second); err != nil { // timeout_fired
		t.Fatal(err)
	}
	o3 := create("Order", nil)
	send(o3, xc.Event{Type: "BILL"}) // cross-component, forwarded
	o4 := create("Order", nil)
	send(o4, xc.Event{Type: "RECEIPT"}) // cross-component, created
	send(o4, xc.Event{Type: "SIGNAL"})  // cross-component, delivered
	if _, err := eng.Broadcast(ctx, xc.BroadcastRequest{Component: "Golden", Machine: "Line", Event: xc.Event{Type: "TOUCH"}}); err != nil {
		t.Fatal(err)
	}

	got := normaliseIDs(out.String())
	golden := filepath.Join("testdata", "stream_golden.txt")
	if *updateGolden {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("stream data differs from %s:\n%s", golden, diffLines(string(want), got))
	}
	for _, kind := range []string{"instance_created", "state_change", "instance_completed", "event_ignored", "hook_error",
		"instance_error", "timeout_fired", "broadcast_completed", "cascade_completed", `"kind":`, `"createdInstanceId"`, `"machineName":"Receipt","matched"`} {
		if !strings.Contains(got, kind) {
			t.Errorf("the scenario emits no %s", kind)
		}
	}
}

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

func normaliseIDs(s string) string {
	seen := map[string]string{}
	return uuidRE.ReplaceAllStringFunc(s, func(id string) string {
		if _, ok := seen[id]; !ok {
			seen[id] = fmt.Sprintf("id-%d", len(seen)+1)
		}
		return seen[id]
	})
}

func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n want %s\n  got %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}
