package distributed_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/distributed/distributedtest"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/wire"
)

// TestBatchedCommandsAndReplies: commands published concurrently through a bus.Batcher travel
// several to a broker message (counted on the wire), mixed with single-command messages (and,
// for some instances, the ingress) for the same instances; two runtimes apply each once, in
// order per instance, and their replies travel several to a message too.
func TestBatchedCommandsAndReplies(t *testing.T) {
	url := vhost(t)
	dsn := pgtest.NewDatabase(t)
	frames := newFrameCounter(t, "127.0.0.1:5672")
	client := newClient(t, frames.url(url)) // the publisher and reply subscriber: counted
	rep := subscribeReplies(t, client)
	distributedtest.Start(t, counterConfig(url, dsn, "runtime-a", t))
	distributedtest.Start(t, counterConfig(url, dsn, "runtime-b", t))

	batcher := bus.NewBatcher(client, 0, 0)
	batcher.Partitions = func(string) int { return 4 } // as the runtimes announce
	ctx, cancel := context.WithTimeout(context.Background(), 4*timeout)
	defer cancel()
	const m, k = 64, 20
	ids := make([]string, m)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	before := frames.snapshot()
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			create := wire.CreateInstance{ComponentName: counters, Context: map[string]any{}, InstanceID: id, Timestamp: wire.Now()}
			if err := batcher.PublishCommand(ctx, counters, id, wire.ChannelCreateInstance, mustJSON(t, create), bus.Meta{MessageID: "create-" + id}); err != nil {
				t.Errorf("publish create: %v", err)
				return
			}
			for n := range k {
				tick := wire.TriggerEvent{ComponentName: counters, InstanceID: id, Event: wire.Event{Type: "TICK", Payload: map[string]any{"n": n}}}
				body, meta := mustJSON(t, tick), bus.Meta{MessageID: fmt.Sprintf("tick-%s-%d", id, n)}
				var err error
				switch {
				case i%4 == 3: // the xcomponent-ai channel: through the ingress (batched there)
					err = client.Publish(ctx, wire.ChannelTriggerEvent, body, meta)
				case n%5 == 4: // a single-command message, behind the batched ones
					err = bus.PublishCommand(ctx, client, counters, id, wire.ChannelTriggerEvent, body, meta)
				default:
					err = batcher.PublishCommand(ctx, counters, id, wire.ChannelTriggerEvent, body, meta)
				}
				if err != nil {
					t.Errorf("publish tick: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	waitReplies(t, rep, ids, k)
	after := frames.snapshot()
	checkReplies(t, rep)

	commands := m * (k + 1)
	published, batched := batcher.Stats()
	singles := int64(m/4*3*k/5) + int64(m/4*k) // single messages to the partitions, and to the ingress
	publishes := after["c>s basic.publish"] - before["c>s basic.publish"]
	t.Logf("%d commands: %d through the batcher in %d messages, %d single; the client published %d messages; %d replies delivered in %d messages",
		commands, batched, published, singles, publishes, len(rep.all()), after["s>c basic.deliver"]-before["s>c basic.deliver"])
	if batched != int64(commands)-singles || publishes != published+singles {
		t.Fatalf("batcher: %d commands in %d messages, client published %d, want %d commands and %d messages", batched, published, publishes, int64(commands)-singles, published+singles)
	}
	if published*2 > batched {
		t.Fatalf("%d commands in %d messages: not batched under concurrency", batched, published)
	}
	// Replies (and nothing else to this client but its replies' deliveries).
	if delivered := after["s>c basic.deliver"] - before["s>c basic.deliver"]; delivered*2 > int64(len(rep.all())) {
		t.Fatalf("%d replies in %d deliveries: replies not batched", len(rep.all()), delivered)
	}

	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close(context.Background()) }()
	checkOrder(t, db, ids, k)
	if n := queryInt(t, db, "SELECT count(*) FROM fsm_events WHERE event_type = 'INSTANCE_CREATED'"); n != m {
		t.Fatalf("%d creation events, want %d", n, m)
	}
}

// TestBatchPartitionCount: a runtime with 3 partitions. A publisher that does not know the
// count batches the commands of one routing bucket: applied once each, in order. One that
// assumes another count (8) sends batches holding commands of other partitions: the runtime
// forwards those, and each is applied once.
func TestBatchPartitionCount(t *testing.T) {
	url := vhost(t)
	dsn := pgtest.NewDatabase(t)
	client := newClient(t, url)
	rep := subscribeReplies(t, client)
	cfg := counterConfig(url, dsn, "runtime-a", t)
	cfg.Partitions = 3
	distributedtest.Start(t, cfg)

	byBucket, wrong := bus.NewBatcher(client, 0, 0), bus.NewBatcher(client, 0, 0)
	wrong.Partitions = func(string) int { return 8 }
	ctx, cancel := context.WithTimeout(context.Background(), 4*timeout)
	defer cancel()
	const m, k = 64, 10
	ids := make([]string, m)
	for i := range ids {
		ids[i] = uuid.NewString()
		// The by-bucket publisher's instances in 4 buckets, so that their commands meet.
		for i%2 == 0 && bus.Bucket(ids[i]) >= 4 {
			ids[i] = uuid.NewString()
		}
	}
	pub := func(i int) *bus.Batcher {
		if i%2 == 0 {
			return byBucket
		}
		return wrong
	}
	run := func(each func(i int, id string) error) {
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := each(i, id); err != nil {
					t.Errorf("publish: %v", err)
				}
			}()
		}
		wg.Wait()
	}
	// The creates first, answered: a forwarded create may come after a later command.
	run(func(i int, id string) error {
		create := wire.CreateInstance{ComponentName: counters, Context: map[string]any{}, InstanceID: id, Timestamp: wire.Now()}
		return pub(i).PublishCommand(ctx, counters, id, wire.ChannelCreateInstance, mustJSON(t, create), bus.Meta{MessageID: "create-" + id})
	})
	waitReplies(t, rep, ids, 0)
	run(func(i int, id string) error {
		for n := range k {
			tick := wire.TriggerEvent{ComponentName: counters, InstanceID: id, Event: wire.Event{Type: "TICK", Payload: map[string]any{"n": n}}}
			if err := pub(i).PublishCommand(ctx, counters, id, wire.ChannelTriggerEvent, mustJSON(t, tick), bus.Meta{MessageID: fmt.Sprintf("tick-%s-%d", id, n)}); err != nil {
				return err
			}
		}
		return nil
	})
	waitReplies(t, rep, ids, k)
	checkReplies(t, rep)
	for _, b := range []*bus.Batcher{byBucket, wrong} {
		if published, batched := b.Stats(); published == batched {
			t.Fatalf("%d commands in %d messages: nothing batched", batched, published)
		}
	}
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close(context.Background()) }()
	var inOrder []string
	for i, id := range ids {
		if i%2 == 0 {
			inOrder = append(inOrder, id)
		} else if n := queryInt(t, db, "SELECT count(*) FROM fsm_events WHERE instance_id = $1 AND event_type = 'TICK'", id); n != k {
			t.Fatalf("instance %s: %d TICKs applied, want %d", id, n, k)
		}
	}
	checkOrder(t, db, inOrder, k)
}

// TestBatchRedeliveredAfterKill: a runtime process is killed (SIGKILL) while it applies one
// batch of commands, part of them committed: the broker redelivers the whole batch to the
// other runtime, which applies the rest and answers the committed ones "duplicate": each
// command applied exactly once, in order.
func TestBatchRedeliveredAfterKill(t *testing.T) {
	url := vhost(t)
	dsn := pgtest.NewDatabase(t)
	client := newClient(t, url)
	rep := subscribeReplies(t, client)
	a := startChild(t, url, dsn, "runtime-a")

	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	// One instance, created first; then one batch of k of its TICKs, applied one after the
	// other (one instance: in order), which leaves time to kill the runtime in the middle.
	id := uuid.NewString()
	create := wire.CreateInstance{ComponentName: counters, Context: map[string]any{}, InstanceID: id, Timestamp: wire.Now()}
	if err := bus.PublishCommand(ctx, client, counters, id, wire.ChannelCreateInstance, mustJSON(t, create), bus.Meta{MessageID: "create-" + id}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the create answered", func() bool { return len(rep.get("create-"+id)) > 0 })
	const k = 400
	msgs := make([]bus.Message, k)
	for n := range k {
		tick := wire.TriggerEvent{ComponentName: counters, InstanceID: id, Event: wire.Event{Type: "TICK", Payload: map[string]any{"n": n}}}
		msgs[n] = bus.Message{Body: mustJSON(t, tick), Meta: bus.Meta{MessageID: fmt.Sprintf("tick-%s-%d", id, n),
			Headers: map[string]string{bus.HeaderCommand: wire.ChannelTriggerEvent, bus.HeaderInstance: id}}}
	}
	body, meta, err := bus.EncodeBatch(msgs)
	if err != nil {
		t.Fatal(err)
	}
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close(context.Background()) }()
	ticks := func() int {
		return queryInt(t, db, "SELECT count(*) FROM fsm_events WHERE instance_id = $1 AND event_type = 'TICK'", id)
	}
	if err := client.Publish(ctx, bus.CommandChannel(counters, id), body, meta); err != nil {
		t.Fatal(err)
	}
	eventually(t, "part of the batch applied", func() bool { return ticks() >= 20 })
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.done
	atKill := ticks()
	t.Logf("runtime A killed with %d of the batch's %d commands committed", atKill, k)
	if atKill >= k {
		t.Fatalf("the whole batch was applied before the kill: nothing to redeliver (make it longer)")
	}
	distributedtest.Start(t, counterConfig(url, dsn, "runtime-b", t))
	waitReplies(t, rep, []string{id}, k)
	checkReplies(t, rep)
	checkOrder(t, db, []string{id}, k)
	// The commands A committed were redelivered to B with the batch: answered duplicate.
	duplicates := 0
	for n := range atKill {
		for _, r := range rep.get(fmt.Sprintf("tick-%s-%d", id, n)) {
			if r.Status == wire.ReplyDuplicate {
				duplicates++
				break
			}
		}
	}
	if duplicates == 0 {
		t.Fatalf("none of the %d commands committed before the kill was answered duplicate: the batch was not redelivered", atKill)
	}
	t.Logf("%d of them answered duplicate by runtime B after the redelivery", duplicates)
}

// TestMalformedBatchDeadLettered: a batch that cannot be decoded goes to the dead-letter
// queue once, whole, with its reason; a malformed command in a good batch goes there alone,
// with its own reason and headers, while the batch's other commands are applied.
func TestMalformedBatchDeadLettered(t *testing.T) {
	url := vhost(t)
	dsn := pgtest.NewDatabase(t)
	client := newClient(t, url)
	rep := subscribeReplies(t, client)
	distributedtest.Start(t, counterConfig(url, dsn, "runtime-a", t))

	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	var (
		mu   sync.Mutex
		dead []bus.Message
	)
	sub, err := client.Consume(ctx, bus.DeadLetterQueue(bus.CommandQueue(counters)), nil, func(_ context.Context, m bus.Message) error {
		mu.Lock()
		dead = append(dead, m)
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Close() }()

	id := uuid.NewString()
	create := wire.CreateInstance{ComponentName: counters, Context: map[string]any{}, InstanceID: id, Timestamp: wire.Now()}
	if err := bus.PublishCommand(ctx, client, counters, id, wire.ChannelCreateInstance, mustJSON(t, create), bus.Meta{MessageID: "create-" + id}); err != nil {
		t.Fatal(err)
	}
	// Not a batch body: dead-lettered whole.
	if err := client.Publish(ctx, bus.CommandChannel(counters, id), []byte(`{"type":"xcomponent_batch","messages":"nope"}`),
		bus.Meta{MessageID: "bad-batch", Headers: map[string]string{bus.HeaderBatch: "2"}}); err != nil {
		t.Fatal(err)
	}
	// A good batch with a malformed command (no event type) between two good ones.
	cmd := func(msgID string, v any) bus.Message {
		return bus.Message{Body: mustJSON(t, v), Meta: bus.Meta{MessageID: msgID,
			Headers: map[string]string{bus.HeaderCommand: wire.ChannelTriggerEvent, bus.HeaderInstance: id}}}
	}
	tick := func(n int) wire.TriggerEvent {
		return wire.TriggerEvent{ComponentName: counters, InstanceID: id, Event: wire.Event{Type: "TICK", Payload: map[string]any{"n": n}}}
	}
	body, meta, err := bus.EncodeBatch([]bus.Message{
		cmd(fmt.Sprintf("tick-%s-0", id), tick(0)),
		cmd("bad-command", wire.TriggerEvent{ComponentName: counters, InstanceID: id}),
		cmd(fmt.Sprintf("tick-%s-1", id), tick(1)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Publish(ctx, bus.CommandChannel(counters, id), body, meta); err != nil {
		t.Fatal(err)
	}
	// A last malformed single command for the same instance: handled after the batch's (same
	// instance, in order), so once it is dead-lettered the others are too.
	if err := bus.PublishCommand(ctx, client, counters, id, wire.ChannelTriggerEvent, []byte(`{"instanceId":"`+id+`"}`), bus.Meta{MessageID: "last"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the last malformed command dead-lettered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range dead {
			if m.MessageID == "last" {
				return true
			}
		}
		return false
	})
	waitReplies(t, rep, []string{id}, 2)
	for n := range 2 {
		if reps := rep.get(fmt.Sprintf("tick-%s-%d", id, n)); len(reps) != 1 || reps[0].Status != wire.ReplyApplied {
			t.Fatalf("TICK %d of the batch answered %+v, want applied once", n, reps)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	by := map[string][]bus.Message{}
	for _, m := range dead {
		by[m.MessageID] = append(by[m.MessageID], m)
	}
	if len(dead) != 3 || len(by["bad-batch"]) != 1 || len(by["bad-command"]) != 1 {
		var got []string
		for _, m := range dead {
			got = append(got, m.MessageID+": "+m.Headers[bus.HeaderDeadLetterReason])
		}
		t.Fatalf("dead letters %q, want bad-batch, bad-command and last once each", got)
	}
	if r := by["bad-batch"][0].Headers[bus.HeaderDeadLetterReason]; !strings.Contains(r, "malformed batch") {
		t.Fatalf("bad batch dead-lettered with reason %q", r)
	}
	bc := by["bad-command"][0]
	if r := bc.Headers[bus.HeaderDeadLetterReason]; !strings.Contains(r, "malformed trigger_event") ||
		bc.Headers[bus.HeaderCommand] != wire.ChannelTriggerEvent || bc.Headers[bus.HeaderInstance] != id || bus.IsBatch(bc) {
		t.Fatalf("bad command dead-lettered with reason %q, headers %v", r, bc.Headers)
	}
	if reps := rep.get("bad-command"); len(reps) != 1 || reps[0].Status != wire.ReplyDeadLettered {
		t.Fatalf("bad command answered %+v, want dead-lettered once", reps)
	}
}
