package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/bus/rabbitmq"
	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
	"github.com/xcomponent/xcomponent/internal/faults"
	"github.com/xcomponent/xcomponent/wire"
)

// The order/payment pair of the distributed package's tests: Shop's SUBMIT creates a Payment
// in Billing (cross_component, contextMapping); the payment's COMPLETE sends
// PAYMENT_CONFIRMED back to the order with the same orderId.
var (
	shopFile    = filepath.Join("..", "..", "distributed", "testdata", "shop.yaml")
	billingFile = filepath.Join("..", "..", "distributed", "testdata", "billing.yaml")
)

// TestOrderPaymentKill9: two `xcomponent runtime` processes per component on one PostgreSQL
// database and one vhost; one of each is killed with SIGKILL while orders are being
// submitted. Every order ends paid with exactly one payment, and the database holds, row by
// row, each event once: the dead runtimes' commands, outbox messages and cross-component
// events are taken over by the survivors.
func TestOrderPaymentKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: -short")
	}
	t.Parallel()
	b := newBackend(t, "postgres")
	_, url := rmqtest.NewVhost(t)
	client, err := rabbitmq.New(rabbitmq.Options{URL: url, Name: "e2e client"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	shopA := startRuntimeProc(t, "shop-a", url, b.spec, shopFile)
	shopB := startRuntimeProc(t, "shop-b", url, b.spec, shopFile)
	billA := startRuntimeProc(t, "billing-a", url, b.spec, billingFile)
	billB := startRuntimeProc(t, "billing-b", url, b.spec, billingFile)
	tails := func() string {
		return "shop-b:\n" + shopB.Tail(30) + "\nbilling-b:\n" + billB.Tail(30)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	publish := func(channel string, v any) {
		t.Helper()
		body, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := client.Publish(ctx, channel, body, bus.Meta{MessageID: uuid.NewString()}); err != nil {
			t.Fatalf("publish %s: %v", channel, err)
		}
	}
	db := b.open(t)
	defer db.Close()
	byOrder := func(machine string) map[string]string {
		t.Helper()
		rows, err := db.QueryContext(ctx, `SELECT context->>'orderId', CAST(instance_id AS TEXT) FROM fsm_snapshots
			WHERE machine_name = $1`, machine)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var o, id string
			if err := rows.Scan(&o, &id); err != nil {
				t.Fatal(err)
			}
			if prev, dup := out[o]; dup {
				t.Fatalf("two %s instances for order %s: %s and %s", machine, o, prev, id)
			}
			out[o] = id
		}
		return out
	}
	count := func(sql string) int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	const n = 200
	for i := range n {
		publish(wire.ChannelCreateInstance, wire.CreateInstance{ComponentName: "Shop",
			Context: map[string]any{"orderId": fmt.Sprintf("o-%04d", i), "amount": i + 1}, Timestamp: wire.Now()})
	}
	var orders map[string]string
	if err := faults.Poll(90*time.Second, func() (bool, error) { orders = byOrder("Order"); return len(orders) == n, nil }); err != nil {
		t.Fatalf("%d of %d orders created: %v\n%s", len(orders), n, err, tails())
	}
	// SUBMIT every order; one runtime of each component is killed half-way.
	var killed time.Time
	for i := range n {
		if i == n/2 {
			killed = time.Now()
			shopA.Kill()
			billA.Kill()
			t.Logf("shop-a and billing-a killed (SIGKILL) after %d SUBMITs", i)
		}
		publish(wire.ChannelTriggerEvent, wire.TriggerEvent{ComponentName: "Shop", InstanceID: orders[fmt.Sprintf("o-%04d", i)],
			Event: wire.Event{Type: "SUBMIT"}})
	}
	var payments map[string]string
	if err := faults.Poll(120*time.Second, func() (bool, error) { payments = byOrder("Payment"); return len(payments) == n, nil }); err != nil {
		t.Fatalf("%d of %d payments created: %v\n%s", len(payments), n, err, tails())
	}
	allPaymentsAfter := time.Since(killed)
	for o, id := range payments {
		publish(wire.ChannelTriggerEvent, wire.TriggerEvent{ComponentName: "Billing", InstanceID: id, Event: wire.Event{Type: "COMPLETE"}})
		_ = o
	}
	if err := faults.Poll(120*time.Second, func() (bool, error) {
		return count("SELECT count(*) FROM fsm_snapshots WHERE machine_name = 'Order' AND current_state = 'Paid'") == n, nil
	}); err != nil {
		t.Fatalf("%d of %d orders paid: %v\n%s", count("SELECT count(*) FROM fsm_snapshots WHERE current_state = 'Paid'"), n, err, tails())
	}
	if err := faults.Poll(60*time.Second, func() (bool, error) { return count("SELECT count(*) FROM outbox") == 0, nil }); err != nil {
		t.Fatalf("outbox not empty: %v", err)
	}

	// Row by row.
	evs := b.readEvents(t)
	snaps := b.readSnapshots(t)
	if len(snaps) != 2*n {
		t.Fatalf("%d fsm_snapshots rows, want %d (one order and one payment per order)", len(snaps), 2*n)
	}
	for i := range n {
		o := fmt.Sprintf("o-%04d", i)
		order, payment := orders[o], payments[o]
		snap, ok := snaps[order]
		checkChain(t, order, evs[order], snap, ok)
		checkTypes(t, "order "+o, evs[order], "INSTANCE_CREATED", "SUBMIT", "PAYMENT_CONFIRMED")
		snap, ok = snaps[payment]
		checkChain(t, payment, evs[payment], snap, ok)
		checkTypes(t, "payment of "+o, evs[payment], "INSTANCE_CREATED", "COMPLETE")
		if len(evs[order]) == 3 {
			p := evs[order][2].Payload
			if p["orderId"] != o || p["paidAmount"] != float64(i+1) || p["_sourceComponent"] != "Billing" {
				t.Errorf("order %s: PAYMENT_CONFIRMED payload %v", o, p)
			}
		}
		if len(evs[payment]) > 0 {
			ic, _ := evs[payment][0].Payload["initialContext"].(map[string]any)
			if ic["orderId"] != o || ic["amount"] != float64(i+1) {
				t.Errorf("payment of %s created with %v", o, evs[payment][0].Payload)
			}
		}
	}
	shopB.Stop()
	billB.Stop()
	judgeFlows(t, b, orders, payments, allPaymentsAfter)
}

// judgeFlows judges the order/payment flows with the fault-injection suite's checker: per
// order, its creation, SUBMIT, the payment's creation (cross-component), the payment's
// COMPLETE and the order's PAYMENT_CONFIRMED (cross-component back) each once, in that order
// per instance, every instance consistent with its log; and records the row.
func judgeFlows(t *testing.T, b backend, orders, payments map[string]string, recovery time.Duration) {
	t.Helper()
	led := faults.NewLedger()
	orderOf := map[string]string{}
	for o, id := range orders {
		orderOf[id] = o
		for _, k := range []string{"created", "SUBMIT", "PAYMENT_CONFIRMED"} {
			led.Sent(id, o+"/order/"+k)
			led.Ack(o+"/order/"+k, "", 0) // each seen applied: every order ended Paid
		}
	}
	for o, id := range payments {
		orderOf[id] = o
		for _, k := range []string{"created", "COMPLETE"} {
			led.Sent(id, o+"/payment/"+k)
			led.Ack(o+"/payment/"+k, "", 0)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), conditionTimeout)
	defer cancel()
	st, err := faults.ReadSpec(ctx, b.spec)
	if err != nil {
		t.Fatal(err)
	}
	v := faults.Judge(led, st, func(e faults.Event) string {
		o, ok := orderOf[e.Instance]
		if !ok {
			return "?" + e.Instance // an instance no order explains: never sent
		}
		kind, typ := "order", e.Type
		if orders[o] != e.Instance {
			kind = "payment"
		}
		if e.Seq == 0 {
			typ = "created"
		}
		return o + "/" + kind + "/" + typ
	})
	faults.Check(t, v)
	row := faults.RowOf(faults.ScenarioKillRuntime, "2 runtime processes per component, order → payment → order across components", v, st)
	row.Recovery, row.RecoveryFrom = recovery, "kill → a payment for every order (the SUBMITs after the kill included)"
	row.Notes = "one runtime of each component killed with SIGKILL half-way through 200 SUBMITs; cross-component creations and replies (outbox) taken over; acknowledged = seen applied (every order ended Paid)"
	faults.Record(t, row)
}

func checkTypes(t *testing.T, what string, evs []eventRow, want ...string) {
	t.Helper()
	got := make([]string, len(evs))
	for i, e := range evs {
		got[i] = e.Type
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s: events %v, want %v (each applied once)", what, got, want)
	}
}
