package busbackend_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/bus/rabbitmq"
	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
	"github.com/xcomponent/xcomponent/clock"
	"github.com/xcomponent/xcomponent/internal/busbackend"
	"github.com/xcomponent/xcomponent/internal/httpapi"
	"github.com/xcomponent/xcomponent/internal/tcpproxy"
	"github.com/xcomponent/xcomponent/wire"
)

// approvalJSON is the Approvals component as a runtime announces it.
const approvalJSON = `{"name":"Approvals","version":"1.0.0","entryMachine":"Request","stateMachines":[{"name":"Request",
"initialState":"Draft","states":[{"name":"Draft","type":"entry"},{"name":"Submitted"},{"name":"Approved","type":"final"}],
"transitions":[{"from":"Draft","to":"Submitted","event":"SUBMIT","type":"triggerable"},
{"from":"Submitted","to":"Approved","event":"APPROVE","type":"triggerable"}]}]}`

// fakeRuntime speaks the protocol by hand: an xcomponent-ai runtime (ts: no additions, no
// replies) or one of ours whose answers the test decides.
type fakeRuntime struct {
	t    *testing.T
	b    bus.Bus
	id   string
	name string
	ts   bool
	// onCreate / onTrigger answer a command; nil ignores it.
	onCreate  func(f *fakeRuntime, m bus.Message, c wire.CreateInstance)
	onTrigger func(f *fakeRuntime, m bus.Message, c wire.TriggerEvent)
	// onOperator answers terminate_instance / retry_hook (ours only); nil ignores them.
	onOperator func(f *fakeRuntime, m bus.Message, c wire.OperatorCommand)

	// quiet: no re-announce on query_instances, and the answer lists one instance, so that a
	// test can tell when the runtime has nothing more to say.
	quiet bool

	mu        sync.Mutex
	queries   int
	discovers int
}

func (f *fakeRuntime) publish(channel string, v any, meta bus.Meta) {
	f.t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		f.t.Error(err)
		return
	}
	if meta.MessageID == "" {
		meta.MessageID = uuid.NewString()
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := f.b.Publish(ctx, channel, body, meta); err != nil {
		f.t.Errorf("publish %s: %v", channel, err)
	}
}

func (f *fakeRuntime) announce() {
	a := wire.Announce{RuntimeID: f.id, ComponentName: "Approvals", Component: json.RawMessage(approvalJSON),
		Host: "fake-host", Port: 0, Timestamp: wire.Now()}
	if !f.ts {
		a.RuntimeName, a.Status = f.name, "running"
	} else if f.name != "" {
		a.Host = f.name // xcomponent-ai's runtimes announce their name as host
	}
	f.publish(wire.ChannelAnnounce, a, bus.Meta{})
}

func (f *fakeRuntime) heartbeat() {
	h := wire.Heartbeat{RuntimeID: f.id, ComponentName: "Approvals", Timestamp: wire.Now()}
	if !f.ts {
		h.RuntimeName = f.name
	}
	f.publish(wire.ChannelHeartbeat, h, bus.Meta{})
}

func (f *fakeRuntime) start() {
	f.t.Helper()
	handlers := map[string]bus.Handler{
		wire.ChannelDiscover: func(context.Context, bus.Message) error {
			f.mu.Lock()
			f.discovers++
			f.mu.Unlock()
			f.announce()
			return nil
		},
		wire.ChannelQueryInstances: func(context.Context, bus.Message) error {
			f.mu.Lock()
			f.queries++
			f.mu.Unlock()
			instances := []wire.InstanceSnapshot{}
			if f.quiet {
				instances = append(instances, wire.InstanceSnapshot{ID: f.id, MachineName: "Request", CurrentState: "Draft"})
			} else {
				f.announce()
			}
			f.publish(wire.ChannelQueryResponse, wire.QueryResponse{Type: wire.TypeInstances, RuntimeID: f.id,
				ComponentName: "Approvals", Instances: instances, Timestamp: wire.Now()}, bus.Meta{})
			return nil
		},
		wire.ChannelCreateInstance: func(_ context.Context, m bus.Message) error {
			c, err := wire.Decode[wire.CreateInstance](m.Body)
			if err == nil && f.onCreate != nil {
				f.onCreate(f, m, c)
			}
			return nil
		},
		wire.ChannelTriggerEvent: func(_ context.Context, m bus.Message) error {
			c, err := wire.Decode[wire.TriggerEvent](m.Body)
			if err == nil && f.onTrigger != nil {
				f.onTrigger(f, m, c)
			}
			return nil
		},
	}
	operator := func(_ context.Context, m bus.Message) error {
		c, err := wire.Decode[wire.OperatorCommand](m.Body)
		if err == nil && f.onOperator != nil {
			f.onOperator(f, m, c)
		}
		return nil
	}
	for ch, h := range handlers {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		s, err := f.b.Subscribe(ctx, ch, h)
		cancel()
		if err != nil {
			f.t.Fatal(err)
		}
		f.t.Cleanup(func() { _ = s.Close() })
	}
	if !f.ts {
		// Ours: commands also come on the partition channels (one queue of all the buckets).
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		s, err := f.b.Consume(ctx, "fake."+f.id+".commands", bus.PartitionBindings("Approvals", 1, 0), func(ctx context.Context, m bus.Message) error {
			m.Channel = m.Headers[bus.HeaderCommand]
			if m.Channel == wire.ChannelTerminateInstance || m.Channel == wire.ChannelRetryHook {
				return operator(ctx, m)
			}
			return handlers[m.Channel](ctx, m)
		})
		cancel()
		if err != nil {
			f.t.Fatal(err)
		}
		f.t.Cleanup(func() { _ = s.Close() })
	}
	f.announce()
}

func (f *fakeRuntime) discoverCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.discovers
}

func (f *fakeRuntime) queryCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.queries
}

// created publishes the instance_created of a new instance, as xcomponent-ai does (no ids).
func (f *fakeRuntime) created(id string, ctxData map[string]any) {
	f.publish(wire.ChannelInstanceCreated, wire.InstanceCreated{RuntimeID: f.id, ComponentName: "Approvals",
		EventType: wire.EventInstanceCreated, Timestamp: wire.Now(), Data: wire.InstanceCreatedData{InstanceID: id,
			MachineName: "Request", CurrentState: "Draft", Context: ctxData}}, bus.Meta{})
}

// TestTypeScriptRuntimeFallback drives a runtime that sends no reply and no ids (as
// xcomponent-ai's): the answers come from the instance_created / state_change it publishes.
func TestTypeScriptRuntimeFallback(t *testing.T) {
	_, url := rmqtest.NewVhost(t)
	f := &fakeRuntime{t: t, b: newBus(t, url), id: uuid.NewString(), ts: true, name: "ts-runtime-1"}
	f.onCreate = func(f *fakeRuntime, _ bus.Message, c wire.CreateInstance) {
		data := map[string]any{"createdAt": wire.Now()} // a field of the runtime's own
		for k, v := range c.Context {
			data[k] = v
		}
		f.created(uuid.NewString(), data)
	}
	f.onTrigger = func(f *fakeRuntime, _ bus.Message, c wire.TriggerEvent) {
		f.publish(wire.ChannelStateChange, wire.StateChange{RuntimeID: f.id, ComponentName: "Approvals",
			EventType: wire.EventStateChange, Timestamp: wire.Now(), Data: wire.StateChangeData{InstanceID: c.InstanceID,
				MachineName: "Request", PreviousState: "Draft", NewState: "Submitted",
				Event: wire.Event{Type: c.Event.Type, Payload: c.Event.Payload}, Context: map[string]any{"amount": 12.5}}}, bus.Meta{})
	}
	f.start()
	d := startDashboard(t, url, "", busbackend.Config{CommandTimeout: 10 * time.Second})
	eventually(t, "TS runtime up", func() bool { return countStatus(d.runtimes(t), "Approvals", busbackend.StatusUp) == 1 })
	if rts := d.runtimes(t); len(rts) != 1 || rts[0].RuntimeName != "ts-runtime-1" {
		t.Errorf("a TS runtime is named by the host of its announce: %+v", rts)
	}

	// Another instance created meanwhile by someone else must not answer our create.
	f.created(uuid.NewString(), map[string]any{"amount": 1})
	var c createAnswer
	if st := d.call(t, "POST", "/api/components/Approvals/instances", map[string]any{"context": map[string]any{"amount": 12.5}}, &c); st != http.StatusCreated || c.Instance.CurrentState != "Draft" || c.Instance.Context["amount"] != 12.5 {
		t.Fatalf("create through a TS runtime: %d %+v", st, c)
	}
	var s sendAnswer
	if st := d.call(t, "POST", "/api/instances/"+c.InstanceID+"/trigger", map[string]any{"event": "SUBMIT"}, &s); st != 200 || s.NewState != "Submitted" || s.PreviousState != "Draft" {
		t.Fatalf("trigger through a TS runtime: %d %+v", st, s)
	}
	var list struct {
		Instances []instanceAnswer `json:"instances"`
	}
	if st := d.call(t, "GET", "/api/instances?component=Approvals", nil, &list); st != 200 || len(list.Instances) != 2 {
		t.Fatalf("instances of the TS runtime: %d %+v", st, list)
	}
	// The query_instances went out once for this runtime, however many times it announced.
	if n := f.queryCount(); n != 1 {
		t.Fatalf("query_instances received %d times, want 1", n)
	}
}

// TestCommandReplies drives a runtime of ours that answers with fsm:responses:command: applied
// → 201/200 with the reply's instance, refused → 409 with its reason, silence → 504 (create,
// trigger and the operator actions).
func TestCommandReplies(t *testing.T) {
	_, url := rmqtest.NewVhost(t)
	instanceID := uuid.NewString()
	reply := func(f *fakeRuntime, m bus.Message, r wire.CommandReply) {
		r.Type, r.CommandID, r.RuntimeID, r.RuntimeName, r.ComponentName, r.Timestamp = wire.TypeCommandReply, m.MessageID, f.id, f.name, "Approvals", wire.Now()
		f.publish(wire.ChannelCommandReply, r, bus.Meta{CorrelationID: m.MessageID})
	}
	f := &fakeRuntime{t: t, b: newBus(t, url), id: uuid.NewString(), name: "ours-1"}
	f.onCreate = func(f *fakeRuntime, m bus.Message, c wire.CreateInstance) {
		if c.Context["silent"] == true {
			return
		}
		// The event first (the view learns the instance), then the reply.
		f.publish(wire.ChannelInstanceCreated, wire.InstanceCreated{RuntimeID: f.id, RuntimeName: f.name, ComponentName: "Approvals",
			EventType: wire.EventInstanceCreated, Timestamp: wire.Now(), Trace: wire.Trace{CommandID: "someone-else"},
			Data: wire.InstanceCreatedData{InstanceID: instanceID, MachineName: "Request", CurrentState: "Draft", Context: c.Context}}, bus.Meta{})
		reply(f, m, wire.CommandReply{Command: wire.ChannelCreateInstance, Status: wire.ReplyApplied,
			Instance: &wire.InstanceSnapshot{ID: instanceID, MachineName: "Request", CurrentState: "Draft", Context: c.Context, Status: "active"}})
	}
	f.onTrigger = func(f *fakeRuntime, m bus.Message, c wire.TriggerEvent) {
		if m.Headers[bus.HeaderAttempt] == "" {
			t.Errorf("trigger without %s header: %v", bus.HeaderAttempt, m.Headers)
		}
		// First the answer to another publication of the same command id (another
		// dashboard's retry of an Idempotency-Key): not this request's answer.
		reply(f, m, wire.CommandReply{Command: wire.ChannelTriggerEvent, Status: wire.ReplyApplied, PreviousState: "Draft",
			Attempt:  "another-dashboard's",
			Instance: &wire.InstanceSnapshot{ID: c.InstanceID, MachineName: "Request", CurrentState: "Submitted", Context: map[string]any{}, Status: "active", Version: 2}})
		reply(f, m, wire.CommandReply{Command: wire.ChannelTriggerEvent, Status: wire.ReplyRefused, Code: "not_accepted",
			Error: "guard amount > 100 is false", Attempt: m.Headers[bus.HeaderAttempt]})
	}
	f.onOperator = func(f *fakeRuntime, m bus.Message, c wire.OperatorCommand) {
		if m.Channel != wire.ChannelTerminateInstance || c.Actor != "anonymous" || c.Reason != "stuck" {
			return // retry_hook: silence
		}
		reply(f, m, wire.CommandReply{Command: m.Channel, Status: wire.ReplyApplied, PreviousState: "Draft",
			Instance: &wire.InstanceSnapshot{ID: c.InstanceID, MachineName: "Request", CurrentState: "Draft", Context: map[string]any{}, Status: "terminated", Version: 2}})
	}
	f.start()
	d := startDashboard(t, url, "", busbackend.Config{CommandTimeout: 2 * time.Second})
	eventually(t, "runtime up", func() bool { return countStatus(d.runtimes(t), "Approvals", busbackend.StatusUp) == 1 })

	var c createAnswer
	if st := d.call(t, "POST", "/api/components/Approvals/instances", map[string]any{"context": map[string]any{"amount": 5}}, &c); st != http.StatusCreated || c.InstanceID != instanceID {
		t.Fatalf("create answered by a reply: %d %+v", st, c)
	}
	var s sendAnswer
	if st := d.call(t, "POST", "/api/instances/"+instanceID+"/trigger", map[string]any{"event": "SUBMIT"}, &s); st != http.StatusConflict || s.Error != "guard amount > 100 is false" {
		t.Fatalf("refused trigger: %d %+v, want 409 with the reason", st, s)
	}
	if st := d.call(t, "POST", "/api/components/Approvals/instances", map[string]any{"context": map[string]any{"silent": true}}, &c); st != http.StatusGatewayTimeout {
		t.Fatalf("create nobody answers: %d %+v, want 504", st, c)
	}
	// Operator actions: the reply's instance answers, silence is a 504.
	if st := d.call(t, "POST", "/api/components/Approvals/instances/"+instanceID+"/terminate", map[string]any{"reason": "stuck"}, &s); st != 200 ||
		s.Instance.Status != "terminated" || s.NewState != "Draft" {
		t.Fatalf("terminate answered by a reply: %d %+v", st, s)
	}
	if st := d.call(t, "POST", "/api/components/Approvals/instances/"+instanceID+"/retry", nil, &s); st != http.StatusGatewayTimeout {
		t.Fatalf("retry nobody answers: %d %+v, want 504", st, s)
	}
}

// TestRuntimeStatus checks up → lost (after LostAfter of silence, on the dashboard's clock) →
// up again, and stopped, with the runtime_connected / runtime_disconnected events.
func TestRuntimeStatus(t *testing.T) {
	_, url := rmqtest.NewVhost(t)
	clk := clock.NewFake(time.Now())
	f := &fakeRuntime{t: t, b: newBus(t, url), id: uuid.NewString(), name: "ours-1", quiet: true}
	f.start()
	d := startDashboard(t, url, "", busbackend.Config{Clock: clk, LostAfter: time.Minute})
	events, unsubscribe := d.be.Subscribe(64)
	defer unsubscribe()
	next := func(want xc.RuntimeEventKind) map[string]any {
		t.Helper()
		deadline := time.After(timeout)
		for {
			select {
			case ev := <-events:
				if ev.Kind() == want {
					return ev.Data.(httpapi.BackendEvent).Fields
				}
			case <-deadline:
				t.Fatalf("no %s on the feed", want)
			}
		}
	}
	eventually(t, "runtime up", func() bool { return countStatus(d.runtimes(t), "Approvals", busbackend.StatusUp) == 1 })
	// The runtime's answer to query_instances is its last message until the test sends more.
	eventually(t, "query answered", func() bool {
		var in instanceAnswer
		return d.call(t, "GET", "/api/instances/"+f.id, nil, &in) == 200
	})

	clk.Advance(59 * time.Second)
	if n := countStatus(d.runtimes(t), "Approvals", busbackend.StatusUp); n != 1 {
		t.Fatalf("after 59 s of silence: %d up, want 1", n)
	}
	clk.Advance(2 * time.Second)
	if n := countStatus(d.runtimes(t), "Approvals", busbackend.StatusLost); n != 1 {
		t.Fatalf("after 61 s of silence: %d lost, want 1", n)
	}
	if got := next(httpapi.EvRuntimeDisconnected); got["status"] != busbackend.StatusLost || got["runtimeName"] != "ours-1" {
		t.Fatalf("runtime_disconnected: %v", got)
	}
	var c createAnswer
	if st := d.call(t, "POST", "/api/components/Approvals/instances", map[string]any{}, &c); st != http.StatusServiceUnavailable {
		t.Fatalf("create with the only runtime lost: %d %+v, want 503", st, c)
	}

	f.heartbeat()
	eventually(t, "runtime up again", func() bool { return countStatus(d.runtimes(t), "Approvals", busbackend.StatusUp) == 1 })
	if got := next(httpapi.EvRuntimeConnected); got["status"] != busbackend.StatusUp {
		t.Fatalf("runtime_connected: %v", got)
	}
	f.publish(wire.ChannelShutdown, wire.Shutdown{RuntimeID: f.id, ComponentName: "Approvals", Timestamp: wire.Now(), RuntimeName: f.name}, bus.Meta{})
	eventually(t, "runtime stopped", func() bool { return countStatus(d.runtimes(t), "Approvals", busbackend.StatusStopped) == 1 })
	if got := next(httpapi.EvRuntimeDisconnected); got["status"] != busbackend.StatusStopped {
		t.Fatalf("runtime_disconnected: %v", got)
	}
	// Forgotten after ten times the lost delay.
	clk.Advance(9 * time.Minute)
	if n := len(d.runtimes(t)); n != 1 {
		t.Fatalf("after 9 min: %d runtimes listed, want the stopped one", n)
	}
	clk.Advance(2 * time.Minute)
	if n := len(d.runtimes(t)); n != 0 {
		t.Fatalf("after 11 min: %d runtimes listed, want none", n)
	}
}

// TestNoFlipFlop: two replicas report an instance; an older version arriving late (another
// replica's, or a reordering between channels) never takes the view back, and a creation
// arriving after the first transition does not either.
func TestNoFlipFlop(t *testing.T) {
	_, url := rmqtest.NewVhost(t)
	f1 := &fakeRuntime{t: t, b: newBus(t, url), id: uuid.NewString(), name: "replica-1"}
	f2 := &fakeRuntime{t: t, b: newBus(t, url), id: uuid.NewString(), name: "replica-2"}
	f1.start()
	f2.start()
	d := startDashboard(t, url, "", busbackend.Config{})
	eventually(t, "two runtimes up", func() bool { return countStatus(d.runtimes(t), "Approvals", busbackend.StatusUp) == 2 })

	id := uuid.NewString()
	change := func(f *fakeRuntime, from, to string, version int64) {
		f.publish(wire.ChannelStateChange, wire.StateChange{RuntimeID: f.id, RuntimeName: f.name, ComponentName: "Approvals",
			EventType: wire.EventStateChange, Timestamp: wire.Now(), Data: wire.StateChangeData{InstanceID: id,
				MachineName: "Request", PreviousState: from, NewState: to, Event: wire.Event{Type: "E"},
				Context: map[string]any{"v": version}, Version: version}}, bus.Meta{})
	}
	state := func() instanceAnswer {
		var in instanceAnswer
		d.call(t, "GET", "/api/instances/"+id, nil, &in)
		return in
	}
	change(f2, "Submitted", "Approved", 2)
	eventually(t, "version 2", func() bool { return state().Version == 2 })
	change(f1, "Draft", "Submitted", 1) // late, from the other replica
	f1.created(id, map[string]any{"v": 0})
	change(f2, "Approved", "Approved", 2) // a duplicate of the newest: accepted, no change
	// The channels are not ordered between them: wait for the marker of the last message.
	marker := uuid.NewString()
	f1.publish(wire.ChannelStateChange, wire.StateChange{RuntimeID: f1.id, RuntimeName: f1.name, ComponentName: "Approvals",
		EventType: wire.EventStateChange, Timestamp: wire.Now(), Data: wire.StateChangeData{InstanceID: marker,
			MachineName: "Request", NewState: "Draft", Version: 1}}, bus.Meta{})
	eventually(t, "the marker", func() bool {
		var in instanceAnswer
		return d.call(t, "GET", "/api/instances/"+marker, nil, &in) == 200
	})
	eventually(t, "the late creation seen", func() bool {
		var hist struct {
			History []struct {
				StateAfter string `json:"stateAfter"`
			} `json:"history"`
		}
		d.call(t, "GET", "/api/instances/"+id+"/history", nil, &hist)
		return len(hist.History) == 4
	})
	if got := state(); got.Version != 2 || got.CurrentState != "Approved" || got.Context["v"] != float64(2) {
		t.Fatalf("instance after late older news: %+v, want version 2 in Approved", got)
	}
}

// TestRediscoverAfterReconnect: when the broker connection comes back (here: RabbitMQ closes
// the dashboard's connection), the dashboard asks the runtimes to announce themselves again.
func TestRediscoverAfterReconnect(t *testing.T) {
	vhost, url := rmqtest.NewVhost(t)
	f := &fakeRuntime{t: t, b: newBus(t, url), id: uuid.NewString(), name: "ours-1"}
	f.start()
	var be atomic.Pointer[busbackend.Backend]
	name := "dashboard-" + uuid.NewString()
	b, err := rabbitmq.New(rabbitmq.Options{URL: url, Name: name, Logger: logger(t), MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second,
		OnStateChange: func(connected bool) {
			if d := be.Load(); d != nil && connected {
				d.BrokerReconnected()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := b.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := busbackend.New(ctx, busbackend.Config{Bus: b, BrokerURL: url, Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	be.Store(d)
	eventually(t, "the start's discover", func() bool { return f.discoverCount() >= 1 })
	before := f.discoverCount()
	closeConnection(t, vhost, name)
	eventually(t, "a discover after the reconnection", func() bool { return f.discoverCount() > before })
}

// closeConnection makes RabbitMQ close the connection named name in vhost.
func closeConnection(t *testing.T, vhost, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", "--quiet", "list_connections", "-p", vhost, "pid", "client_properties").Output()
	if err != nil {
		t.Fatalf("list_connections: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, `"`+name+`"`) {
			rmqtest.Ctl(t, "close_connection", strings.Fields(line)[0], "test: connection lost")
			return
		}
	}
	t.Fatalf("no connection %s in:\n%s", name, out)
}

// TestStartsWithoutBroker: with the broker unreachable at start the Backend is created anyway
// (health degraded, not ready, 503 for commands), and it subscribes and learns the runtimes
// once the broker is reachable.
func TestStartsWithoutBroker(t *testing.T) {
	vhost, url := rmqtest.NewVhost(t)
	f := &fakeRuntime{t: t, b: newBus(t, url), id: uuid.NewString(), name: "ours-1"}
	f.start()
	p := tcpproxy.New(t, rmqtest.BrokerAddr)
	p.Cut()
	b, err := rabbitmq.New(rabbitmq.Options{URL: "amqp://guest:guest@" + p.Addr() + "/" + vhost, Logger: logger(t),
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	d, err := busbackend.New(ctx, busbackend.Config{Bus: b, BrokerURL: url, Logger: logger(t)})
	if err != nil {
		t.Fatalf("New without broker: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if h := d.Health(context.Background()); h.Status != "degraded" || h.BrokerConnected {
		t.Fatalf("health without broker: %+v", h)
	}
	if err := d.Ready(context.Background()); err == nil {
		t.Fatal("ready without broker")
	}
	if _, err := d.Create(context.Background(), xc.CreateRequest{Component: "Approvals"}); err == nil {
		t.Fatal("create without broker succeeded")
	}

	p.Restore()
	eventually(t, "ready once the broker is back", func() bool { return d.Ready(context.Background()) == nil })
	eventually(t, "the runtime learnt", func() bool {
		rts, _ := d.Runtimes(context.Background())
		return len(rts) == 1 && rts[0].Status == busbackend.StatusUp && len(d.Components()) == 1
	})
}
