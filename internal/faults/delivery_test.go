package faults_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/internal/faults"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/wire"
)

// deadLetters records the messages of dead-letter queues.
type deadLetters struct {
	mu     sync.Mutex
	reason map[string]string // message id → reason header
	queue  map[string]string // message id → dead-letter queue
}

func watchDeadLetters(t testing.TB, b bus.Bus, queues ...string) *deadLetters {
	t.Helper()
	d := &deadLetters{reason: map[string]string{}, queue: map[string]string{}}
	for _, q := range queues {
		dlq := bus.DeadLetterQueue(q)
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		sub, err := b.Consume(ctx, dlq, nil, func(_ context.Context, m bus.Message) error {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.reason[m.MessageID] = m.Headers[bus.HeaderDeadLetterReason]
			d.queue[m.MessageID] = dlq
			return nil
		})
		cancel()
		if err != nil {
			t.Fatalf("consume %s: %v", dlq, err)
		}
		t.Cleanup(func() { _ = sub.Close() })
	}
	return d
}

func (d *deadLetters) get(mid string) (queue, reason string, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	q, ok := d.queue[mid]
	return q, d.reason[mid], ok
}

// TestDeliveryFaults: two `xcomponent runtime` processes of one component on RabbitMQ and
// PostgreSQL receive
//   - a poison message (undecodable, or decodable with the wrong types, or of an unknown
//     kind) on each command channel: the xcomponent-ai channels trigger_event and
//     create_instance (through the ingress queue), cross_component_event (the component's
//     cross-component queue) and the partition queues (both command kinds and an unknown
//     one), each followed by a good command on the same path. Every poison message must be
//     dead-lettered with its reason, nothing applied, and the good command behind it applied
//     (no head-of-line blocking): the time from the poison to that is the time to recover;
//   - duplicated deliveries: every command twice with one message id, once straight to its
//     partition and once through the ingress queue, and a stale copy of an early command again
//     once later ones were applied: applied once, the copies answered "duplicate";
//   - reordered deliveries: per instance TICK 1 before TICK 0, and a STOP that overtakes a
//     TICK: applied in arrival order, the overtaken TICK refused (the instance is complete),
//     not applied later; and commands racing on two paths (ingress and partition).
//
// Every instance ends consistent with its event log.
func TestDeliveryFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection: -short")
	}
	t.Parallel()
	_, url := rmqtest.NewVhost(t)
	dsn := pgtest.NewDatabase(t)
	client := newBus(t, url)
	dl := watchDeadLetters(t, client, bus.IngressQueue, bus.CommandQueue(comp), distributed.CrossComponentQueue(comp))
	poisonLed, dupLed, reorderLed := faults.NewLedger(), faults.NewLedger(), faults.NewLedger()
	// One reply watcher per ledger (a message id belongs to one).
	poisonRep := watchReplies(t, client, poisonLed)
	dupRep := watchReplies(t, client, dupLed)
	reorderRep := watchReplies(t, client, reorderLed)

	a := startRuntime(t, "faults-a", url, dsn)
	b := startRuntime(t, "faults-b", url, dsn)
	db, err := faults.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	applied := func(tok string) bool {
		var n int
		err := db.QueryRow("SELECT count(*) FROM fsm_events WHERE event_payload->>'tok' = $1", tok).Scan(&n)
		return err == nil && n > 0
	}
	created := func(id string) bool {
		var n int
		err := db.QueryRow("SELECT count(*) FROM fsm_snapshots WHERE instance_id::text = $1", id).Scan(&n)
		return err == nil && n > 0
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		if err := faults.Poll(waitFor, func() (bool, error) { return cond(), nil }); err != nil {
			t.Fatalf("%s: %v\n%s\n%s", what, err, a.Tail(20), b.Tail(20))
		}
	}

	// Poison, channel by channel.
	poisonIDs := create(t, client, poisonRep, poisonLed, "poison", 4)
	waitUntil("poison instances created", func() bool { return poisonRep.answered(poisonIDs...) })
	type poison struct {
		channel string
		dlq     string
		send    func(mid string)        // publishes the poison message
		good    func(k int) func() bool // publishes a good command on the same path; reports when applied
	}
	goodTick := func(k, i int, via func(id string, body []byte, mid string)) func() bool {
		id := poisonIDs[i%len(poisonIDs)]
		tok := fmt.Sprintf("poison-%d", k)
		mid := uuid.NewString()
		poisonLed.Sent(id, tok)
		poisonRep.expect(mid, tok)
		via(id, tick(t, id, tok, k), mid)
		return func() bool { return applied(tok) }
	}
	viaIngress := func(id string, body []byte, mid string) { publish(t, client, wire.ChannelTriggerEvent, body, mid) }
	viaPartition := func(id string, body []byte, mid string) {
		publishCommand(t, client, wire.ChannelTriggerEvent, id, body, mid)
	}
	partitionCreate := uuid.NewString() // the poison create and the good one behind it share its partition
	poisons := []poison{
		{channel: "fsm:commands:trigger_event (undecodable)", dlq: bus.IngressQueue,
			send: func(mid string) { publish(t, client, wire.ChannelTriggerEvent, []byte("{not json"), mid) },
			good: func(k int) func() bool { return goodTick(k, k, viaIngress) }},
		{channel: "fsm:commands:trigger_event (wrong types)", dlq: bus.IngressQueue,
			send: func(mid string) {
				publish(t, client, wire.ChannelTriggerEvent, []byte(`{"componentName":"Counters","instanceId":42,"event":"TICK"}`), mid)
			},
			good: func(k int) func() bool { return goodTick(k, k, viaIngress) }},
		{channel: "fsm:commands:create_instance (wrong types)", dlq: bus.IngressQueue,
			send: func(mid string) {
				publish(t, client, wire.ChannelCreateInstance, []byte(`{"componentName":"Counters","context":"nope"}`), mid)
			},
			good: func(k int) func() bool {
				id := uuid.NewString()
				poisonLed.Sent("", id)
				poisonRep.expect(id, id)
				publish(t, client, wire.ChannelCreateInstance, mustJSON(t, wire.CreateInstance{ComponentName: comp, MachineName: "Counter",
					InstanceID: id, Context: map[string]any{"key": "poison-created"}, Timestamp: wire.Now()}), id)
				return func() bool { return created(id) }
			}},
		{channel: "fsm:commands:cross_component_event (undecodable)", dlq: distributed.CrossComponentQueue(comp),
			send: func(mid string) { publish(t, client, wire.ChannelCrossComponentEvent, []byte("{not json"), mid) },
			good: func(k int) func() bool {
				i := k % len(poisonIDs)
				tok := fmt.Sprintf("poison-%d", k)
				poisonLed.Sent(poisonIDs[i], tok)
				publish(t, client, wire.ChannelCrossComponentEvent, mustJSON(t, wire.CrossComponentEvent{TargetComponent: comp,
					TargetMachine: "Counter", Event: wire.Event{Type: "TICK", Payload: map[string]any{"tok": tok, "key": fmt.Sprintf("poison-%d", i)}},
					MatchingRules:   []wire.MatchingRule{{EventProperty: "key", InstanceProperty: "key", Operator: "==="}},
					SourceComponent: "FaultsSource", SourceInstanceID: uuid.NewString(), Timestamp: wire.Now()}), uuid.NewString())
				return func() bool { return applied(tok) }
			}},
		{channel: "fsm:commands:cross_component_event (no target)", dlq: distributed.CrossComponentQueue(comp),
			send: func(mid string) {
				publish(t, client, wire.ChannelCrossComponentEvent, []byte(`{"targetMachine":"Counter","event":{"type":"TICK"}}`), mid)
			},
			good: func(k int) func() bool { return goodTick(k, k, viaPartition) }},
		{channel: "partition queue, trigger_event (undecodable)", dlq: bus.CommandQueue(comp),
			send: func(mid string) {
				publishCommand(t, client, wire.ChannelTriggerEvent, poisonIDs[0], []byte("{not json"), mid)
			},
			good: func(k int) func() bool { return goodTick(k, 0, viaPartition) }},
		{channel: "partition queue, create_instance (wrong types)", dlq: bus.CommandQueue(comp),
			send: func(mid string) {
				publishCommand(t, client, wire.ChannelCreateInstance, partitionCreate, []byte(`{"componentName":"Counters","context":[1]}`), mid)
			},
			good: func(int) func() bool {
				poisonLed.Sent("", partitionCreate)
				poisonRep.expect(partitionCreate, partitionCreate)
				publishCommand(t, client, wire.ChannelCreateInstance, partitionCreate, mustJSON(t, wire.CreateInstance{ComponentName: comp,
					MachineName: "Counter", InstanceID: partitionCreate, Context: map[string]any{}, Timestamp: wire.Now()}), partitionCreate)
				return func() bool { return created(partitionCreate) }
			}},
		{channel: "partition queue, unknown command kind", dlq: bus.CommandQueue(comp),
			send: func(mid string) {
				publishCommand(t, client, "fsm:commands:format_disk", poisonIDs[1], []byte(`{}`), mid)
			},
			good: func(k int) func() bool { return goodTick(k, 1, viaPartition) }},
	}
	// Decodable but hostile commands: data no store can keep as sent (NUL), unknown machine or
	// operator, a rule comparing an object: refused or dead-lettered, never applied, and no
	// head-of-line blocking either.
	hostile := func(k int, channel string, body func(tok string) []byte, toPartition bool) poison {
		return poison{channel: channel, send: func(mid string) {
			b := body(fmt.Sprintf("hostile-%d", k))
			switch {
			case strings.Contains(channel, "cross_component_event"):
				publish(t, client, wire.ChannelCrossComponentEvent, b, mid)
			case toPartition:
				publishCommand(t, client, wire.ChannelTriggerEvent, poisonIDs[2], b, mid)
			default:
				publish(t, client, wire.ChannelTriggerEvent, b, mid)
			}
		}, good: func(k int) func() bool {
			if !toPartition && !strings.Contains(channel, "cross_component_event") {
				return goodTick(k, 2, viaIngress) // behind it on the ingress queue
			}
			return goodTick(k, 2, viaPartition)
		}}
	}
	nulTick := func(tok string) []byte {
		return []byte(`{"componentName":"Counters","instanceId":"` + poisonIDs[2] + `","event":{"type":"TICK","payload":{"tok":"` + tok + `","s":"a\u0000b"}}}`)
	}
	hostiles := []poison{
		hostile(100, "partition queue, trigger_event (NUL in the payload)", nulTick, true),
		hostile(101, "fsm:commands:trigger_event (NUL in the payload)", nulTick, false),
		hostile(102, "fsm:commands:trigger_event (NUL in the event type)", func(tok string) []byte {
			return []byte(`{"componentName":"Counters","instanceId":"` + poisonIDs[2] + `","event":{"type":"TI\u0000CK","payload":{"tok":"` + tok + `"}}}`)
		}, false),
		hostile(103, "fsm:commands:cross_component_event (unknown operator)", func(tok string) []byte {
			return mustJSON(t, wire.CrossComponentEvent{TargetComponent: comp, TargetMachine: "Counter",
				Event:         wire.Event{Type: "TICK", Payload: map[string]any{"tok": tok, "key": "poison-2"}},
				MatchingRules: []wire.MatchingRule{{EventProperty: "key", InstanceProperty: "key", Operator: "~~"}}, SourceComponent: "X", Timestamp: wire.Now()})
		}, true),
		hostile(104, "fsm:commands:cross_component_event (object compared)", func(tok string) []byte {
			return mustJSON(t, wire.CrossComponentEvent{TargetComponent: comp, TargetMachine: "Counter",
				Event:         wire.Event{Type: "TICK", Payload: map[string]any{"tok": tok}},
				MatchingRules: []wire.MatchingRule{{EventProperty: "key", InstanceProperty: "key", Operator: ">", Value: map[string]any{"a": 1}}}, SourceComponent: "X", Timestamp: wire.Now()})
		}, true),
		hostile(105, "fsm:commands:cross_component_event (unknown machine)", func(tok string) []byte {
			return mustJSON(t, wire.CrossComponentEvent{TargetComponent: comp, TargetMachine: "Nope",
				Event: wire.Event{Type: "TICK", Payload: map[string]any{"tok": tok}}, SourceComponent: "X", Timestamp: wire.Now()})
		}, true),
	}
	for i, h := range hostiles { // each hostile message is followed by a good command: recovery k
		h.channel = "hostile: " + h.channel
		hostiles[i] = h
	}
	var recoveries []time.Duration
	var poisonMids []string
	channels := map[string]bool{}
	for k, p := range append(poisons, hostiles...) {
		mid := uuid.NewString()
		poisonMids = append(poisonMids, mid)
		at := time.Now()
		p.send(mid)
		done := p.good(k)
		waitUntil("the good command behind the poison on "+p.channel, done)
		recoveries = append(recoveries, time.Since(at))
		if p.dlq == "" { // hostile: refused or dead-lettered, checked in the store below
			t.Logf("%s: the next command applied %v after it", p.channel, recoveries[k].Round(time.Millisecond))
			continue
		}
		waitUntil("poison on "+p.channel+" dead-lettered", func() bool { _, _, ok := dl.get(mid); return ok })
		q, reason, _ := dl.get(mid)
		if q != bus.DeadLetterQueue(p.dlq) || strings.TrimSpace(reason) == "" {
			t.Errorf("poison on %s: dead-lettered in %s with reason %q, want %s with a reason", p.channel, q, reason, bus.DeadLetterQueue(p.dlq))
		}
		channels[strings.Fields(p.channel)[0]] = true
		t.Logf("poison on %s: dead-lettered (%s), the next command applied %v after it", p.channel, reason, recoveries[k].Round(time.Millisecond))
	}

	// Duplicated deliveries.
	const m, k = 6, 5
	dupIDs := create(t, client, dupRep, dupLed, "dup", m)
	waitUntil("dup instances created", func() bool { return dupRep.answered(dupIDs...) })
	var dupMids []string
	stale := map[string][]byte{}
	for n := range k {
		for _, id := range dupIDs {
			tok, mid := fmt.Sprintf("dup-%s-%d", id, n), uuid.NewString()
			dupLed.Sent(id, tok)
			dupRep.expect(mid, tok)
			body := tick(t, id, tok, n)
			publishCommand(t, client, wire.ChannelTriggerEvent, id, body, mid)
			publish(t, client, wire.ChannelTriggerEvent, body, mid)
			dupMids = append(dupMids, mid)
			if n == 1 {
				stale[mid] = body
			}
		}
	}
	waitUntil("every duplicated command answered twice", func() bool {
		return dupRep.count(wire.ReplyApplied, dupMids...)+dupRep.count(wire.ReplyDuplicate, dupMids...) >= 2*m*k
	})
	for mid, body := range stale { // an old copy, once later commands were applied
		publish(t, client, wire.ChannelTriggerEvent, body, mid)
	}
	waitUntil("the stale copies answered", func() bool {
		return dupRep.count(wire.ReplyApplied, dupMids...)+dupRep.count(wire.ReplyDuplicate, dupMids...) >= 2*m*k+m
	})
	if n := dupRep.count(wire.ReplyApplied, dupMids...); n != m*k {
		t.Errorf("duplicated deliveries: %d answered applied, want %d", n, m*k)
	}
	duplicates := dupRep.count(wire.ReplyDuplicate, dupMids...)

	// Reordered deliveries.
	reIDs := create(t, client, reorderRep, reorderLed, "reorder", m)
	waitUntil("reorder instances created", func() bool { return reorderRep.answered(reIDs...) })
	var reMids, overtaken []string
	for _, id := range reIDs {
		send := func(stream, typ string, n int, viaIngress bool) string {
			tok, mid := fmt.Sprintf("reorder-%s-%s%d", id, typ, n), uuid.NewString()
			reorderLed.Sent(stream, tok)
			reorderRep.expect(mid, tok)
			body := mustJSON(t, wire.TriggerEvent{ComponentName: comp, InstanceID: id,
				Event: wire.Event{Type: typ, Payload: map[string]any{"tok": tok, "n": n}}})
			if viaIngress {
				publish(t, client, wire.ChannelTriggerEvent, body, mid)
			} else {
				publishCommand(t, client, wire.ChannelTriggerEvent, id, body, mid)
			}
			reMids = append(reMids, mid)
			return mid
		}
		send(id, "TICK", 1, false) // TICK 1 before TICK 0
		send(id, "TICK", 0, false)
		send("", "TICK", 10, true) // two paths racing: either order, each once
		send("", "TICK", 11, false)
	}
	waitUntil("reordered commands answered", func() bool { return reorderRep.answered(reMids...) })
	for _, id := range reIDs {
		// The STOP overtakes the TICK 2 sent before it: the TICK arrives at a completed instance.
		stop := uuid.NewString()
		tok := fmt.Sprintf("reorder-%s-STOP", id)
		reorderLed.Sent(id, tok)
		reorderRep.expect(stop, tok)
		publishCommand(t, client, wire.ChannelTriggerEvent, id, mustJSON(t, wire.TriggerEvent{ComponentName: comp, InstanceID: id,
			Event: wire.Event{Type: "STOP", Payload: map[string]any{"tok": tok}}}), stop)
		late, ltok := uuid.NewString(), fmt.Sprintf("reorder-%s-TICK2", id)
		reorderLed.Sent(id, ltok)
		reorderRep.expect(late, ltok)
		publishCommand(t, client, wire.ChannelTriggerEvent, id, tick(t, id, ltok, 2), late)
		reMids = append(reMids, stop, late)
		overtaken = append(overtaken, late)
	}
	waitUntil("overtaken commands answered", func() bool { return reorderRep.answered(reMids...) })
	if n := reorderRep.count(wire.ReplyRefused, overtaken...); n != len(overtaken) {
		t.Errorf("%d of %d TICKs overtaken by a STOP answered refused", n, len(overtaken))
	}

	a.Stop()
	b.Stop()
	st, err := faults.Read(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	poisoned := setOf(poisonMids)
	for id := range st.Events {
		for _, e := range st.Events[id] {
			if poisoned[e.ID] || strings.HasPrefix(e.Token(), "hostile-") {
				t.Errorf("poison or hostile message applied: %+v", e)
			}
		}
	}
	for _, p := range []*faults.Proc{a, b} {
		if strings.Contains(p.Tail(100000), "panic") {
			t.Errorf("%s panicked", p.Name)
		}
	}
	for _, id := range reIDs {
		if s := st.Snapshots[id]; s.State != "Done" || s.Version != 5 {
			t.Errorf("reordered instance %s: %s v%d, want Done v5 (4 TICKs, STOP; the overtaken TICK refused)", id, s.State, s.Version)
		}
	}

	var maxRec time.Duration
	for _, r := range recoveries {
		maxRec = max(maxRec, r)
	}
	judge := func(led *faults.Ledger, prefix string, ids []string) (faults.Verdict, *faults.State) {
		sub := &faults.State{Events: map[string][]faults.Event{}, Snapshots: map[string]faults.Snapshot{}}
		for id := range setOf(ids) {
			sub.Events[id], sub.Snapshots[id] = st.Events[id], st.Snapshots[id]
		}
		v := faults.Judge(led, sub, keyOf(prefix, setOf(ids)))
		faults.Check(t, v)
		return v, sub
	}
	allPoison := append(append([]string{}, poisonIDs...), partitionCreate)
	for id, s := range st.Snapshots {
		if s.Context["key"] == "poison-created" {
			allPoison = append(allPoison, id)
		}
	}
	if inc := st.Inconsistent(); len(inc) > 0 {
		t.Errorf("instances inconsistent with their event log: %v", inc)
	}
	v, sub := judge(poisonLed, "poison-", allPoison)
	row := faults.RowOf(faults.ScenarioPoison, "2 runtimes, PostgreSQL", v, sub)
	row.Recovery, row.RecoveryFrom = maxRec, "poison published → the next command on its queue applied, worst channel"
	row.Notes = fmt.Sprintf("%d undecodable messages on %d channels (xcomponent-ai trigger/create, cross-component, partition queues): all dead-lettered with a reason; %d decodable hostile ones (NUL in data, unknown operator/machine, object compared): refused; none applied, the next command on the queue applied each time",
		len(poisons), len(channels), len(hostiles))
	faults.Record(t, row)
	v, sub = judge(dupLed, "dup-", dupIDs)
	row = faults.RowOf(faults.ScenarioDuplicate, "2 runtimes, PostgreSQL", v, sub)
	row.Notes = fmt.Sprintf("each TICK delivered twice (partition + ingress) and %d stale copies later: %d answered duplicate", m, duplicates)
	faults.Record(t, row)
	v, sub = judge(reorderLed, "reorder-", reIDs)
	row = faults.RowOf(faults.ScenarioReorder, "2 runtimes, PostgreSQL", v, sub)
	row.Notes = fmt.Sprintf("TICK 1 before TICK 0 (applied in arrival order), ingress and partition racing, a STOP overtaking a TICK: the %d overtaken TICKs refused, not applied", len(overtaken))
	faults.Record(t, row)
}
