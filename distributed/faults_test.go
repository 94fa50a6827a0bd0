package distributed_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/distributed/distributedtest"
	"github.com/xcomponent/xcomponent/internal/faults"
	"github.com/xcomponent/xcomponent/internal/tcpproxy"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/wire"
)

// traffic publishes, from one goroutine per instance, a create then k TICKs (payload n = 0..k-1)
// to each of m new instances, straight to the partitions, and returns the instance ids and a
// channel closed when everything is published.
func traffic(t *testing.T, client bus.Bus, m, k int) ([]string, <-chan struct{}) {
	t.Helper()
	ids := make([]string, m)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	done := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*timeout)
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			create := wire.CreateInstance{ComponentName: counters, Context: map[string]any{}, InstanceID: id, Timestamp: wire.Now()}
			if err := bus.PublishCommand(ctx, client, counters, id, wire.ChannelCreateInstance, mustJSON(t, create), bus.Meta{MessageID: "create-" + id}); err != nil {
				t.Errorf("publish create: %v", err)
				return
			}
			for n := range k {
				tick := wire.TriggerEvent{ComponentName: counters, InstanceID: id, Event: wire.Event{Type: "TICK", Payload: map[string]any{"n": n}}}
				if err := bus.PublishCommand(ctx, client, counters, id, wire.ChannelTriggerEvent, mustJSON(t, tick), bus.Meta{MessageID: fmt.Sprintf("tick-%s-%d", id, n)}); err != nil {
					t.Errorf("publish tick: %v", err)
					return
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		cancel()
		close(done)
	}()
	return ids, done
}

// answered counts the commands with at least one reply.
func (r *replies) answered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.by)
}

// checkReplies checks that every reply is applied or duplicate, and that each command was
// applied (answered "applied") at most once.
func checkReplies(t *testing.T, rep *replies) {
	t.Helper()
	for id, reps := range rep.by {
		applied := 0
		for _, r := range reps {
			switch r.Status {
			case wire.ReplyApplied:
				applied++
			case wire.ReplyDuplicate:
			default:
				t.Fatalf("command %s answered %+v", id, r)
			}
		}
		if applied > 1 {
			t.Fatalf("command %s applied %d times", id, applied)
		}
	}
}

func stillRunning(t *testing.T, rs ...*distributedtest.Runtime) {
	t.Helper()
	for _, r := range rs {
		if exited, err := r.Exited(); exited {
			t.Fatalf("runtime %s exited: %v", r.Info.RuntimeName, err)
		}
	}
}

// countAnnounces records the announces published from now on, and returns how many named a
// runtime id.
func countAnnounces(t *testing.T, client bus.Bus) func(runtimeID string) int {
	t.Helper()
	rec := &recorder{msgs: map[string][]bus.Message{}}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sub, err := client.Subscribe(ctx, wire.ChannelAnnounce, rec.handler)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return func(id string) int {
		n := 0
		for _, m := range rec.get(wire.ChannelAnnounce) {
			if strings.Contains(string(m.Body), id) {
				n++
			}
		}
		return n
	}
}

// TestBrokerConnectionCut cuts the runtimes' broker connections twice under load: they keep
// running, reconnect, re-announce, and every command is applied exactly once, in order per
// instance.
func TestBrokerConnectionCut(t *testing.T) {
	vh, url := rmqtest.NewVhost(t)
	proxy := tcpproxy.New(t, rmqtest.BrokerAddr)
	viaProxy := "amqp://guest:guest@" + proxy.Addr() + "/" + vh
	dsn := pgtest.NewDatabase(t)
	client := newClient(t, url) // the publisher's connection is not cut
	rep := subscribeReplies(t, client)
	announces := countAnnounces(t, client)

	a := distributedtest.Start(t, counterConfig(viaProxy, dsn, "runtime-a", t))
	b := distributedtest.Start(t, counterConfig(viaProxy, dsn, "runtime-b", t))
	eventually(t, "first announces", func() bool { return announces(a.Info.RuntimeID) >= 1 && announces(b.Info.RuntimeID) >= 1 })
	before := map[string]int{a.Info.RuntimeID: announces(a.Info.RuntimeID), b.Info.RuntimeID: announces(b.Info.RuntimeID)}

	const m, k = 16, 40
	ids, published := traffic(t, client, m, k)
	total := m * (k + 1)
	var worst time.Duration
	for round, at := range []int{total / 4, total / 2} {
		eventually(t, fmt.Sprintf("%d commands answered", at), func() bool { return rep.answered() >= at })
		proxy.Cut()
		// Cut until both runtimes noticed and tried to reconnect at least once.
		eventually(t, "reconnection attempts", func() bool { return proxy.Refused() >= 2 })
		restored, answered := time.Now(), rep.answered()
		proxy.Restore()
		worst = max(worst, since(t, restored, "commands answered again", func() bool { return rep.answered() > answered }))
		eventually(t, fmt.Sprintf("round %d: re-announces", round), func() bool {
			return announces(a.Info.RuntimeID) > before[a.Info.RuntimeID] && announces(b.Info.RuntimeID) > before[b.Info.RuntimeID]
		})
		before[a.Info.RuntimeID], before[b.Info.RuntimeID] = announces(a.Info.RuntimeID), announces(b.Info.RuntimeID)
	}
	<-published
	waitReplies(t, rep, ids, k)
	stillRunning(t, a, b)
	checkReplies(t, rep)
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close(context.Background()) }()
	checkOrder(t, db, ids, k)
	if n := queryInt(t, db, "SELECT count(*) FROM fsm_snapshots WHERE version = $1", k); n != m {
		t.Fatalf("%d instances at version %d, want %d", n, k, m)
	}
	judgeTraffic(t, dsn, ids, k, rep, faults.ScenarioBrokerCut, "2 runtimes, PostgreSQL", worst,
		"restore → commands answered again, worst of 2 cuts", "cut twice under load (16 instances × 41 commands); both runtimes reconnected and re-announced, without a restart")
}

// TestDatabaseUnreachable cuts the runtimes' PostgreSQL connections under load: commands are
// held (not acknowledged, not dead-lettered) and applied once the database is back, exactly
// once and in order, without a restart.
func TestDatabaseUnreachable(t *testing.T) {
	url := vhost(t)
	dsn := pgtest.NewDatabase(t)
	proxy := tcpproxy.New(t, "127.0.0.1:5432")
	viaProxy := strings.Replace(dsn, "127.0.0.1:5432", proxy.Addr(), 1)
	if viaProxy == dsn {
		t.Fatalf("unexpected DSN %s", dsn)
	}
	client := newClient(t, url)
	rep := subscribeReplies(t, client)
	oc := &outcomes{n: map[string]int{}}
	cfg := func(name string) distributed.Config {
		c := counterConfig(url, viaProxy, name, t)
		c.OnCommand = oc.add
		return c
	}
	a := distributedtest.Start(t, cfg("runtime-a"))
	b := distributedtest.Start(t, cfg("runtime-b"))

	const m, k = 16, 40
	ids, published := traffic(t, client, m, k)
	total := m * (k + 1)
	eventually(t, "a quarter of the commands answered", func() bool { return rep.answered() >= total/4 })
	proxy.Cut()
	eventually(t, "reconnection attempts to the database", func() bool { return proxy.Refused() >= 2 })
	stalled := rep.answered()
	restored := time.Now()
	proxy.Restore()
	recovery := since(t, restored, "commands answered again", func() bool { return rep.answered() > stalled })
	<-published
	waitReplies(t, rep, ids, k)
	if stalled >= total {
		t.Fatalf("every command was answered before the database came back: the cut came too late")
	}
	stillRunning(t, a, b)
	checkReplies(t, rep)
	if n := oc.count(wire.ChannelTriggerEvent, distributed.OutcomeDeadLettered, distributed.OutcomeRefused) +
		oc.count(wire.ChannelCreateInstance, distributed.OutcomeDeadLettered, distributed.OutcomeRefused); n != 0 {
		t.Fatalf("%d commands refused or dead-lettered during the outage", n)
	}
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close(context.Background()) }()
	checkOrder(t, db, ids, k)
	judgeTraffic(t, dsn, ids, k, rep, faults.ScenarioPostgresCut, "2 runtimes", recovery,
		"restore → commands answered again", "commands held during the cut (not acknowledged, not dead-lettered), applied once the database was back")
}

// TestBrokerRestart stops and starts the local RabbitMQ application (rabbitmqctl stop_app /
// start_app) under load: the runtimes keep running, reconnect, re-announce, and every
// command is applied exactly once, in order per instance. It disturbs every other user of the
// broker, so it runs only alone: XCOMPONENT_BROKER_RESTART_TEST=1 (a step of .ci/run after
// the main test run).
func TestBrokerRestart(t *testing.T) {
	if os.Getenv("XCOMPONENT_BROKER_RESTART_TEST") != "1" {
		t.Skip("XCOMPONENT_BROKER_RESTART_TEST=1 restarts the local broker (run alone)")
	}
	vh, url := rmqtest.NewVhost(t)
	dsn := pgtest.NewDatabase(t)
	client := newClient(t, url)
	rep := subscribeReplies(t, client)
	announces := countAnnounces(t, client)
	a := distributedtest.Start(t, counterConfig(url, dsn, "runtime-a", t))
	b := distributedtest.Start(t, counterConfig(url, dsn, "runtime-b", t))
	eventually(t, "first announces", func() bool { return announces(a.Info.RuntimeID) >= 1 && announces(b.Info.RuntimeID) >= 1 })

	const m, k = 16, 40
	ids, published := traffic(t, client, m, k)
	eventually(t, "a quarter of the commands answered", func() bool { return rep.answered() >= m*(k+1)/4 })
	// Whatever happens below, the broker is left running.
	t.Cleanup(func() { rmqtest.Ctl(t, "start_app"); rmqtest.Ctl(t, "await_startup") })
	stopping := time.Now()
	rmqtest.Ctl(t, "stop_app")
	eventually(t, "the client disconnected", func() bool { return !client.Connected() })
	back := time.Now() // the broker is starting from here
	rmqtest.Ctl(t, "start_app")
	rmqtest.Ctl(t, "await_startup")
	startTook := time.Since(back)
	t.Logf("broker stopping/stopped for %v; start_app and await_startup took %v",
		back.Sub(stopping).Round(time.Millisecond), startTook.Round(time.Millisecond))
	// The database is the judge here, not the replies: a reply published while the broker
	// restarts, before this test's fan-out subscription is declared again, reaches nobody (a
	// live notification, like the fsm:events:* channels).
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close(context.Background()) }()
	ticks := func() int {
		var n int
		if err := db.QueryRow(context.Background(), "SELECT count(*) FROM fsm_events WHERE event_type = 'TICK'").Scan(&n); err != nil {
			return -1
		}
		return n
	}
	atBack := ticks()
	recovery := since(t, back, "commands applied again", func() bool { return atBack < m*k && ticks() > atBack || atBack >= m*k })
	eventually(t, "re-announces", func() bool { return announces(a.Info.RuntimeID) >= 2 && announces(b.Info.RuntimeID) >= 2 })
	<-published
	eventually(t, "every command in fsm_events", func() bool {
		var n int
		err := db.QueryRow(context.Background(), "SELECT count(*) FROM fsm_events WHERE event_type = 'TICK'").Scan(&n)
		return err == nil && n >= m*k
	})
	stillRunning(t, a, b)
	checkReplies(t, rep)
	checkOrder(t, db, ids, k)
	t.Logf("vhost %s: %d instances × %d commands applied once each across the broker restart", vh, m, k+1)
	judgeTraffic(t, dsn, ids, k, rep, faults.ScenarioBrokerRestart, "2 runtimes, PostgreSQL", recovery,
		"start_app → commands applied again", fmt.Sprintf("stop_app under load (16 instances × 41 commands), start_app; the broker itself took %v to start (start_app + await_startup); acknowledged = replies received (those published during the restart reach no subscriber)",
			startTook.Round(100*time.Millisecond)))
}
