package busbackend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/distributed/distributedtest"
	"github.com/xcomponent/xcomponent/internal/busbackend"
	"github.com/xcomponent/xcomponent/internal/tcpproxy"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/wire"
)

// post sends a JSON request from any goroutine and returns the status and the raw answer.
func (d *dashboard) post(ctx context.Context, path string, body any) (int, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", d.srv.URL+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// statusCounts counts HTTP statuses.
type statusCounts struct {
	mu sync.Mutex
	n  map[int]int
}

func (c *statusCounts) add(st int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[int]int{}
	}
	c.n[st]++
}

func (c *statusCounts) get(st int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[st]
}

func (c *statusCounts) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.n)
}

// replyCounter counts the command replies "applied" the runtimes publish (seen by a connection
// that is never cut; a command redelivered to a runtime after its acknowledgement was cut is
// answered "duplicate").
type replyCounter struct{ n atomic.Int64 }

func (r *replyCounter) handle(_ context.Context, m bus.Message) error {
	if rep, err := wire.Decode[wire.CommandReply](m.Body); err == nil && rep.Status == wire.ReplyApplied {
		r.n.Add(1)
	}
	return nil
}

// deleteDashboardQueues deletes every subscription queue of dashboards in vhost, as a broker
// restart would (they are not durable): listed with rabbitmqctl, deleted over AMQP (one
// rabbitmqctl run per queue would outlast the commands' timeout on a loaded machine).
func deleteDashboardQueues(t *testing.T, vhost string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", "--quiet", "list_queues", "-p", vhost, "name").Output()
	if err != nil {
		t.Fatalf("list_queues: %v", err)
	}
	conn, err := amqp.Dial("amqp://guest:guest@" + rmqtest.BrokerAddr + "/" + vhost)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, name := range strings.Fields(string(out)) {
		if strings.HasPrefix(name, busbackend.QueuePrefix) {
			if _, err := ch.QueueDelete(name, false, false, false); err != nil {
				t.Fatalf("delete %s: %v", name, err)
			}
			n++
		}
	}
	return n
}

// TestDashboardReconnectKeepsAnswers cuts the dashboard's broker connection while commands are
// in flight, with two real runtimes on PostgreSQL (their own connections), and checks the HTTP
// contract: every command answered 200/201 was applied exactly once, and every command applied
// was answered 200/201 — never 504.
//
//   - under load: 8 instances × 30 TICKs sent one after the other per instance, the
//     dashboard's connection cut twice mid-flight;
//   - in flight for sure: the runtimes are held away (their connections cut) while the
//     dashboard publishes 6 TICKs, 2 creates and a terminate, then the dashboard's connection is cut and the
//     runtimes come back and apply and answer them while it is away: the answers wait in its
//     queues (none answered from the database);
//   - answers lost: the same with the dashboard's queues deleted while it is away (as a broker
//     restart would): every command is answered from the database at the deadline.
func TestDashboardReconnectKeepsAnswers(t *testing.T) {
	vh, url := rmqtest.NewVhost(t)
	dsn := pgtest.NewDatabase(t)
	rtProxy, dashProxy := tcpproxy.New(t, rmqtest.BrokerAddr), tcpproxy.New(t, rmqtest.BrokerAddr)
	via := func(p *tcpproxy.Proxy) string { return "amqp://guest:guest@" + p.Addr() + "/" + vh }
	for _, name := range []string{"runtime-a", "runtime-b"} {
		distributedtest.Start(t, distributed.Config{ComponentFile: "../../distributed/testdata/counter.yaml", BrokerURL: via(rtProxy),
			StoreSpec: dsn, RuntimeName: name, HeartbeatInterval: 200 * time.Millisecond, Partitions: 4,
			MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second, Logger: logger(t)})
	}
	observer := newBus(t, url)
	var replies replyCounter
	ctx, cancel := context.WithTimeout(context.Background(), 8*timeout)
	defer cancel()
	if s, err := observer.Subscribe(ctx, wire.ChannelCommandReply, replies.handle); err != nil {
		t.Fatal(err)
	} else {
		t.Cleanup(func() { _ = s.Close() })
	}
	dashBus := newBus(t, via(dashProxy))
	const commandTimeout = 20 * time.Second
	d := startDashboard(t, via(dashProxy), dsn, busbackend.Config{Bus: dashBus, CommandTimeout: commandTimeout})
	eventually(t, "two runtimes up", func() bool { return countStatus(d.runtimes(t), "Counters", busbackend.StatusUp) == 2 })
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close(context.Background()) }()
	// ticks is the number of TICK n applied to instance id.
	ticks := func(id string, n int) int {
		var c int
		if err := db.QueryRow(ctx, "SELECT count(*) FROM fsm_events WHERE instance_id = $1 AND event_type = 'TICK' AND (event_payload->>'n')::int = $2", id, n).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	create := func(ctxData map[string]any) (string, int) {
		st, raw, err := d.post(ctx, "/api/components/Counters/instances", map[string]any{"context": ctxData})
		if err != nil {
			t.Error(err)
			return "", 0
		}
		var c createAnswer
		if st == http.StatusCreated {
			if err := json.Unmarshal(raw, &c); err != nil || c.InstanceID == "" {
				t.Errorf("create answer %s: %v", raw, err)
			}
		}
		return c.InstanceID, st
	}
	tick := func(id string, n int) int {
		st, raw, err := d.post(ctx, "/api/instances/"+id+"/trigger", map[string]any{"type": "TICK", "payload": map[string]any{"n": n}})
		if err != nil {
			t.Error(err)
			return 0
		}
		if st == http.StatusOK {
			var s sendAnswer
			if err := json.Unmarshal(raw, &s); err != nil || s.NewState != "Counting" {
				t.Errorf("TICK %d of %s answered %s: %v", n, id, raw, err)
			}
		}
		return st
	}
	var ids []string
	for i := range 8 {
		id, st := create(map[string]any{"i": i})
		if st != http.StatusCreated {
			t.Fatalf("create %d: %d", i, st)
		}
		ids = append(ids, id)
	}

	// Under load.
	const k = 30
	statuses := make([][]int, len(ids))
	var counts statusCounts
	var answered atomic.Int64
	var wg sync.WaitGroup
	for i, id := range ids {
		statuses[i] = make([]int, k)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range k {
				st := tick(id, n)
				statuses[i][n] = st
				counts.add(st)
				answered.Add(1)
				if st == http.StatusServiceUnavailable { // the broker is away: wait for it
					if err := dashBus.WaitConnected(ctx); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	for _, at := range []int64{len64(ids) * k / 4, len64(ids) * k / 2} {
		eventually(t, fmt.Sprintf("%d commands answered", at), func() bool { return answered.Load() >= at })
		dashProxy.Cut()
		eventually(t, "the dashboard tries to reconnect", func() bool { return dashProxy.Refused() >= 1 })
		dashProxy.Restore()
	}
	wg.Wait()
	applied, wrong := 0, 0
	for i, id := range ids {
		for n := range k {
			c, st := ticks(id, n), statuses[i][n]
			switch {
			case c > 1:
				t.Errorf("TICK %d of %s applied %d times", n, id, c)
			case c == 1 && st != http.StatusOK:
				wrong++
				t.Errorf("TICK %d of %s applied but answered %d", n, id, st)
			case c == 0 && st == http.StatusOK:
				t.Errorf("TICK %d of %s answered 200 but not applied", n, id)
			case c == 0 && st != http.StatusServiceUnavailable:
				t.Errorf("TICK %d of %s not applied, answered %d (want 503: never published)", n, id, st)
			}
			applied += c
		}
	}
	t.Logf("under load: %d commands, %d applied, statuses %s, %d applied but not answered 200/201, %d answered from the database",
		len(ids)*k, applied, counts.String(), wrong, d.be.StoreAnswers())
	if counts.get(http.StatusOK) == 0 || counts.get(http.StatusGatewayTimeout) != 0 {
		t.Fatalf("statuses under load: %s, want 200s and no 504", counts.String())
	}

	// In flight for sure, then with the answers lost: 6 TICKs, 2 creates, 1 terminate.
	const inFlight = 9
	for round, lose := range []bool{false, true} {
		// The previous step's answers can arrive before the dashboard's reconnection is over
		// (its subscriptions are consumed while the others are re-established): until it is,
		// the dashboard answers 503 without publishing.
		if err := dashBus.WaitConnected(ctx); err != nil {
			t.Fatal(err)
		}
		before, storeBefore := replies.n.Load(), d.be.StoreAnswers()
		publishedBefore, _ := d.be.CommandsPublished()
		rtProxy.Cut()
		eventually(t, "both runtimes try to reconnect", func() bool { return rtProxy.Refused() >= 2 })
		n := k + round // a TICK n no instance got yet
		type result struct {
			kind string // tick, create, terminate
			id   string // the instance: of the TICK or the terminate, or created
			st   int
		}
		results := make(chan result, inFlight)
		var wg sync.WaitGroup
		for _, id := range ids[:6] {
			wg.Add(1)
			go func() { defer wg.Done(); results <- result{"tick", id, tick(id, n)} }()
		}
		for j := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id, st := create(map[string]any{"round": round, "j": j})
				results <- result{"create", id, st}
			}()
		}
		wg.Add(1)
		go func() { // an operator action: terminate
			defer wg.Done()
			id := ids[6+round]
			st, raw, err := d.post(ctx, "/api/components/Counters/instances/"+id+"/terminate", map[string]any{"reason": "test"})
			var s sendAnswer
			if err == nil && st == http.StatusOK {
				err = json.Unmarshal(raw, &s)
			}
			if err != nil || (st == http.StatusOK && s.Instance.Status != "terminated") {
				t.Errorf("terminate %s: %d %s: %v", id, st, raw, err)
			}
			results <- result{"terminate", id, st}
		}()
		// Queued: confirmed by the broker while no runtime consumes (several may share a
		// message: bus.Batcher, so the queues' message counts are not the commands').
		queued := int64(0)
		eventually(t, "the commands queued for the runtimes", func() bool {
			published, _ := d.be.CommandsPublished()
			queued = published - publishedBefore
			return queued >= inFlight || len(results) > 0
		})
		if len(results) > 0 {
			r := <-results
			t.Fatalf("round %d: %d commands queued, want %d: the %s of %s answered %d while no runtime could apply it", round, queued, inFlight, r.kind, r.id, r.st)
		}
		dashProxy.Cut()
		eventually(t, "the dashboard tries to reconnect", func() bool { return dashProxy.Refused() >= 1 })
		if lose {
			if got := deleteDashboardQueues(t, vh); got != 9 {
				t.Fatalf("%d dashboard queues deleted, want its 9 subscriptions'", got)
			}
		}
		rtProxy.Restore()
		eventually(t, "the commands applied and answered", func() bool { return replies.n.Load()-before >= inFlight })
		dashProxy.Restore()
		wg.Wait()
		close(results)
		for r := range results {
			if r.st != http.StatusOK && r.st != http.StatusCreated {
				t.Errorf("round %d (answers lost %v): command for %s answered %d, want 200/201 (it was applied)", round, lose, r.id, r.st)
				continue
			}
			if r.kind == "terminate" {
				var c int
				if err := db.QueryRow(ctx, "SELECT count(*) FROM fsm_events WHERE instance_id = $1 AND event_type = 'INSTANCE_TERMINATED'", r.id).Scan(&c); err != nil || c != 1 {
					t.Errorf("round %d: instance %s answered terminated, terminated %d times (%v)", round, r.id, c, err)
				}
			}
			if r.kind == "tick" && ticks(r.id, n) != 1 {
				t.Errorf("round %d: TICK %d of %s answered 200, applied %d times", round, n, r.id, ticks(r.id, n))
			}
			if r.st == http.StatusCreated {
				var c int
				if err := db.QueryRow(ctx, "SELECT count(*) FROM fsm_events WHERE instance_id = $1 AND event_type = 'INSTANCE_CREATED'", r.id).Scan(&c); err != nil || c != 1 {
					t.Errorf("round %d: instance %s answered 201, created %d times (%v)", round, r.id, c, err)
				}
			}
		}
		fromStore := d.be.StoreAnswers() - storeBefore
		t.Logf("round %d (answers lost %v): %d commands in flight during the cut, %d answered from the database", round, lose, inFlight, fromStore)
		if want := map[bool]int64{false: 0, true: inFlight}[lose]; fromStore != want {
			t.Fatalf("round %d: %d commands answered from the database, want %d", round, fromStore, want)
		}
	}
}

func len64[T any](s []T) int64 { return int64(len(s)) }

// TestTypeScriptAnswerDuringReconnect: a runtime of xcomponent-ai's sends no reply; the
// state_change it publishes while the dashboard's connection is cut answers the trigger once
// the dashboard is back (its fsm:events:state_change queue kept it), without a database.
func TestTypeScriptAnswerDuringReconnect(t *testing.T) {
	vh, url := rmqtest.NewVhost(t)
	proxy := tcpproxy.New(t, rmqtest.BrokerAddr)
	received, cut, published := make(chan struct{}), make(chan struct{}), make(chan struct{})
	f := &fakeRuntime{t: t, b: newBus(t, url), id: "ts-" + vh, ts: true, name: "ts-runtime-1"}
	f.onCreate = func(f *fakeRuntime, _ bus.Message, c wire.CreateInstance) { f.created(uuid.NewString(), c.Context) }
	// A publication whose confirm the cut lost is published again after the reconnection: the
	// trigger may come twice. The second SUBMIT finds the instance Submitted: no transition, so
	// an xcomponent-ai runtime publishes nothing for it.
	var first atomic.Bool
	f.onTrigger = func(f *fakeRuntime, _ bus.Message, c wire.TriggerEvent) {
		if !first.CompareAndSwap(false, true) {
			return
		}
		close(received)
		<-cut // answered while the dashboard is away
		f.publish(wire.ChannelStateChange, wire.StateChange{RuntimeID: f.id, ComponentName: "Approvals",
			EventType: wire.EventStateChange, Timestamp: wire.Now(), Data: wire.StateChangeData{InstanceID: c.InstanceID,
				MachineName: "Request", PreviousState: "Draft", NewState: "Submitted",
				Event: wire.Event{Type: c.Event.Type, Payload: c.Event.Payload}, Context: map[string]any{"amount": 12.5}}}, bus.Meta{})
		close(published) // confirmed by the broker
	}
	f.start()
	d := startDashboard(t, "amqp://guest:guest@"+proxy.Addr()+"/"+vh, "", busbackend.Config{CommandTimeout: 20 * time.Second})
	eventually(t, "TS runtime up", func() bool { return countStatus(d.runtimes(t), "Approvals", busbackend.StatusUp) == 1 })
	var c createAnswer
	if st := d.call(t, "POST", "/api/components/Approvals/instances", map[string]any{"context": map[string]any{"amount": 12.5}}, &c); st != http.StatusCreated {
		t.Fatalf("create through a TS runtime: %d %+v", st, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	type answer struct {
		st  int
		raw []byte
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		st, raw, err := d.post(ctx, "/api/instances/"+c.InstanceID+"/trigger", map[string]any{"event": "SUBMIT"})
		answered <- answer{st, raw, err}
	}()
	select {
	case <-received:
	case <-ctx.Done():
		t.Fatal("the TS runtime never received the trigger")
	}
	proxy.Cut()
	eventually(t, "the dashboard tries to reconnect", func() bool { return proxy.Refused() >= 1 })
	close(cut)
	select {
	case <-published:
	case <-ctx.Done():
		t.Fatal("the state_change was never published")
	}
	proxy.Restore()
	a := <-answered
	var s sendAnswer
	if a.err != nil || a.st != http.StatusOK || json.Unmarshal(a.raw, &s) != nil || s.NewState != "Submitted" {
		t.Fatalf("trigger answered by a state_change published during the cut: %d %s %v, want 200 Submitted", a.st, a.raw, a.err)
	}
}
