package busbackend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/bus/rabbitmq"
	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/distributed/distributedtest"
	"github.com/xcomponent/xcomponent/internal/busbackend"
	"github.com/xcomponent/xcomponent/internal/httpapi"
	"github.com/xcomponent/xcomponent/store/postgres"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
)

const timeout = 30 * time.Second

func logger(t *testing.T) *slog.Logger { return distributedtest.Logger(t) }

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	distributedtest.Eventually(t, timeout, what, cond)
}

func newBus(t *testing.T, url string) *rabbitmq.Bus {
	t.Helper()
	b, err := rabbitmq.New(rabbitmq.Options{URL: url, Logger: logger(t), MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := b.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return b
}

// dashboard is a Backend over the vhost at url (and the database dsn when not empty) behind
// the HTTP API.
type dashboard struct {
	be  *busbackend.Backend
	srv *httptest.Server
}

func startDashboard(t *testing.T, url, dsn string, cfg busbackend.Config) *dashboard {
	t.Helper()
	if cfg.Bus == nil {
		cfg.Bus = newBus(t, url)
	}
	cfg.BrokerURL = url
	cfg.Logger = logger(t)
	if dsn != "" {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		st, err := postgres.Open(ctx, dsn, postgres.WithLogger(logger(t)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		cfg.Store = st
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	be, err := busbackend.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	srv := httptest.NewServer(httpapi.New(be, httpapi.Options{Logger: logger(t)}))
	t.Cleanup(srv.Close)
	return &dashboard{be: be, srv: srv}
}

// call sends a request and decodes the JSON answer; it returns the status.
func (d *dashboard) call(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, d.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

type runtimesAnswer struct {
	Runtimes []httpapi.Runtime `json:"runtimes"`
}

func (d *dashboard) runtimes(t *testing.T) []httpapi.Runtime {
	var out runtimesAnswer
	if st := d.call(t, "GET", "/api/runtimes", nil, &out); st != 200 {
		t.Fatalf("GET /api/runtimes: %d", st)
	}
	return out.Runtimes
}

func countStatus(rts []httpapi.Runtime, comp, status string) int {
	n := 0
	for _, r := range rts {
		if r.ComponentName == comp && r.Status == status {
			n++
		}
	}
	return n
}

type instanceAnswer struct {
	ID           string         `json:"id"`
	CurrentState string         `json:"currentState"`
	Status       string         `json:"status"`
	Context      map[string]any `json:"context"`
	Version      int64          `json:"version"`
}

type createAnswer struct {
	Success    bool           `json:"success"`
	InstanceID string         `json:"instanceId"`
	Instance   instanceAnswer `json:"instance"`
	Error      string         `json:"error"`
}

type sendAnswer struct {
	Success       bool           `json:"success"`
	Instance      instanceAnswer `json:"instance"`
	PreviousState string         `json:"previousState"`
	NewState      string         `json:"newState"`
	Error         string         `json:"error"`
}

// TestDashboardDrivesTwoRuntimes runs two runtimes of one component on one PostgreSQL database
// and drives them through the dashboard's HTTP API: create → 201 with the state, trigger → 200,
// refused → 409, unknown component → 404, no runtime up → 503; the runtimes panel lists both,
// the audit trail names the runtime that applied each event.
func TestDashboardDrivesTwoRuntimes(t *testing.T) {
	_, url := rmqtest.NewVhost(t)
	dsn := pgtest.NewDatabase(t)
	cfg := func(name string) distributed.Config {
		return distributed.Config{ComponentFile: "../../distributed/testdata/approval.yaml", BrokerURL: url, StoreSpec: dsn,
			RuntimeName: name, HeartbeatInterval: 200 * time.Millisecond, MinBackoff: 50 * time.Millisecond,
			MaxBackoff: time.Second, Logger: logger(t)}
	}
	a := distributedtest.Start(t, cfg("runtime-a"))
	b := distributedtest.Start(t, cfg("runtime-b"))
	d := startDashboard(t, url, dsn, busbackend.Config{CommandTimeout: 15 * time.Second})

	eventually(t, "two runtimes up", func() bool { return countStatus(d.runtimes(t), "Approvals", busbackend.StatusUp) == 2 })
	for _, r := range d.runtimes(t) {
		if r.Host == "" || r.LastSeen == 0 || (r.RuntimeName != "runtime-a" && r.RuntimeName != "runtime-b") {
			t.Fatalf("runtime %+v: want name, host and last heartbeat", r)
		}
	}
	var health httpapi.Health
	if st := d.call(t, "GET", "/health", nil, &health); st != 200 || health.Mode != "distributed" || !health.BrokerConnected ||
		!health.Database || health.DatabaseType != "postgres" || health.ConnectedRuntimes != 2 || strings.Contains(health.Broker, "guest:guest") {
		t.Fatalf("GET /health: %d %+v", st, health)
	}
	if st := d.call(t, "GET", "/readyz", nil, nil); st != 200 {
		t.Fatalf("GET /readyz: %d", st)
	}
	var comps struct {
		Components []struct {
			Name string `json:"name"`
		} `json:"components"`
	}
	if st := d.call(t, "GET", "/api/components", nil, &comps); st != 200 || len(comps.Components) != 1 || comps.Components[0].Name != "Approvals" {
		t.Fatalf("GET /api/components: %d %+v", st, comps)
	}

	// Create and drive several instances: whichever runtime applies each command, the answers
	// are the new states.
	var ids []string
	for i := range 6 {
		var c createAnswer
		st := d.call(t, "POST", "/api/components/Approvals/instances", map[string]any{"context": map[string]any{"n": i}}, &c)
		if st != http.StatusCreated || !c.Success || c.InstanceID == "" || c.Instance.CurrentState != "Draft" {
			t.Fatalf("create %d: %d %+v", i, st, c)
		}
		ids = append(ids, c.InstanceID)
	}
	for _, id := range ids {
		var s sendAnswer
		st := d.call(t, "POST", "/api/instances/"+id+"/trigger", map[string]any{"event": "SUBMIT"}, &s)
		if st != 200 || s.PreviousState != "Draft" || s.NewState != "Submitted" || s.Instance.CurrentState != "Submitted" {
			t.Fatalf("SUBMIT %s: %d %+v", id, st, s)
		}
	}
	var s sendAnswer
	if st := d.call(t, "POST", "/api/components/Approvals/instances/"+ids[0]+"/events", map[string]any{"type": "APPROVE"}, &s); st != 200 || s.NewState != "Approved" {
		t.Fatalf("APPROVE: %d %+v", st, s)
	}

	// Broadcast: APPROVE to the Submitted requests (ids[1:]): each one applied by a runtime.
	var bc struct {
		Matched   int `json:"matched"`
		Processed int `json:"processed"`
	}
	if st := d.call(t, "POST", "/api/components/Approvals/broadcast", map[string]any{"machineName": "Request",
		"event": map[string]any{"type": "APPROVE"}, "currentState": "Submitted"}, &bc); st != 200 || bc.Matched != 5 || bc.Processed != 5 {
		t.Fatalf("broadcast: %d %+v, want 5 matched and processed", st, bc)
	}
	// Back to Submitted for what follows: new instances.
	for i := 1; i < len(ids); i++ {
		var c createAnswer
		if st := d.call(t, "POST", "/api/components/Approvals/instances", map[string]any{"context": map[string]any{"n": 10 + i}}, &c); st != http.StatusCreated {
			t.Fatalf("create: %d %+v", st, c)
		}
		if st := d.call(t, "POST", "/api/instances/"+c.InstanceID+"/trigger", map[string]any{"event": "SUBMIT"}, &s); st != 200 {
			t.Fatalf("SUBMIT: %d %+v", st, s)
		}
		ids[i] = c.InstanceID
	}

	// Exact counts from the database (6 approved, 5 submitted), and an event by business key.
	var counts struct {
		Counts []struct {
			State  string `json:"state"`
			Status string `json:"status"`
			Count  int    `json:"count"`
		} `json:"counts"`
		Exact bool `json:"exact"`
	}
	eventually(t, "exact counts", func() bool {
		if st := d.call(t, "GET", "/api/counts?component=Approvals", nil, &counts); st != 200 || !counts.Exact {
			return false
		}
		n := map[string]int{}
		for _, c := range counts.Counts {
			n[c.State] += c.Count
		}
		return n["Approved"] == 6 && n["Submitted"] == 5
	})
	var bulk struct {
		Matched, Processed int
	}
	if st := d.call(t, "POST", "/api/events", map[string]any{"component": "Approvals", "where": "n:14", "event": "APPROVE"}, &bulk); st != 200 || bulk.Matched != 1 || bulk.Processed != 1 {
		t.Fatalf("event by business key: %d %+v", st, bulk)
	}
	// back to five Submitted for what follows
	var extra createAnswer
	if st := d.call(t, "POST", "/api/components/Approvals/instances", map[string]any{"context": map[string]any{"n": 99}}, &extra); st != http.StatusCreated {
		t.Fatalf("create: %d %+v", st, extra)
	}
	if st := d.call(t, "POST", "/api/instances/"+extra.InstanceID+"/trigger", map[string]any{"event": "SUBMIT"}, &s); st != 200 {
		t.Fatalf("SUBMIT: %d %+v", st, s)
	}

	// Refusals: no transition from the current state, completed instance.
	if st := d.call(t, "POST", "/api/instances/"+ids[1]+"/trigger", map[string]any{"event": "SUBMIT"}, &s); st != http.StatusConflict || s.Error == "" {
		t.Fatalf("SUBMIT twice: %d %+v, want 409 with the reason", st, s)
	}
	if st := d.call(t, "POST", "/api/instances/"+ids[0]+"/trigger", map[string]any{"event": "APPROVE"}, &s); st != http.StatusConflict {
		t.Fatalf("event to a completed instance: %d %+v, want 409", st, s)
	}
	// Unknown component, unknown instance.
	var e createAnswer
	if st := d.call(t, "POST", "/api/components/Nope/instances", map[string]any{}, &e); st != http.StatusNotFound {
		t.Fatalf("unknown component: %d %+v", st, e)
	}
	if st := d.call(t, "POST", "/api/instances/0190f5f5-0000-7000-8000-000000000000/trigger", map[string]any{"event": "SUBMIT"}, &s); st != http.StatusNotFound {
		t.Fatalf("unknown instance: %d %+v", st, s)
	}

	// Reads come from the database: the completed instance is listed, the audit trail names
	// the runtime of each event.
	var list struct {
		Instances []instanceAnswer `json:"instances"`
	}
	if st := d.call(t, "GET", "/api/instances?component=Approvals", nil, &list); st != 200 || len(list.Instances) != 12 { // 11, and the one created after the event by key
		t.Fatalf("GET /api/instances: %d, %d instances", st, len(list.Instances))
	}
	var hist struct {
		History []struct {
			StateAfter string `json:"stateAfter"`
			Runtime    string `json:"runtime"`
		} `json:"history"`
	}
	if st := d.call(t, "GET", "/api/instances/"+ids[0]+"/history", nil, &hist); st != 200 || len(hist.History) != 3 {
		t.Fatalf("history: %d %+v", st, hist)
	}
	for _, h := range hist.History {
		if h.Runtime != "runtime-a" && h.Runtime != "runtime-b" {
			t.Fatalf("history entry %+v: want the runtime that applied it", h)
		}
	}

	// No runtime up: 503, for create and trigger.
	a.Stop(t)
	b.Stop(t)
	eventually(t, "both runtimes stopped", func() bool {
		return countStatus(d.runtimes(t), "Approvals", busbackend.StatusStopped) == 2
	})
	if st := d.call(t, "POST", "/api/components/Approvals/instances", map[string]any{}, &e); st != http.StatusServiceUnavailable {
		t.Fatalf("create without runtime: %d %+v, want 503", st, e)
	}
	if st := d.call(t, "POST", "/api/instances/"+ids[2]+"/trigger", map[string]any{"event": "APPROVE"}, &s); st != http.StatusServiceUnavailable {
		t.Fatalf("trigger without runtime: %d %+v, want 503", st, s)
	}

	// A dashboard started now rebuilds its view from the database.
	c := distributedtest.Start(t, cfg("runtime-c"))
	_ = c
	d2 := startDashboard(t, url, dsn, busbackend.Config{})
	eventually(t, "restarted dashboard sees runtime-c", func() bool { return countStatus(d2.runtimes(t), "Approvals", busbackend.StatusUp) == 1 })
	if st := d2.call(t, "GET", "/api/instances?component=Approvals&status=active", nil, &list); st != 200 || len(list.Instances) != 5 {
		t.Fatalf("restarted dashboard: %d, %d active instances, want 5", st, len(list.Instances))
	}
	if st := d2.call(t, "POST", "/api/instances/"+ids[2]+"/trigger", map[string]any{"event": "APPROVE"}, &s); st != 200 || s.NewState != "Approved" {
		t.Fatalf("APPROVE through the restarted dashboard: %d %+v", st, s)
	}
}

// TestDashboardRefusesDataRuntimesWouldChange: the dashboard answers 422 naming the field,
// as a single runtime does, for data a runtime would round (integers beyond 2^53, decoded as
// float64 from the broker) or no store could keep (NUL); valid data still goes through.
func TestDashboardRefusesDataRuntimesWouldChange(t *testing.T) {
	_, url := rmqtest.NewVhost(t)
	dsn := pgtest.NewDatabase(t)
	distributedtest.Start(t, distributed.Config{ComponentFile: "../../distributed/testdata/approval.yaml", BrokerURL: url, StoreSpec: dsn,
		RuntimeName: "runtime-a", HeartbeatInterval: 200 * time.Millisecond, MinBackoff: 50 * time.Millisecond,
		MaxBackoff: time.Second, Logger: logger(t)})
	d := startDashboard(t, url, dsn, busbackend.Config{CommandTimeout: 15 * time.Second})
	eventually(t, "runtime up", func() bool { return countStatus(d.runtimes(t), "Approvals", busbackend.StatusUp) == 1 })

	post := func(path, body string) (int, string) {
		resp, err := http.Post(d.srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	for body, field := range map[string]string{
		`{"context":{"ref":9007199254740993}}`: `"ref"`,
		`{"context":{"who":"a\u0000b"}}`:       `"who"`,
	} {
		if code, raw := post("/api/components/Approvals/instances", body); code != http.StatusUnprocessableEntity || !strings.Contains(raw, field) {
			t.Fatalf("create %s: %d %s, want 422 naming %s", body, code, raw, field)
		}
	}
	code, raw := post("/api/components/Approvals/instances", `{"context":{"ref":9007199254740992}}`)
	if code != http.StatusCreated || !strings.Contains(raw, `"ref":9007199254740992`) {
		t.Fatalf("valid create: %d %s", code, raw)
	}
	var created struct {
		InstanceID string `json:"instanceId"`
	}
	if err := json.Unmarshal([]byte(raw), &created); err != nil {
		t.Fatal(err)
	}
	if code, raw := post("/api/instances/"+created.InstanceID+"/trigger", `{"type":"SUBMIT","payload":{"n":-9007199254740993}}`); code != http.StatusUnprocessableEntity || !strings.Contains(raw, "payload.n") {
		t.Fatalf("event: %d %s, want 422 naming payload.n", code, raw)
	}
}
