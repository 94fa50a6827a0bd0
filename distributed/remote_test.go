package distributed_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/bus/rabbitmq"
	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
	componentpkg "github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/distributed/distributedtest"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/postgres"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/wire"
)

// queueDepths returns the messages (ready + unacknowledged) of every queue of a vhost.
func queueDepths(t *testing.T, vhost string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", "--quiet", "list_queues", "-p", vhost, "--no-table-headers",
		"name", "messages").CombinedOutput()
	if err != nil {
		t.Fatalf("list_queues: %v\n%s", err, out)
	}
	depths := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		depths[f[0]] = n
	}
	return depths
}

// drained waits until no queue of the vhost holds a message: every command and event
// published so far has been handled (and none was dead-lettered).
func drained(t *testing.T, vhost string) {
	t.Helper()
	eventually(t, "vhost "+vhost+" drained", func() bool {
		for _, n := range queueDepths(t, vhost) {
			if n != 0 {
				return false
			}
		}
		return true
	})
}

type shopTest struct {
	t      *testing.T
	vhost  string
	url    string
	dsn    string
	db     *pgx.Conn
	client *rabbitmq.Bus
	oc     *outcomes
}

func newShopTest(t *testing.T) *shopTest {
	vh, url := rmqtest.NewVhost(t)
	dsn := pgtest.NewDatabase(t)
	client, err := rabbitmq.New(rabbitmq.Options{URL: url, Logger: logger(t), MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(context.Background()) })
	return &shopTest{t: t, vhost: vh, url: url, dsn: dsn, db: db, client: client, oc: &outcomes{n: map[string]int{}}}
}

func (s *shopTest) runtime(file, name string) *distributedtest.Runtime {
	return distributedtest.Start(s.t, distributed.Config{ComponentFile: file, BrokerURL: s.url, StoreSpec: s.dsn,
		RuntimeName: name, HeartbeatInterval: time.Second, Prefetch: 8, OutboxSweep: 500 * time.Millisecond,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second, Logger: logger(s.t), OnCommand: s.oc.add})
}

func (s *shopTest) count(sql string, args ...any) int { return queryInt(s.t, s.db, sql, args...) }

// ids returns instance ids by orderId for a machine.
func (s *shopTest) ids(machine string, orderIDs []string) map[string]string {
	s.t.Helper()
	rows, err := s.db.Query(context.Background(), `SELECT context->>'orderId', instance_id::text FROM fsm_snapshots
		WHERE machine_name = $1 AND context->>'orderId' = ANY($2)`, machine, orderIDs)
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]string{}
	for rows.Next() {
		var o, id string
		if err := rows.Scan(&o, &id); err != nil {
			s.t.Fatal(err)
		}
		out[o] = id
	}
	if err := rows.Err(); err != nil {
		s.t.Fatal(err)
	}
	return out
}

// flow runs n orders through the Shop and Billing runtimes: create, SUBMIT (creates the
// payment in Billing), COMPLETE each payment (sends PAYMENT_CONFIRMED back to its order); then
// checks the database row by row.
func (s *shopTest) flow(prefix string, n int) {
	t := s.t
	orderIDs := make([]string, n)
	for i := range n {
		orderIDs[i] = fmt.Sprintf("%s-%03d", prefix, i)
		publish(t, s.client, wire.ChannelCreateInstance, wire.CreateInstance{ComponentName: "Shop",
			Context: map[string]any{"orderId": orderIDs[i], "amount": i + 1}, Timestamp: wire.Now()}, uuid.NewString())
	}
	var orders map[string]string
	eventually(t, "orders created", func() bool { orders = s.ids("Order", orderIDs); return len(orders) == n })
	for _, o := range orderIDs {
		publish(t, s.client, wire.ChannelTriggerEvent, wire.TriggerEvent{ComponentName: "Shop", InstanceID: orders[o],
			Event: wire.Event{Type: "SUBMIT"}}, uuid.NewString())
	}
	var payments map[string]string
	eventually(t, "payments created", func() bool { payments = s.ids("Payment", orderIDs); return len(payments) == n })
	for _, o := range orderIDs {
		publish(t, s.client, wire.ChannelTriggerEvent, wire.TriggerEvent{ComponentName: "Billing", InstanceID: payments[o],
			Event: wire.Event{Type: "COMPLETE"}}, uuid.NewString())
	}
	eventually(t, "orders paid", func() bool {
		return s.count(`SELECT count(*) FROM fsm_snapshots WHERE machine_name = 'Order' AND current_state = 'Paid'
			AND context->>'orderId' = ANY($1)`, orderIDs) == n
	})
	drained(t, s.vhost)
	eventually(t, "outbox empty", func() bool { return s.count("SELECT count(*) FROM outbox") == 0 })

	// Row by row: one payment per order, with the mapped data and its origin; every event
	// applied once.
	for i, o := range orderIDs {
		if got := s.count(`SELECT count(*) FROM fsm_snapshots WHERE machine_name = 'Payment' AND context->>'orderId' = $1`, o); got != 1 {
			t.Fatalf("order %s: %d payments, want 1", o, got)
		}
		var amount float64
		var src *string
		if err := s.db.QueryRow(context.Background(), `SELECT (s.context->>'amount')::float8, e.source_component_name
			FROM fsm_snapshots s JOIN fsm_events e ON e.instance_id = s.instance_id AND e.event_type = 'INSTANCE_CREATED'
			WHERE s.instance_id = $1::uuid`, payments[o]).Scan(&amount, &src); err != nil {
			t.Fatal(err)
		}
		if amount != float64(i+1) || src == nil || *src != "Shop" {
			t.Fatalf("payment of %s: amount %v, source component %v; want %d, Shop", o, amount, src, i+1)
		}
		var types []string
		rows, err := s.db.Query(context.Background(), `SELECT event_type FROM fsm_events WHERE instance_id = $1::uuid ORDER BY seq`, orders[o])
		if err != nil {
			t.Fatal(err)
		}
		if types, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
		if strings.Join(types, ",") != "INSTANCE_CREATED,SUBMIT,PAYMENT_CONFIRMED" {
			t.Fatalf("order %s events: %v", o, types)
		}
		var payload map[string]any
		if err := s.db.QueryRow(context.Background(), `SELECT event_payload FROM fsm_events WHERE instance_id = $1::uuid
			AND event_type = 'PAYMENT_CONFIRMED'`, orders[o]).Scan(&payload); err != nil {
			t.Fatal(err)
		}
		if payload["orderId"] != o || payload["_sourceComponent"] != "Billing" || payload["paidAmount"] != float64(i+1) {
			t.Fatalf("order %s: PAYMENT_CONFIRMED payload %v", o, payload)
		}
		if got := s.count(`SELECT count(*) FROM fsm_events WHERE instance_id = $1::uuid`, payments[o]); got != 2 {
			t.Fatalf("payment of %s: %d events, want 2", o, got)
		}
	}
}

// TestOrderPaymentAcrossRuntimes: an order in one component creates its payment in another,
// whose completion comes back to the order by orderId, with one runtime per component and
// then two of each (all sharing one database and one vhost): one payment per order, every
// event applied once, nothing left in the outbox or the queues.
func TestOrderPaymentAcrossRuntimes(t *testing.T) {
	s := newShopTest(t)
	s.runtime("testdata/shop.yaml", "shop-1")
	s.runtime("testdata/billing.yaml", "billing-1")
	// The Shop runtime indexed the property its orders are routed on.
	if got := s.count(`SELECT count(*) FROM pg_indexes WHERE tablename = 'fsm_snapshots' AND indexname LIKE 'idx_fsm_route_%'
		AND indexdef LIKE '%orderId%'`); got != 1 {
		t.Fatalf("route indexes on orderId: %d, want 1", got)
	}
	s.flow("one", 15)

	s.runtime("testdata/shop.yaml", "shop-2")
	s.runtime("testdata/billing.yaml", "billing-2")
	s.flow("two", 30)
	if dl := s.oc.count(wire.ChannelCrossComponentEvent, distributed.OutcomeDeadLettered); dl != 0 {
		t.Fatalf("%d cross-component events dead-lettered", dl)
	}
}

type failingRemote struct{}

func (failingRemote) Deliver(context.Context, xc.Message) error {
	return errors.New("crashed before publishing")
}

// TestOutboxRelayedAfterCrash: an order whose transition committed but whose message to the
// Billing component was never published (the process died in between) gets its payment, once,
// when runtimes of the Shop component start again, even two at once (both relay it).
func TestOutboxRelayedAfterCrash(t *testing.T) {
	s := newShopTest(t)
	ctx := context.Background()

	// The crash: a Shop engine commits SUBMIT; its message for Billing stays in the outbox.
	st, err := postgres.Open(ctx, s.dsn, postgres.WithLogger(logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	comp, err := componentpkg.LoadFile("testdata/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eng := xc.New(xc.Options{Store: st, Remote: failingRemote{}, SharedStore: true, Logger: logger(t)})
	if err := eng.Load(ctx, comp); err != nil {
		t.Fatal(err)
	}
	order, err := eng.Create(ctx, xc.CreateRequest{Component: "Shop", Data: map[string]any{"orderId": "crash-1", "amount": 7}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Send(ctx, order.ID, xc.Event{Type: "SUBMIT"}); err != nil {
		t.Fatal(err)
	}
	_ = eng.Close(ctx)
	_ = st.Close()
	if got := s.count("SELECT count(*) FROM outbox WHERE kind = 'create'"); got != 1 {
		t.Fatalf("outbox after the crash: %d create messages, want 1", got)
	}
	if got := s.count("SELECT count(*) FROM fsm_snapshots WHERE machine_name = 'Payment'"); got != 0 {
		t.Fatalf("%d payments before the restart", got)
	}

	// The restart: Billing, and two Shop runtimes at once.
	s.runtime("testdata/billing.yaml", "billing-1")
	done := make(chan struct{}, 2)
	for _, name := range []string{"shop-1", "shop-2"} {
		go func() {
			defer func() { done <- struct{}{} }()
			s.runtime("testdata/shop.yaml", name)
		}()
	}
	<-done
	<-done
	eventually(t, "payment created", func() bool {
		return s.count("SELECT count(*) FROM fsm_snapshots WHERE machine_name = 'Payment'") >= 1
	})
	eventually(t, "outbox empty", func() bool { return s.count("SELECT count(*) FROM outbox") == 0 })
	drained(t, s.vhost)
	if got := s.count("SELECT count(*) FROM fsm_snapshots WHERE machine_name = 'Payment' AND context->>'orderId' = 'crash-1'"); got != 1 {
		t.Fatalf("%d payments for the order, want exactly 1", got)
	}
	if got := s.count("SELECT count(*) FROM fsm_snapshots WHERE machine_name = 'Payment'"); got != 1 {
		t.Fatalf("%d payments, want 1", got)
	}
	applied := s.oc.count(wire.ChannelCreateInstance, distributed.OutcomeApplied)
	if applied < 1 {
		t.Fatalf("create_instance applied %d times", applied)
	}
	t.Logf("create_instance outcomes: applied %d, duplicate %d", applied, s.oc.count(wire.ChannelCreateInstance, distributed.OutcomeDuplicate))

	// The flow goes on from there.
	payments := s.ids("Payment", []string{"crash-1"})
	publish(t, s.client, wire.ChannelTriggerEvent, wire.TriggerEvent{ComponentName: "Billing", InstanceID: payments["crash-1"],
		Event: wire.Event{Type: "COMPLETE"}}, uuid.NewString())
	eventually(t, "order paid", func() bool {
		return s.count("SELECT count(*) FROM fsm_snapshots WHERE instance_id = $1::uuid AND current_state = 'Paid'", order.ID) == 1
	})
}

// TestCrossComponentEventVariants: the receiving side accepts what xcomponent-ai runtimes
// send (no message id, matchContext instead of matchingRules, rules without value or
// operator, no targetMachine), applies a redelivered message once per instance, adds
// _sourceComponent to the payload, and dead-letters what can never be applied.
func TestCrossComponentEventVariants(t *testing.T) {
	s := newShopTest(t)
	s.runtime("testdata/desk.yaml", "desk-1")
	refs := map[string]string{"t1": "a", "t2": "a", "t3": "b"}
	for i, name := range []string{"t1", "t2", "t3"} {
		publish(t, s.client, wire.ChannelCreateInstance, wire.CreateInstance{ComponentName: "Desk",
			Context: map[string]any{"name": name, "ref": refs[name], "n": i + 1}, Timestamp: wire.Now()}, uuid.NewString())
	}
	eventually(t, "tickets created", func() bool { return s.count("SELECT count(*) FROM fsm_snapshots") == 3 })
	raw := func(body string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := s.client.Publish(ctx, wire.ChannelCrossComponentEvent, []byte(body), bus.Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	// xcomponent-ai's shape, no ids, published twice (a redelivery): once per ticket.
	ts := `{"targetComponent":"Desk","targetMachine":"Ticket","event":{"type":"NOTE","payload":{"ref":"a","note":"hi"},"timestamp":1},
		"matchingRules":[{"eventProperty":"ref","instanceProperty":"ref","operator":"===","value":"a"}],
		"sourceComponent":"Tsc","sourceInstanceId":"src-1","timestamp":1}`
	raw(ts)
	raw(ts)
	// matchContext, no targetMachine, no source.
	raw(`{"targetComponent":"Desk","event":{"type":"NOTE","payload":{}},"matchContext":{"ref":"b"},"timestamp":2}`)
	// A rule without value (read from the payload) nor operator (===).
	raw(`{"targetComponent":"Desk","targetMachine":"Ticket","event":{"type":"NOTE","payload":{"n":2}},
		"matchingRules":[{"eventProperty":"n","instanceProperty":"n"}],"timestamp":3}`)
	// A numeric comparison.
	raw(`{"targetComponent":"Desk","targetMachine":"Ticket","event":{"type":"NOTE","payload":{}},
		"matchingRules":[{"eventProperty":"n","instanceProperty":"n","operator":">=","value":2}],"timestamp":4}`)
	// For another component: acknowledged, ignored.
	raw(`{"targetComponent":"Other","targetMachine":"X","event":{"type":"NOTE"},"matchingRules":[],"timestamp":5}`)
	// Never applicable: dead-lettered.
	raw(`{not json`)
	raw(`{"targetComponent":"Desk","targetMachine":"Ticket","event":{"type":"NOTE"},
		"matchingRules":[{"instanceProperty":"n","operator":"~","value":1}],"timestamp":6}`)
	raw(`{"targetComponent":"Desk","targetMachine":"Nope","event":{"type":"NOTE"},"matchingRules":[],"timestamp":7}`)

	ch := wire.ChannelCrossComponentEvent
	eventually(t, "cross-component events handled", func() bool {
		return s.oc.count(ch, distributed.OutcomeApplied) == 5 && s.oc.count(ch, distributed.OutcomeDeadLettered) == 3 &&
			s.oc.count(ch, distributed.OutcomeIgnored) == 1
	})
	version := func(name string) int {
		return s.count("SELECT version FROM fsm_snapshots WHERE context->>'name' = $1", name)
	}
	for name, want := range map[string]int{"t1": 1, "t2": 3, "t3": 2} {
		if got := version(name); got != want {
			t.Errorf("ticket %s: version %d, want %d", name, got, want)
		}
	}
	var payload map[string]any
	if err := s.db.QueryRow(context.Background(), `SELECT e.event_payload FROM fsm_events e JOIN fsm_snapshots s
		ON s.instance_id = e.instance_id WHERE s.context->>'name' = 't1' AND e.event_type = 'NOTE'`).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	if payload["_sourceComponent"] != "Tsc" || payload["note"] != "hi" {
		t.Errorf("NOTE payload: %v, want _sourceComponent Tsc and the event's payload", payload)
	}
	eventually(t, "poison messages in the dead-letter queue", func() bool {
		return queueDepths(t, s.vhost)[distributed.CrossComponentQueue("Desk")+".dlq"] == 3
	})
}

// TestOutboxLeftBehindTakenOver: messages a runtime of the component committed but never
// delivered (it died) are taken over by a live runtime of the component, without a restart:
// one for an instance of the component (redelivered through the engine) and one for another
// component (relayed); each applied once.
func TestOutboxLeftBehindTakenOver(t *testing.T) {
	s := newShopTest(t)
	s.runtime("testdata/desk.yaml", "desk-1")
	s.runtime("testdata/billing.yaml", "billing-1")
	publish(t, s.client, wire.ChannelCreateInstance, wire.CreateInstance{ComponentName: "Desk",
		Context: map[string]any{"name": "t1"}, Timestamp: wire.Now()}, uuid.NewString())
	var ticket string
	eventually(t, "ticket created", func() bool {
		rows, err := s.db.Query(context.Background(), "SELECT instance_id::text FROM fsm_snapshots WHERE machine_name = 'Ticket'")
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) == 1 {
			ticket = ids[0]
		}
		return ticket != ""
	})

	// What a dead Desk runtime left in the outbox, a minute ago.
	ctx := context.Background()
	st, err := postgres.Open(ctx, s.dsn, postgres.WithLogger(logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	at := time.Now().Add(-time.Minute).UnixMilli()
	var rows []store.Message
	for _, m := range []xc.Message{
		{ID: uuid.NewString(), Kind: xc.MessageSend, InstanceID: ticket, Event: xc.Event{Type: "CLOSE"}, Origin: "hook"},
		{ID: uuid.NewString(), Kind: xc.MessageCreate, Component: "Billing", Machine: "Payment",
			Data: map[string]any{"orderId": "left-1"}, Event: xc.Event{Type: "SUBMIT"}, Origin: "cross_component",
			SourceComponent: "Desk", SourceInstanceID: ticket},
	} {
		m.Event.ID = m.ID
		body, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, store.Message{ID: m.ID, Component: "Desk", Kind: m.Kind, Body: body, CreatedAt: at})
	}
	if err := st.Commit(ctx, &store.Commit{Outbox: rows}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "outbox taken over", func() bool { return s.count("SELECT count(*) FROM outbox") == 0 })
	eventually(t, "ticket closed", func() bool {
		return s.count("SELECT count(*) FROM fsm_snapshots WHERE instance_id = $1::uuid AND current_state = 'Closed'", ticket) == 1
	})
	eventually(t, "payment created", func() bool {
		return s.count("SELECT count(*) FROM fsm_snapshots WHERE machine_name = 'Payment'") == 1
	})
	drained(t, s.vhost)
	if got := s.count("SELECT count(*) FROM fsm_events WHERE instance_id = $1::uuid", ticket); got != 2 {
		t.Fatalf("ticket: %d events, want 2 (created, CLOSE once)", got)
	}
	if got := s.count("SELECT count(*) FROM fsm_snapshots WHERE machine_name = 'Payment' AND context->>'orderId' = 'left-1'"); got != 1 {
		t.Fatalf("%d payments, want 1", got)
	}
}
