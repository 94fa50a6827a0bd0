package busbackend_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/distributed/distributedtest"
	"github.com/xcomponent/xcomponent/internal/busbackend"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/wire"
)

// historyEntry is an entry of GET /api/instances/{id}/history.
type historyEntry struct {
	Event struct {
		Type string `json:"type"`
	} `json:"event"`
	Actor  string `json:"actor"`
	Reason string `json:"reason"`
	Source string `json:"source"`
	Note   string `json:"note"`
}

func (d *dashboard) history(t *testing.T, id string) []historyEntry {
	t.Helper()
	var h struct {
		History []historyEntry `json:"history"`
	}
	if st := d.call(t, "GET", "/api/instances/"+id+"/history", nil, &h); st != 200 {
		t.Fatalf("history of %s: %d", id, st)
	}
	return h.History
}

// TestOperatorActionsOverTheBus: terminate and retry through the distributed dashboard reach the
// runtime holding the instance, one of two (fsm:commands:terminate_instance / retry_hook on its partition)
// and come back with its answer: terminated in fsm_snapshots with the actor and reason in the
// audit trail, its timer never fires; a failed onEntry hook retried; an ended instance → 409
// with the reason.
func TestOperatorActionsOverTheBus(t *testing.T) {
	_, url := rmqtest.NewVhost(t)
	dsn := pgtest.NewDatabase(t)
	var prepareCalls atomic.Int32 // shared by both runtimes: the first call fails
	hooks := distributed.Hooks{"prepare": func(_ context.Context, h *xc.Hook) error {
		if prepareCalls.Add(1) == 1 {
			return errors.New("supplier down")
		}
		h.Data["prepared"] = true
		return nil
	}}
	// Two runtimes of the component: whichever holds an instance's partition (and its timers)
	// applies the action.
	for _, name := range []string{"runtime-ops-1", "runtime-ops-2"} {
		distributedtest.Start(t, distributed.Config{ComponentFile: "../../distributed/testdata/ops.yaml", BrokerURL: url, StoreSpec: dsn,
			RuntimeName: name, HeartbeatInterval: 200 * time.Millisecond, MinBackoff: 50 * time.Millisecond,
			MaxBackoff: time.Second, Logger: logger(t), Hooks: hooks})
	}
	d := startDashboard(t, url, dsn, busbackend.Config{CommandTimeout: 20 * time.Second})
	eventually(t, "runtimes up", func() bool { return countStatus(d.runtimes(t), "Ops", busbackend.StatusUp) == 2 })
	base := "/api/components/Ops/instances"
	create := func() string {
		var c createAnswer
		if st := d.call(t, "POST", base, map[string]any{}, &c); st != http.StatusCreated {
			t.Fatalf("create: %d %+v", st, c)
		}
		return c.InstanceID
	}
	send := func(id, ev string) sendAnswer {
		var s sendAnswer
		if st := d.call(t, "POST", base+"/"+id+"/events", map[string]any{"type": ev}, &s); st != 200 {
			t.Fatalf("%s to %s: %d %+v", ev, id, st, s)
		}
		return s
	}

	// Terminate a waiting instance (its timer armed).
	a := create()
	send(a, "WAIT")
	var s sendAnswer
	if st := d.call(t, "POST", base+"/"+a+"/terminate", map[string]any{"reason": "duplicate order"}, &s); st != 200 ||
		s.Instance.Status != "terminated" || s.NewState != "Waiting" {
		t.Fatalf("terminate: %d %+v", st, s)
	}
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	var status, state, timers string
	if err := db.QueryRow(context.Background(), "SELECT status, current_state, pending_timeouts::text FROM fsm_snapshots WHERE instance_id = $1", a).
		Scan(&status, &state, &timers); err != nil || status != "terminated" || state != "Waiting" || timers != "[]" {
		t.Fatalf("fsm_snapshots of the terminated instance: %q %q %q %v", status, state, timers, err)
	}
	h := d.history(t, a)
	last := h[len(h)-1]
	if last.Event.Type != xc.EventTerminated || last.Actor != "anonymous" || last.Reason != "duplicate order" || last.Source != "operator" {
		t.Fatalf("audit entry of the termination: %+v", last)
	}
	var in instanceAnswer
	eventually(t, "terminated in the dashboard's view", func() bool {
		return d.call(t, "GET", "/api/instances/"+a, nil, &in) == 200 && in.Status == "terminated"
	})
	// Terminated again, or an event to it: 409 with the reason.
	if st := d.call(t, "POST", base+"/"+a+"/terminate", map[string]any{"reason": "again"}, &s); st != http.StatusConflict || !strings.Contains(s.Error, "terminated") {
		t.Fatalf("second terminate: %d %+v, want 409 with the reason", st, s)
	}

	// Its timer never fires: an instance that started waiting after it expires, it does not.
	b := create()
	send(b, "WAIT")
	eventually(t, "the later timer fired", func() bool {
		return d.call(t, "GET", "/api/instances/"+b, nil, &in) == 200 && in.CurrentState == "Expired"
	})
	if d.call(t, "GET", "/api/instances/"+a, nil, &in); in.Status != "terminated" || in.CurrentState != "Waiting" {
		t.Fatalf("terminated instance after the deadline: %+v", in)
	}
	for _, e := range d.history(t, a) {
		if e.Event.Type == "WAIT_TIMEOUT" {
			t.Fatalf("the terminated instance's timer fired: %+v", d.history(t, a))
		}
	}
	// An instance already ended (Expired, final): 409 with the reason.
	if st := d.call(t, "POST", base+"/"+b+"/terminate", nil, &s); st != http.StatusConflict || !strings.Contains(s.Error, "completed") {
		t.Fatalf("terminate a completed instance: %d %+v, want 409 with the reason", st, s)
	}

	// Retry a failed onEntry hook: nothing to retry first, then the failure retried.
	c := create()
	if st := d.call(t, "POST", base+"/"+c+"/retry", nil, &s); st != http.StatusConflict || !strings.Contains(s.Error, "no onEntry hook") {
		t.Fatalf("retry without a hook: %d %+v", st, s)
	}
	send(c, "PREPARE")
	if h := d.history(t, c); !strings.Contains(h[len(h)-1].Note, "supplier down") {
		t.Fatalf("hook failure not noted: %+v", h)
	}
	if st := d.call(t, "POST", base+"/"+c+"/retry", map[string]any{"reason": "supplier back"}, &s); st != 200 ||
		s.NewState != "Prepared" || s.Instance.Context["prepared"] != true {
		t.Fatalf("retry: %d %+v", st, s)
	}
	h = d.history(t, c)
	if last := h[len(h)-1]; last.Event.Type != xc.EventHookRetried || last.Reason != "supplier back" || last.Actor != "anonymous" || last.Note != "" {
		t.Fatalf("audit entry of the retry: %+v", last)
	}
	if st := d.call(t, "POST", base+"/"+c+"/retry", nil, &s); st != http.StatusConflict || !strings.Contains(s.Error, "no failed hook") {
		t.Fatalf("retry after success: %d %+v", st, s)
	}
	if n := prepareCalls.Load(); n != 2 {
		t.Fatalf("prepare ran %d times, want 2 (once failing, once retried)", n)
	}
	send(c, "FINISH")

	// Exactly once: the same terminate command published twice, once to the instance's
	// partition and once on the channel itself without componentName (the ingress routes it),
	// is applied once and answered applied, then duplicate.
	e := create()
	send(e, "WAIT")
	pub := newBus(t, url)
	replies := make(chan wire.CommandReply, 8)
	cid := uuid.NewString()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sub, err := pub.Subscribe(ctx, wire.ChannelCommandReply, func(_ context.Context, m bus.Message) error {
		if r, err := wire.Decode[wire.CommandReply](m.Body); err == nil && r.CommandID == cid {
			replies <- r
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	body, err := wire.Encode(wire.OperatorCommand{ComponentName: "Ops", InstanceID: e, Actor: "script", Reason: "cleanup",
		Trace: wire.Trace{CommandID: cid}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.PublishCommand(ctx, pub, "Ops", e, wire.ChannelTerminateInstance, body, bus.Meta{MessageID: cid}); err != nil {
		t.Fatal(err)
	}
	wantReply := func(status string) {
		t.Helper()
		select {
		case r := <-replies:
			if r.Status != status || r.Command != wire.ChannelTerminateInstance || r.Instance == nil || r.Instance.Status != "terminated" {
				t.Fatalf("reply %+v, want %s with the terminated instance", r, status)
			}
		case <-ctx.Done():
			t.Fatalf("no %s reply", status)
		}
	}
	wantReply(wire.ReplyApplied)
	body, _ = wire.Encode(wire.OperatorCommand{InstanceID: e, Actor: "script", Reason: "cleanup", Trace: wire.Trace{CommandID: cid}})
	if err := pub.Publish(ctx, wire.ChannelTerminateInstance, body, bus.Meta{MessageID: cid}); err != nil {
		t.Fatal(err)
	}
	wantReply(wire.ReplyDuplicate)
	n := 0
	for _, x := range d.history(t, e) {
		if x.Event.Type == xc.EventTerminated {
			n++
			if x.Actor != "script" || x.Reason != "cleanup" {
				t.Fatalf("audit entry of the bus command: %+v", x)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d termination entries, want 1", n)
	}
}

// TestOperatorActionsOnTypeScriptRuntime: an xcomponent-ai runtime knows no operator command:
// 501 at once, nothing published.
func TestOperatorActionsOnTypeScriptRuntime(t *testing.T) {
	_, url := rmqtest.NewVhost(t)
	f := &fakeRuntime{t: t, b: newBus(t, url), id: uuid.NewString(), ts: true, name: "ts-runtime-1"}
	f.start()
	d := startDashboard(t, url, "", busbackend.Config{CommandTimeout: 10 * time.Second})
	eventually(t, "TS runtime up", func() bool { return countStatus(d.runtimes(t), "Approvals", busbackend.StatusUp) == 1 })
	id := uuid.NewString()
	f.created(id, map[string]any{"amount": 1})
	var in instanceAnswer
	eventually(t, "instance seen", func() bool { return d.call(t, "GET", "/api/instances/"+id, nil, &in) == 200 })
	for _, action := range []string{"terminate", "retry"} {
		var s sendAnswer
		if st := d.call(t, "POST", "/api/components/Approvals/instances/"+id+"/"+action, map[string]any{"reason": "x"}, &s); st != http.StatusNotImplemented ||
			!strings.Contains(s.Error, "xcomponent-ai") {
			t.Fatalf("%s on a TS runtime's instance: %d %+v, want 501", action, st, s)
		}
	}
}
