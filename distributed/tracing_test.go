package distributed_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/bus/rabbitmq"
	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/distributed/distributedtest"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/wire"
)

// spans are the spans two runtimes exported, each with its own tracer provider (the trace
// context crosses between them only through the AMQP headers).
type spans []sdktrace.ReadOnlySpan

func (ss spans) attr(s sdktrace.ReadOnlySpan, k attribute.Key) string {
	for _, a := range s.Attributes() {
		if a.Key == k {
			return a.Value.String()
		}
	}
	return ""
}

// match returns the spans named name whose attributes include want.
func (ss spans) match(name string, want map[string]string) []sdktrace.ReadOnlySpan {
	var found []sdktrace.ReadOnlySpan
next:
	for _, s := range ss {
		if s.Name() != name {
			continue
		}
		for k, v := range want {
			if ss.attr(s, attribute.Key(k)) != v {
				continue next
			}
		}
		found = append(found, s)
	}
	return found
}

// find returns the one span named name whose attributes include want.
func (ss spans) find(t *testing.T, name string, want map[string]string) sdktrace.ReadOnlySpan {
	t.Helper()
	found := ss.match(name, want)
	if len(found) != 1 {
		t.Fatalf("%d spans %s %v, want 1; spans:\n%s", len(found), name, want, ss)
	}
	return found[0]
}

func (ss spans) String() string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "  %s %s parent=%s trace=%s %v\n", s.Name(), s.SpanContext().SpanID(), s.Parent().SpanID(), s.SpanContext().TraceID(), s.Attributes())
	}
	return b.String()
}

// childOf fails the test unless child's parent is parent (same trace).
func childOf(t *testing.T, child, parent sdktrace.ReadOnlySpan) {
	t.Helper()
	if child.SpanContext().TraceID() != parent.SpanContext().TraceID() || child.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("span %s (trace %s, parent %s) is not a child of %s (trace %s, span %s)", child.Name(),
			child.SpanContext().TraceID(), child.Parent().SpanID(), parent.Name(), parent.SpanContext().TraceID(), parent.SpanContext().SpanID())
	}
}

func post(t *testing.T, url, body string) map[string]any {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s %s", url, resp.Status, raw)
	}
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("POST %s: %v: %s", url, err, raw)
	}
	return v
}

// TestTraceAcrossRuntimes follows the order/payment flow of examples/distributed across two
// runtimes (one per component, each with its own tracer provider and in-memory exporter): an
// order's SUBMIT requested over HTTP is one trace down to the payment runtime's creation of
// the payment; the payment's COMPLETE is one trace down to the order runtime's
// PAYMENT_CONFIRMED; a command from xcomponent-ai (no trace context) starts a new trace; the
// audit trail records the trace ids.
func TestTraceAcrossRuntimes(t *testing.T) {
	url := vhost(t)
	dsn := pgtest.NewDatabase(t)
	orderRec, paymentRec := tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()
	orderTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(orderRec))
	paymentTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(paymentRec))
	t.Cleanup(func() {
		_ = orderTP.Shutdown(context.Background())
		_ = paymentTP.Shutdown(context.Background())
	})
	cfg := func(name, file string, tp trace.TracerProvider) distributed.Config {
		return distributed.Config{ComponentFile: file, BrokerURL: url, StoreSpec: dsn, RuntimeName: name,
			HeartbeatInterval: 200 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second,
			Logger: logger(t), Port: freePort(t), TracerProvider: tp,
			Hooks: distributed.Hooks{"checkPaymentMethod": func(_ context.Context, h *xcomponent.Hook) error {
				h.Send.SendToSelf(xcomponent.Event{Type: "VALIDATE"})
				return nil
			}}}
	}
	order := distributedtest.Start(t, cfg("orders", "../examples/distributed/order.yaml", orderTP))
	payment := distributedtest.Start(t, cfg("payments", "../examples/distributed/payment.yaml", paymentTP))
	orderAPI, paymentAPI := "http://"+order.Info.Addr.String(), "http://"+payment.Info.Addr.String()

	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(context.Background()) })
	state := func(component, orderID string) string {
		var s string
		_ = db.QueryRow(context.Background(), `SELECT current_state FROM fsm_snapshots
			WHERE component_name = $1 AND context->>'orderId' = $2`, component, orderID).Scan(&s)
		return s
	}
	all := func() spans { return append(spans(orderRec.Ended()), paymentRec.Ended()...) }

	// 1. SUBMIT over HTTP: order transition → outbox publish → payment runtime creates the payment.
	created := post(t, orderAPI+"/api/components/OrderComponent/instances",
		`{"context":{"orderId":"ORD-1","customerId":"C-1","amount":12.5,"paymentMethod":"visa"}}`)
	orderID, _ := created["instanceId"].(string)
	if orderID == "" {
		t.Fatalf("create answered %v", created)
	}
	post(t, orderAPI+"/api/instances/"+orderID+"/trigger", `{"type":"SUBMIT"}`)
	eventually(t, "payment created", func() bool { return state("PaymentComponent", "ORD-1") == "Pending" })
	var paymentID string
	if err := db.QueryRow(context.Background(), `SELECT instance_id::text FROM fsm_snapshots WHERE component_name = 'PaymentComponent'`).Scan(&paymentID); err != nil {
		t.Fatal(err)
	}
	// A span ends after its children (the consumer's after the transition it applied), so wait
	// for every span the checks below read, not only for the innermost one.
	ended := func(what string, names ...string) {
		t.Helper()
		eventually(t, what+" spans ended", func() bool {
			ss := all()
			for _, n := range names {
				name, queue, _ := strings.Cut(n, "@")
				want := map[string]string{}
				if queue != "" {
					want["xcomponent.queue"] = queue
				}
				if len(ss.match(name, want)) == 0 {
					return false
				}
			}
			return true
		})
	}
	ended("payment creation", "xcomponent.create", "publish "+wire.ChannelCreateInstance,
		"consume "+wire.ChannelCreateInstance+"@ingress", "consume "+wire.ChannelCreateInstance+"@partition")
	ss := all()
	httpSubmit := ss.find(t, "POST /api/instances/{id}/trigger", nil)
	submit := ss.find(t, "xcomponent.transition", map[string]string{"xcomponent.event": "SUBMIT"})
	pub := ss.find(t, "publish "+wire.ChannelCreateInstance, nil)
	ingress := ss.find(t, "consume "+wire.ChannelCreateInstance, map[string]string{"xcomponent.queue": "ingress"})
	consume := ss.find(t, "consume "+wire.ChannelCreateInstance, map[string]string{"xcomponent.queue": "partition"})
	create := ss.find(t, "xcomponent.create", map[string]string{"xcomponent.component": "PaymentComponent"})
	childOf(t, submit, httpSubmit)
	childOf(t, pub, submit)
	childOf(t, ingress, pub) // the xcomponent-ai channel, re-published to the payment's partition
	childOf(t, consume, ingress)
	childOf(t, create, consume)
	for k, v := range map[string]string{"xcomponent.component": "OrderComponent", "xcomponent.machine": "Order",
		"xcomponent.instance_id": orderID, "xcomponent.from_state": "Created", "xcomponent.to_state": "PendingPayment",
		"xcomponent.outcome": "applied", "xcomponent.version": "1"} {
		if got := ss.attr(submit, attribute.Key(k)); got != v {
			t.Errorf("SUBMIT span %s = %q, want %q", k, got, v)
		}
	}
	if consume.SpanKind() != trace.SpanKindConsumer || pub.SpanKind() != trace.SpanKindProducer || httpSubmit.SpanKind() != trace.SpanKindServer {
		t.Errorf("span kinds: http %v publish %v consume %v", httpSubmit.SpanKind(), pub.SpanKind(), consume.SpanKind())
	}
	var commits int
	for _, s := range ss {
		if s.Name() == "xcomponent.store.commit" && s.Parent().SpanID() == submit.SpanContext().SpanID() {
			commits++
			if ss.attr(s, "xcomponent.commit.batch_size") == "" {
				t.Errorf("commit span without batch size: %v", s.Attributes())
			}
		}
	}
	if commits != 1 {
		t.Errorf("SUBMIT has %d commit spans, want 1", commits)
	}
	submitTrace := submit.SpanContext().TraceID().String()

	// 2. PROCESS over HTTP on the payment runtime: the hook and the VALIDATE it sends join the trace.
	post(t, paymentAPI+"/api/instances/"+paymentID+"/trigger", `{"type":"PROCESS"}`)
	eventually(t, "payment validated", func() bool { return state("PaymentComponent", "ORD-1") == "Validated" })
	eventually(t, "VALIDATE span ended", func() bool {
		return len(all().match("xcomponent.transition", map[string]string{"xcomponent.event": "VALIDATE"})) == 1
	})
	ended("PROCESS", "xcomponent.hook")
	ss = all()
	process := ss.find(t, "xcomponent.transition", map[string]string{"xcomponent.event": "PROCESS"})
	hook := ss.find(t, "xcomponent.hook", map[string]string{"xcomponent.hook.method": "checkPaymentMethod"})
	validate := ss.find(t, "xcomponent.transition", map[string]string{"xcomponent.event": "VALIDATE"})
	childOf(t, hook, process)
	childOf(t, validate, process)

	// 3. COMPLETE over HTTP: payment transition → cross_component_event → order's PAYMENT_CONFIRMED.
	post(t, paymentAPI+"/api/instances/"+paymentID+"/trigger", `{"type":"COMPLETE"}`)
	eventually(t, "order paid", func() bool { return state("OrderComponent", "ORD-1") == "Paid" })
	eventually(t, "PAYMENT_CONFIRMED span ended", func() bool {
		return len(all().match("xcomponent.transition", map[string]string{"xcomponent.event": "PAYMENT_CONFIRMED"})) == 1
	})
	ended("COMPLETE", "publish "+wire.ChannelCrossComponentEvent, "consume "+wire.ChannelCrossComponentEvent)
	ss = all()
	complete := ss.find(t, "xcomponent.transition", map[string]string{"xcomponent.event": "COMPLETE"})
	publishCross := ss.find(t, "publish "+wire.ChannelCrossComponentEvent, nil)
	consumeCross := ss.find(t, "consume "+wire.ChannelCrossComponentEvent, map[string]string{"xcomponent.component": "OrderComponent"})
	confirmed := ss.find(t, "xcomponent.transition", map[string]string{"xcomponent.event": "PAYMENT_CONFIRMED"})
	childOf(t, publishCross, complete)
	childOf(t, consumeCross, publishCross)
	childOf(t, confirmed, consumeCross)
	if got := ss.attr(confirmed, "xcomponent.to_state"); got != "Paid" {
		t.Errorf("PAYMENT_CONFIRMED to_state = %q", got)
	}

	// 4. A command as xcomponent-ai sends it (no trace context): a new trace, rooted at the
	// runtime's consumer of the xcomponent-ai channel.
	client, err := rabbitmq.New(rabbitmq.Options{URL: url, Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	publish1 := func(v any) { publish(t, client, wire.ChannelTriggerEvent, v, "") }
	publish1(wire.TriggerEvent{ComponentName: "OrderComponent", InstanceID: orderID, Event: wire.Event{Type: "SHIP", Payload: map[string]any{}}})
	eventually(t, "order shipped", func() bool { return state("OrderComponent", "ORD-1") == "Shipped" })
	eventually(t, "SHIP span ended", func() bool {
		return len(all().match("xcomponent.transition", map[string]string{"xcomponent.event": "SHIP"})) == 1
	})
	ended("SHIP", "consume "+wire.ChannelTriggerEvent+"@ingress")
	ss = all()
	ship := ss.find(t, "xcomponent.transition", map[string]string{"xcomponent.event": "SHIP"})
	var root sdktrace.ReadOnlySpan
	for _, s := range ss {
		if s.SpanContext().TraceID() == ship.SpanContext().TraceID() && !s.Parent().IsValid() {
			root = s
		}
	}
	if root == nil || root.Name() != "consume "+wire.ChannelTriggerEvent || root.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("trace of a command without trace context: root %v, want the consumer of %s:\n%s", root, wire.ChannelTriggerEvent, ss)
	}
	if ship.SpanContext().TraceID().String() == submitTrace {
		t.Error("the xcomponent-ai command joined an earlier trace")
	}

	// The audit trail keeps the trace ids.
	for _, c := range []struct{ event, trace string }{
		{"SUBMIT", submitTrace},
		{"PAYMENT_CONFIRMED", confirmed.SpanContext().TraceID().String()},
		{"SHIP", ship.SpanContext().TraceID().String()},
	} {
		var got *string
		if err := db.QueryRow(context.Background(), `SELECT trace_id FROM fsm_events WHERE instance_id = $1 AND event_type = $2`,
			orderID, c.event).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got == nil || *got != c.trace {
			t.Errorf("fsm_events.trace_id of %s = %v, want %s", c.event, got, c.trace)
		}
	}
	var paymentTrace *string
	if err := db.QueryRow(context.Background(), `SELECT trace_id FROM fsm_events WHERE instance_id = $1::uuid AND event_type = 'INSTANCE_CREATED'`,
		paymentID).Scan(&paymentTrace); err != nil {
		t.Fatal(err)
	}
	if paymentTrace == nil || *paymentTrace != submitTrace {
		t.Errorf("the payment's creation event has trace %v, want the SUBMIT's %s", paymentTrace, submitTrace)
	}
	// And the API shows them.
	resp, err := http.Get(orderAPI + "/api/instances/" + orderID + "/history")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(raw), `"traceId":"`+submitTrace+`"`) {
		t.Errorf("history without the SUBMIT's traceId: %s", raw)
	}
}
