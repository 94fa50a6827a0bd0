package distributed_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/bus/rabbitmq"
	"github.com/xcomponent/xcomponent/distributed/distributedtest"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/wire"
)

// logBuffer keeps a runtime's log lines (and shows them with -v).
type logBuffer struct {
	t  *testing.T
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if testing.Verbose() {
		l.t.Log(strings.TrimSpace(string(p)))
	}
	return l.b.Write(p)
}

func (l *logBuffer) lines(substr ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
next:
	for _, line := range strings.Split(l.b.String(), "\n") {
		for _, s := range substr {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		out = append(out, line)
	}
	return out
}

// instanceIn returns a new instance id whose commands go to partition i of n.
func instanceIn(i, n int) string {
	for {
		if id := uuid.NewString(); bus.Partition(id, n) == i {
			return id
		}
	}
}

// A runtime of this version starts on the queues of an earlier one: partition queues declared
// with other arguments (another TTL and length bound without single active consumer; a classic
// queue) are used as they are, with one warning each naming the queue and the argument; the
// per-component command queue of the versions before partitions is unbound, its commands for
// the component are moved to the partitions and applied, and it is deleted.
func TestUpgradeFromEarlierQueues(t *testing.T) {
	url := vhost(t)
	dsn := pgtest.NewDatabase(t)
	const n = 4
	old := bus.CommandQueue(counters)

	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ch.ExchangeDeclare(wire.Exchange, amqp.ExchangeTopic, true, false, false, false, nil))
	must(ch.ExchangeDeclare(rabbitmq.DeadLetterExchange, amqp.ExchangeDirect, true, false, false, false, nil))
	dlq := bus.DeadLetterQueue(old)
	p0, p1 := bus.PartitionQueue(counters, n, 0), bus.PartitionQueue(counters, n, 1)
	_, err = ch.QueueDeclare(p0, true, false, false, false, amqp.Table{
		"x-queue-type": "quorum", "x-dead-letter-exchange": rabbitmq.DeadLetterExchange, "x-dead-letter-routing-key": dlq,
		"x-message-ttl": int64(60_000), "x-max-length": int64(5000),
	})
	must(err)
	_, err = ch.QueueDeclare(p1, true, false, false, false, amqp.Table{"x-queue-type": "classic"})
	must(err)
	// The queue of the versions before partitions, with commands nobody applied yet: two for
	// this component, one for another (ignored by its old runtime too).
	_, err = ch.QueueDeclare(old, true, false, false, false, amqp.Table{
		"x-queue-type": "quorum", "x-dead-letter-exchange": rabbitmq.DeadLetterExchange, "x-dead-letter-routing-key": old,
	})
	must(err)
	for _, c := range []string{wire.ChannelTriggerEvent, wire.ChannelCreateInstance} {
		must(ch.QueueBind(old, wire.RoutingKey(c), wire.Exchange, false, nil))
	}
	oldCreates := []string{uuid.NewString(), uuid.NewString()}
	pubOld := func(comp, instanceID, msgID string) {
		body := mustJSON(t, wire.CreateInstance{ComponentName: comp, InstanceID: instanceID, Timestamp: wire.Now()})
		must(ch.PublishWithContext(context.Background(), wire.Exchange, wire.RoutingKey(wire.ChannelCreateInstance), false, false,
			amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: msgID, Body: body}))
	}
	for _, id := range oldCreates {
		pubOld(counters, id, "create-"+id)
	}
	pubOld("Elsewhere", uuid.NewString(), uuid.NewString())
	eventually(t, "the old queue holds its 3 commands", func() bool {
		q, err := ch.QueueDeclarePassive(old, true, false, false, false, nil)
		return err == nil && q.Messages == 3
	})

	client := newClient(t, url)
	rep := subscribeReplies(t, client)
	logs := &logBuffer{t: t}
	cfg := counterConfig(url, dsn, "runtime-new", t)
	cfg.Partitions = n
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	distributedtest.Start(t, cfg)

	// The old queue's commands for the component are applied, and the queue is gone.
	waitReplies(t, rep, oldCreates, 0)
	eventually(t, "the old queue deleted", func() bool {
		ok, err := client.QueueExists(context.Background(), old)
		return err == nil && !ok
	})
	if l := logs.lines("retired", old); len(l) != 1 || !strings.Contains(l[0], "moved=2") || !strings.Contains(l[0], "otherComponents=1") {
		t.Errorf("retirement log: %q", l)
	}

	// Commands for instances of the two partitions declared by the earlier version work.
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	instances := []string{instanceIn(0, n), instanceIn(1, n)}
	const k = 3
	for _, id := range instances {
		create := wire.CreateInstance{ComponentName: counters, InstanceID: id, Timestamp: wire.Now()}
		must(bus.PublishCommand(ctx, client, counters, id, wire.ChannelCreateInstance, mustJSON(t, create), bus.Meta{MessageID: "create-" + id}))
		for i := range k {
			tick := wire.TriggerEvent{ComponentName: counters, InstanceID: id, Event: wire.Event{Type: "TICK", Payload: map[string]any{"n": i}}}
			must(bus.PublishCommand(ctx, client, counters, id, wire.ChannelTriggerEvent, mustJSON(t, tick), bus.Meta{MessageID: fmt.Sprintf("tick-%s-%d", id, i)}))
		}
	}
	waitReplies(t, rep, instances, k)
	for _, r := range rep.all() {
		if r.Status != wire.ReplyApplied {
			t.Errorf("reply %+v", r)
		}
	}
	// One warning per mismatched queue, naming it and the broker's reason, with the way out.
	for _, q := range []string{p0, p1} {
		l := logs.lines("other arguments", "queue="+q)
		if len(l) != 1 || !strings.Contains(l[0], "inequivalent arg") || !strings.Contains(l[0], "delete_queue") {
			t.Errorf("warnings for %s: %q", q, l)
		}
	}
}
