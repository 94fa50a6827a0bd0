package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
)

func doRecorder(h http.Handler, method, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(method, path, nil)
	r.Host = "localhost:3000" // httptest's example.com is not an allowed host
	h.ServeHTTP(rec, r)
	return rec
}

func TestParseTokens(t *testing.T) {
	tok, err := ParseTokens("operator=T1, viewer=T2,operator=T3,")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tok[RoleOperator], []string{"T1", "T3"}) || !slices.Equal(tok[RoleViewer], []string{"T2"}) {
		t.Errorf("tokens: %v", tok)
	}
	for _, bad := range []string{"admin=T", "operator", "operator=", "=T"} {
		if _, err := ParseTokens(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	_, err = ParseTokens("boss=supersecret")
	if err == nil || strings.Contains(err.Error(), "supersecret") {
		t.Errorf("error reveals the token: %v", err)
	}

	p := writeFile(t, "tokens", "# who may do what\noperator=F1\n\n  viewer = F2  \n")
	ft, err := LoadTokensFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ft[RoleOperator], []string{"F1"}) || !slices.Equal(ft[RoleViewer], []string{"F2"}) {
		t.Errorf("file tokens: %v", ft)
	}
	if all := tok.Merge(ft); len(all[RoleOperator]) != 3 || len(all[RoleViewer]) != 2 {
		t.Errorf("merge: %v", all)
	}
	bad := writeFile(t, "bad", "operator=ok\nroot=secret42\n")
	if _, err := LoadTokensFile(bad); err == nil || !strings.Contains(err.Error(), ":2:") || strings.Contains(err.Error(), "secret42") {
		t.Errorf("bad file: %v", err)
	}
	if _, err := LoadTokensFile(bad + ".missing"); err == nil {
		t.Errorf("missing file accepted")
	}
}

func TestAuth(t *testing.T) {
	const opTok, viewTok = "op-secret-token", "view-secret-token"
	tokens, _ := ParseTokens("operator=" + opTok + ",viewer=" + viewTok)
	e := approvalEnv(t, Options{Tokens: tokens})
	create := "/api/components/ApprovalWorkflow/instances"
	body := map[string]any{"context": expense("EXP-1", 10)}

	// Open endpoints.
	for _, p := range []string{"/health", "/healthz", "/readyz", "/metrics"} {
		e.must(e.get(p), 200)
	}
	// No token, a wrong token: 401.
	r := e.must(e.get("/api/components"), 401)
	if !strings.Contains(r.header.Get("WWW-Authenticate"), "Bearer") || r.str("error") == "" {
		t.Errorf("401: %v %s", r.header, r.raw)
	}
	e.must(e.do(req{method: "GET", path: "/api/instances", token: "nope"}), 401)
	e.must(e.do(req{method: "POST", path: create, body: body}), 401)
	e.must(e.do(req{method: "GET", path: "/api/components", header: map[string]string{"Authorization": "Basic " + opTok}}), 401)
	// The ?token= form is for the stream only.
	e.must(e.get("/api/components?token="+opTok), 401)
	// Viewers read, and may not POST.
	e.must(e.do(req{method: "GET", path: "/api/components", token: viewTok}), 200)
	r = e.must(e.do(req{method: "POST", path: create, body: body, token: viewTok}), 403)
	if !strings.Contains(r.str("error"), "operator") {
		t.Errorf("403: %s", r.raw)
	}
	// Operators do everything; the actor is recorded, never the token.
	r = e.must(e.do(req{method: "POST", path: create, body: body, token: opTok}), 201)
	id := r.str("instanceId")
	e.must(e.do(req{method: "POST", path: "/api/instances/" + id + "/trigger", body: map[string]any{"event": "SUBMIT"}, token: opTok}), 200)
	e.idle()
	r = e.must(e.do(req{method: "GET", path: "/api/instances/" + id + "/history", token: viewTok}), 200)
	actorRE := regexp.MustCompile(`^operator:[0-9a-f]{6}$`)
	for _, h := range r.list("history") {
		a, _ := h.(map[string]any)["actor"].(string)
		if !actorRE.MatchString(a) {
			t.Errorf("actor %q", a)
		}
	}
	logs := e.logs.String()
	if strings.Contains(logs, opTok) || strings.Contains(logs, viewTok) {
		t.Errorf("a token was logged")
	}
	if !regexp.MustCompile(`"actor":"operator:[0-9a-f]{6}"`).MatchString(logs) || !strings.Contains(logs, `"actor":"viewer:`) {
		t.Errorf("actors not logged: %s", logs)
	}

	// The stream accepts ?token= and the header; without a token it is refused.
	s := e.stream("?token="+viewTok, nil)
	s.next(t, "components_list")
	s2 := e.stream("", map[string]string{"Authorization": "Bearer " + viewTok})
	s2.next(t, "components_list")
	e.must(e.get("/api/stream"), 401)
	e.must(e.get("/api/stream?token=wrong"), 401)
	if logs := e.logs.String(); strings.Contains(logs, viewTok) {
		t.Errorf("the stream token was logged")
	}
}

func TestStream(t *testing.T) {
	e := newEnv(t, Options{}, []*component.Component{loadFixture(t, "approval.yaml"), loadFixture(t, "payment.yaml")}, nil)
	first := e.create("ApprovalWorkflow", "", expense("EXP-1", 10))
	other := e.create("ApprovalWorkflow", "", expense("EXP-2", 20))

	// One instance.
	one := e.stream("?instance="+first, nil)
	m := one.next(t, "components_list")
	if cs, _ := m.data["components"].([]any); len(cs) != 2 {
		t.Errorf("components_list: %v", m.data)
	}
	m = one.next(t, "instances_update")
	if ins, _ := m.data["instances"].([]any); len(ins) != 1 || m.data["componentName"] != "ApprovalWorkflow" {
		t.Errorf("instances_update: %v", m.data)
	}
	// The whole component.
	comp := e.stream("?component=ApprovalWorkflow", nil)
	comp.next(t, "components_list")
	if m := comp.next(t, "instances_update"); len(m.data["instances"].([]any)) != 2 {
		t.Errorf("component snapshot: %v", m.data)
	}
	// Everything.
	all := e.stream("", nil)
	all.next(t, "components_list")

	e.send("ApprovalWorkflow", other, "SUBMIT", nil, 200)
	e.send("ApprovalWorkflow", first, "SUBMIT", nil, 200)
	m = one.next(t, "state_change")
	if m.data["instanceId"] != first || m.data["previousState"] != "Draft" || m.data["newState"] != "PendingManagerApproval" ||
		m.data["componentName"] != "ApprovalWorkflow" || m.data["eventType"] != "state_change" || m.data["machineName"] != "ExpenseRequest" ||
		m.data["context"] == nil || m.data["pendingTimeouts"] == nil || m.data["timestamp"] == nil {
		t.Errorf("state_change: %v", m.data)
	}
	if ev, _ := m.data["event"].(map[string]any); ev["type"] != "SUBMIT" {
		t.Errorf("state_change event: %v", m.data["event"])
	}
	if m := comp.next(t, "state_change"); m.data["instanceId"] != other {
		t.Errorf("component stream order: %v", m.data)
	}
	pay := e.create("PaymentComponent", "", map[string]any{"orderId": "O"})
	m = all.next(t, "instance_created")
	for m.data["instanceId"] != pay {
		m = all.next(t, "instance_created")
	}
	if m.data["componentName"] != "PaymentComponent" || m.data["currentState"] != "Pending" || m.data["machineName"] != "Payment" {
		t.Errorf("instance_created: %v", m.data)
	}
	e.send("PaymentComponent", pay, "PROCESS", nil, 200)
	e.send("PaymentComponent", pay, "CONFIRM", nil, 200)
	m = all.next(t, "instance_completed")
	if m.data["instanceId"] != pay || m.data["finalState"] != "Completed" || m.data["componentName"] != "PaymentComponent" {
		t.Errorf("instance_completed: %v", m.data)
	}
	// The instance and component streams saw nothing of the payment.
	e.send("ApprovalWorkflow", first, "MANAGER_APPROVE", nil, 200)
	if m := one.next(t, "state_change"); m.data["newState"] != "ManagerApproved" {
		t.Errorf("instance stream got %v", m.data)
	}
	if m := comp.next(t, "state_change"); m.data["instanceId"] != first {
		t.Errorf("component stream got %v", m.data)
	}
	select {
	case m := <-comp.msgs:
		if m.data["componentName"] != "ApprovalWorkflow" {
			t.Errorf("component stream leaked %v", m)
		}
	default:
	}

	e.must(e.get("/api/stream?component=Nope"), 404)
	e.must(e.get("/api/stream?instance=bad"), 400)
}

func TestStreamHeartbeat(t *testing.T) {
	e := newEnv(t, Options{Heartbeat: 10 * time.Millisecond}, []*component.Component{loadFixture(t, "payment.yaml")}, nil)
	resp, err := e.srv.Client().Get(e.srv.URL + "/api/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("content type %q", ct)
	}
	buf := make([]byte, 0, 4096)
	chunk := make([]byte, 512)
	for !strings.Contains(string(buf), ": heartbeat\n\n") {
		n, err := resp.Body.Read(chunk)
		if err != nil {
			t.Fatalf("read: %v (got %q)", err, buf)
		}
		buf = append(buf, chunk[:n]...)
	}
}

// TestSlowClientDropped: a client that stops reading is dropped; the engine never waits.
func TestSlowClientDropped(t *testing.T) {
	e := newEnv(t, Options{StreamBuffer: 4, StreamWriteTimeout: 200 * time.Millisecond},
		[]*component.Component{loadFixture(t, "approval.yaml")}, nil)
	id := e.create("ApprovalWorkflow", "", expense("EXP-1", 10))

	// A reader that keeps up, and one that reads nothing after connecting.
	good := e.stream("?instance="+id, nil)
	good.next(t, "instances_update")
	slow, err := e.srv.Client().Get(e.srv.URL + "/api/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Body.Close()
	if n := e.handler.hub.count(); n != 2 {
		t.Fatalf("hub has %d clients", n)
	}

	// Big events fill the slow client's socket, then its buffer: it is dropped. The sends
	// complete while the slow client reads nothing (they would hang here if the engine waited
	// for it); the slowest is logged, not asserted: wall-clock limits flake on a loaded machine.
	big := strings.Repeat("x", 128<<10)
	var slowest time.Duration
	for i := range 400 {
		start := time.Now()
		e.send("ApprovalWorkflow", id, "EDIT", map[string]any{"blob": big, "i": i}, 200)
		slowest = max(slowest, time.Since(start))
		if e.handler.hub.count() == 1 {
			break
		}
	}
	t.Logf("slowest send with a slow client: %v", slowest)
	if n := e.handler.hub.count(); n != 1 {
		t.Fatalf("slow client not dropped: %d clients", n)
	}
	// Its connection is closed: reading to the end terminates.
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, slow.Body)
		done <- err
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("slow client's connection still open")
	}
	// The good client still gets events.
	e.send("ApprovalWorkflow", id, "SUBMIT", nil, 200)
	for {
		if m := good.next(t, "state_change"); m.data["newState"] == "PendingManagerApproval" {
			break
		}
	}
}

// TestHubDropsWithoutBlocking checks the fan-out itself: a client that never reads is dropped
// on the first event it has no room for, and the dispatch does not wait for it.
func TestHubDropsWithoutBlocking(t *testing.T) {
	eng := xc.New(xc.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx := context.Background()
	if err := eng.Load(ctx, loadFixture(t, "payment.yaml")); err != nil {
		t.Fatal(err)
	}
	h := newHub(NewLocal(eng), 2, slog.New(slog.NewTextHandler(io.Discard, nil)))
	c, err := h.join("", "", "a")
	if err != nil {
		t.Fatal(err)
	}
	reader, err := h.join("PaymentComponent", "", "b")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // a reader that keeps up
		defer close(done)
		for {
			select {
			case <-reader.ch:
			case <-reader.gone:
				return
			}
		}
	}()
	for range 5 {
		if _, err := eng.Create(ctx, xc.CreateRequest{Component: "PaymentComponent"}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-c.gone:
	case <-time.After(10 * time.Second):
		t.Fatal("client not dropped")
	}
	if err := eng.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Closing the engine ends the subscription: the remaining clients are dropped too.
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("clients not dropped when the backend closed")
	}
	if h.count() != 0 {
		t.Errorf("%d clients left", h.count())
	}
}

func TestMetrics(t *testing.T) {
	e := approvalEnv(t, Options{})
	id := e.create("ApprovalWorkflow", "", expense("EXP-1", 10))
	e.send("ApprovalWorkflow", id, "SUBMIT", nil, 200)
	e.send("ApprovalWorkflow", id, "SUBMIT", nil, 409)
	r := e.must(e.get("/metrics"), 200)
	text := string(r.raw)
	for _, want := range []string{
		`transitions_total{component="ApprovalWorkflow",event="SUBMIT",from="Draft",machine="ExpenseRequest",to="PendingManagerApproval"} 1`,
		`events_ignored_total{component="ApprovalWorkflow",machine="ExpenseRequest"} 1`,
		`instances{component="ApprovalWorkflow",machine="ExpenseRequest",state="PendingManagerApproval"} 1`,
		`transition_duration_seconds_count{component="ApprovalWorkflow",machine="ExpenseRequest"} 1`,
		"timers_pending 1", "outbox_pending 0", "broker_connected 0", "store_errors_total 0", "timer_lag_seconds_count 0",
		"go_goroutines", "process_", `http_requests_total{code="201",method="POST",route="POST /api/components/{component}/instances"} 1`,
		`http_request_duration_seconds_count{method="POST",route="POST /api/components/{component}/instances/{id}/events"} 2`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(text, "hook_errors_total{") {
		t.Errorf("hook errors counted: %s", text)
	}
	// A fired timer is observed.
	e.advance(7 * 24 * time.Hour)
	text = string(e.must(e.get("/metrics"), 200).raw)
	if !strings.Contains(text, "timer_lag_seconds_count 1") || !strings.Contains(text, "timers_pending 0") {
		t.Errorf("timer metrics after firing")
	}
}

// TestOpenAPICoversRoutes keeps openapi.json and the route table in step, both ways.
func TestOpenAPICoversRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal([]byte(openAPIDoc), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi version %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
			var o struct {
				Responses  map[string]any `json:"responses"`
				Parameters []struct {
					Name string `json:"name"`
					In   string `json:"in"`
				} `json:"parameters"`
			}
			if err := json.Unmarshal(op, &o); err != nil || len(o.Responses) == 0 {
				t.Errorf("%s %s: no responses (%v)", method, path, err)
			}
			for _, m := range regexp.MustCompile(`\{(\w+)\}`).FindAllStringSubmatch(path, -1) {
				if !slices.ContainsFunc(o.Parameters, func(p struct {
					Name string `json:"name"`
					In   string `json:"in"`
				}) bool {
					return p.Name == m[1] && p.In == "path"
				}) {
					t.Errorf("%s %s: path parameter %s not documented", method, path, m[1])
				}
			}
		}
	}
	s := &server{}
	registered := map[string]bool{}
	for _, rt := range s.routeTable() {
		registered[rt.pattern()] = true
		if !documented[rt.pattern()] {
			t.Errorf("route %s is not in openapi.json", rt.pattern())
		}
	}
	for p := range documented {
		if !registered[p] {
			t.Errorf("openapi.json documents %s, which is not served", p)
		}
	}
	// And it is served.
	e := approvalEnv(t, Options{})
	r := e.must(e.get("/api/openapi.json"), 200)
	if r.str("openapi") != doc.OpenAPI {
		t.Errorf("served document differs")
	}
}

// TestEveryRouteAnswersJSON calls every route and checks the answer is JSON (or the stream /
// metrics text) with a status the route documents.
func TestEveryRouteAnswersJSON(t *testing.T) {
	e := approvalEnv(t, Options{})
	id := e.create("ApprovalWorkflow", "", expense("EXP-1", 10))
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]any `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(openAPIDoc), &doc); err != nil {
		t.Fatal(err)
	}
	fill := strings.NewReplacer("{component}", "ApprovalWorkflow", "{id}", id, "{machine}", "ExpenseRequest")
	for _, rt := range (&server{}).routeTable() {
		if rt.stream {
			continue
		}
		r := e.do(req{method: rt.method, path: fill.Replace(rt.path), body: map[string]any{
			"type": "EDIT", "machineName": "ExpenseRequest", "event": map[string]any{"type": "EDIT"}, "context": expense("EXP-9", 1)}})
		if _, ok := doc.Paths[rt.path][strings.ToLower(rt.method)].Responses[fmt.Sprint(r.status)]; !ok {
			t.Errorf("%s: status %d is not documented: %s", rt.pattern(), r.status, r.raw)
		}
		if rt.path != "/metrics" && r.body == nil {
			t.Errorf("%s: answer is not JSON: %s", rt.pattern(), r.raw)
		}
	}
}
