package httpapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
)

const singletonYAML = `
name: Desk
entryMachine: Counter
entryMachineMode: singleton
autoCreateEntryPoint: false
stateMachines:
	- name: Counter
		initialState: Open
		states:
			- name: Open
				type: entry
			- name: Closed
				type: final
		transitions:
			- from: Open
				to: Closed
				event: CLOSE
`

func approvalEnv(t *testing.T, opts Options) *env {
	return newEnv(t, opts, []*component.Component{loadFixture(t, "approval.yaml")}, nil)
}

func expense(id string, amount float64) map[string]any {
	return map[string]any{"requestId": id, "employeeName": "Ada Lovelace", "amount": amount, "category": "travel"}
}

func TestHealth(t *testing.T) {
	e := approvalEnv(t, Options{})
	r := e.must(e.get("/health"), 200)
	if r.str("status") != "ok" || r.str("mode") != "single" || r.str("databaseType") != "memory" {
		t.Errorf("health: %s", r.raw)
	}
	if db, ok := r.get("database").(bool); !ok || db {
		t.Errorf("database: want false for the memory store: %s", r.raw)
	}
	if r.num("connectedRuntimes") != 1 || len(r.list("components")) != 1 || r.list("components")[0] != "ApprovalWorkflow" {
		t.Errorf("health components: %s", r.raw)
	}
	e.must(e.get("/healthz"), 200)
	if r := e.must(e.get("/readyz"), 200); r.str("status") != "ready" {
		t.Errorf("readyz: %s", r.raw)
	}

	e.store.down.Store(true)
	if r := e.must(e.get("/health"), 200); r.str("status") != "degraded" {
		t.Errorf("health with the store down: %s", r.raw)
	}
	e.must(e.get("/readyz"), 503)
	e.must(e.get("/healthz"), 200)
	if r := e.must(e.get("/api/instances"), 503); r.str("error") == "" {
		t.Errorf("503 without an error message: %s", r.raw)
	}
	r = e.must(e.post("/api/components/ApprovalWorkflow/instances", map[string]any{"context": expense("EXP-1", 10)}), 503)
	if !strings.Contains(r.str("error"), "store unavailable") {
		t.Errorf("create with the store down: %s", r.raw)
	}
}

func TestHealthMasksBrokerPassword(t *testing.T) {
	eng := xc.New(xc.Options{})
	t.Cleanup(func() { _ = eng.Close(context.Background()) })
	b := NewLocal(eng, WithBroker("amqp://xcomponent:xcomponent123@rabbit:5672/", func() bool { return false }), WithDatabaseType("sqlite"))
	quiet := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	rec := doRecorder(New(b, quiet), "GET", "/health")
	body := rec.Body.String()
	if strings.Contains(body, "xcomponent123") || !strings.Contains(body, `amqp://xcomponent:***@rabbit:5672/`) {
		t.Errorf("password not masked: %s", body)
	}
	if !strings.Contains(body, `"status":"degraded"`) || !strings.Contains(body, `"databaseType":"sqlite"`) {
		t.Errorf("health: %s", body)
	}
	if rec := doRecorder(New(b, quiet), "GET", "/readyz"); rec.Code != 503 {
		t.Errorf("readyz with the broker down: %d", rec.Code)
	}
}

func TestComponents(t *testing.T) {
	e := newEnv(t, Options{}, []*component.Component{loadFixture(t, "order.yaml"), loadFixture(t, "payment.yaml")}, nil)
	r := e.must(e.get("/api/components"), 200)
	cs := r.list("components")
	if len(cs) != 2 {
		t.Fatalf("components: %s", r.raw)
	}
	first := cs[0].(map[string]any)
	for _, k := range []string{"name", "version", "entryMachine", "entryMachineMode", "stateMachines", "warnings"} {
		if _, ok := first[k]; !ok {
			t.Errorf("component summary lacks %s: %v", k, first)
		}
	}
	if first["name"] != "OrderComponent" || first["version"] != "2.1.0" || first["entryMachineMode"] != "multiple" {
		t.Errorf("summary: %v", first)
	}
	m := first["stateMachines"].([]any)[0].(map[string]any)
	if m["initialState"] != "Created" || m["contextSchema"] == nil {
		t.Errorf("machine: %v", m)
	}
	if order, _ := m["schemaOrder"].([]any); len(order) != 2 || order[0] != "orderId" {
		t.Errorf("schemaOrder: %v", m["schemaOrder"])
	}

	r = e.must(e.get("/api/components/OrderComponent"), 200)
	if r.str("name") != "OrderComponent" || r.get("metadata") == nil || len(r.list("stateMachines")) != 1 {
		t.Errorf("definition: %s", r.raw)
	}
	tr := r.list("stateMachines")[0].(map[string]any)["transitions"].([]any)[0].(map[string]any)
	if tr["targetComponent"] != "PaymentComponent" || tr["contextMapping"] == nil {
		t.Errorf("transition keys are not camelCase: %v", tr)
	}
	r = e.must(e.get("/api/components/PaymentComponent/machines"), 200)
	if len(r.list("machines")) != 1 {
		t.Errorf("machines: %s", r.raw)
	}
	for _, p := range []string{"/api/components/Nope", "/api/components/Nope/machines", "/api/components/Nope/instances"} {
		if r := e.must(e.get(p), 404); !strings.Contains(r.str("error"), "component Nope not found") {
			t.Errorf("%s: %s", p, r.raw)
		}
	}
}

func TestUnknownKeysKept(t *testing.T) {
	c := parseYAML(t, "name: K\nowner: team-a\nstateMachines:\n  - name: M\n    initialState: A\n    states:\n      - name: A\n")
	e := newEnv(t, Options{}, []*component.Component{c}, nil)
	if r := e.must(e.get("/api/components/K"), 200); r.str("owner") != "team-a" {
		t.Errorf("unknown key dropped: %s", r.raw)
	}
}

func TestCreate(t *testing.T) {
	e := newEnv(t, Options{}, []*component.Component{loadFixture(t, "approval.yaml"), parseYAML(t, singletonYAML)}, nil)
	const path = "/api/components/ApprovalWorkflow/instances"
	r := e.must(e.post(path, map[string]any{"context": expense("EXP-1", 1200)}), 201)
	if r.get("success") != true || r.str("instanceId") == "" || r.str("instance", "id") != r.str("instanceId") ||
		r.str("instance", "instanceId") != r.str("instanceId") || r.str("instance", "currentState") != "Draft" ||
		r.str("instance", "machineName") != "ExpenseRequest" {
		t.Fatalf("create: %s", r.raw)
	}
	if r.str("instance", "context", "currency") != "EUR" {
		t.Errorf("contextSchema default not applied: %s", r.raw)
	}
	if r.get("instance", "publicMember") == nil {
		t.Errorf("publicMember missing for a machine with publicMemberType: %s", r.raw)
	}

	r = e.must(e.post(path, map[string]any{"context": map[string]any{"requestId": "nope", "amount": "lots"}}), 422)
	fields := map[string]bool{}
	for _, f := range r.list("fields") {
		fields[f.(map[string]any)["field"].(string)] = true
	}
	for _, f := range []string{"requestId", "employeeName", "amount", "category"} {
		if !fields[f] {
			t.Errorf("422 lacks field %s: %s", f, r.raw)
		}
	}
	if r.str("error") == "" {
		t.Errorf("422 without error: %s", r.raw)
	}
	if r := e.must(e.post(path, map[string]any{"machineName": "Ghost"}), 404); !strings.Contains(r.str("error"), "machine Ghost not found") {
		t.Errorf("unknown machine: %s", r.raw)
	}
	e.must(e.post("/api/components/Ghost/instances", map[string]any{}), 404)

	// Singleton entry machine: the second creation is refused.
	e.must(e.post("/api/components/Desk/instances", nil), 201)
	if r := e.must(e.post("/api/components/Desk/instances", map[string]any{}), 409); !strings.Contains(r.str("error"), "singleton") {
		t.Errorf("singleton: %s", r.raw)
	}
}

func TestEvents(t *testing.T) {
	e := newEnv(t, Options{}, []*component.Component{loadFixture(t, "approval.yaml"), loadFixture(t, "payment.yaml")}, nil)
	id := e.create("ApprovalWorkflow", "", expense("EXP-1", 1200))
	const comp = "ApprovalWorkflow"
	base := "/api/components/" + comp + "/instances/" + id + "/events"

	r := e.send(comp, id, "EDIT", map[string]any{"note": "typo"}, 200)
	if r.get("success") != true || r.str("previousState") != "Draft" || r.str("newState") != "Draft" ||
		r.str("instance", "context", "note") != "typo" || r.str("eventId") == "" {
		t.Errorf("EDIT: %s", r.raw)
	}
	// {event: "E"} is accepted as well as {type: "E"}; unknown fields are ignored.
	r = e.must(e.post(base, map[string]any{"event": "SUBMIT", "extra": []int{1, 2}}), 200)
	if r.str("newState") != "PendingManagerApproval" {
		t.Errorf("SUBMIT: %s", r.raw)
	}
	// Not accepted in the current state: 409 with the reason, instance unchanged.
	r = e.must(e.post(base, map[string]any{"type": "SUBMIT"}), 409)
	if !strings.Contains(r.str("error"), "SUBMIT") || strings.HasSuffix(r.str("error"), "event not accepted") {
		t.Errorf("409 reason: %s", r.raw)
	}
	if e.state(id) != "PendingManagerApproval" {
		t.Errorf("refused event changed the instance")
	}
	// The trigger endpoint looks the component up.
	r = e.must(e.post("/api/instances/"+id+"/trigger", map[string]any{"event": "MANAGER_APPROVE"}), 200)
	if r.str("newState") != "ManagerApproved" || r.str("instance", "componentName") != comp {
		t.Errorf("trigger: %s", r.raw)
	}

	unknown := "0193f0a0-0000-7000-8000-000000000000"
	e.must(e.post("/api/components/"+comp+"/instances/"+unknown+"/events", map[string]any{"type": "X"}), 404)
	e.must(e.post("/api/instances/"+unknown+"/trigger", map[string]any{"event": "X"}), 404)
	e.must(e.post("/api/components/Nope/instances/"+id+"/events", map[string]any{"type": "X"}), 404)
	// An instance of another component is not found through this component.
	if r := e.must(e.post("/api/components/PaymentComponent/instances/"+id+"/events", map[string]any{"type": "ROUTE"}), 404); !strings.Contains(r.str("error"), "not found in component PaymentComponent") {
		t.Errorf("other component: %s", r.raw)
	}
	if e.state(id) != "ManagerApproved" {
		t.Errorf("event through another component was applied")
	}
	// Completed instances refuse events with 409.
	e.send(comp, id, "ROUTE", nil, 200)
	e.send(comp, id, "FINANCE_REJECT", nil, 200)
	if r := e.must(e.post(base, map[string]any{"type": "EDIT"}), 409); !strings.Contains(r.str("error"), "completed") {
		t.Errorf("completed: %s", r.raw)
	}
}

func TestBadBodies(t *testing.T) {
	e := newEnv(t, Options{MaxBodyBytes: 4096}, []*component.Component{loadFixture(t, "approval.yaml")}, nil)
	id := e.create("ApprovalWorkflow", "", expense("EXP-1", 10))
	events := "/api/components/ApprovalWorkflow/instances/" + id + "/events"
	create := "/api/components/ApprovalWorkflow/instances"
	cases := []struct {
		name, path string
		body       any
		header     map[string]string
		status     int
		want       string
	}{
		{"malformed", events, `{"type": "EDIT"`, nil, 400, "malformed JSON"},
		{"syntax", events, `{"type": EDIT}`, nil, 400, "malformed JSON"},
		{"trailing data", events, `{"type": "EDIT"} {}`, nil, 400, "unexpected data"},
		{"not an object", events, `["EDIT"]`, nil, 400, "JSON object"},
		{"wrong type", events, `{"type": 42}`, nil, 400, "type: want a string, got number"},
		{"wrong payload type", events, `{"type": "EDIT", "payload": "x"}`, nil, 400, "payload: want an object"},
		{"wrong event type", events, `{"event": 5}`, nil, 400, "event"},
		{"missing type", events, `{"payload": {}}`, nil, 400, "missing event type"},
		{"empty body", events, ``, nil, 400, "empty request body"},
		{"control chars", events, `{"type": "E\u0001"}`, nil, 400, "control characters"},
		{"huge", events, `{"type": "EDIT", "payload": {"x": "` + strings.Repeat("a", 10000) + `"}}`, nil, 413, "larger than 4096"},
		{"form body", events, `type=EDIT`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"},
		{"text body", events, `{"type": "EDIT"}`, map[string]string{"Content-Type": "text/plain"}, 415, "application/json"},
		{"not json", events, `<e/>`, map[string]string{"Content-Type": "application/xml"}, 415, "application/json"},
		{"bad id", "/api/components/ApprovalWorkflow/instances/not-a-uuid/events", `{"type": "EDIT"}`, nil, 400, "invalid id"},
		{"context wrong type", create, `{"context": [1]}`, nil, 400, "context: want an object"},
		{"machineName wrong type", create, `{"machineName": 1}`, nil, 400, "machineName: want a string"},
		{"create huge", create, `{"context": {"x": "` + strings.Repeat("a", 10000) + `"}}`, nil, 413, "larger than"},
		{"broadcast no machine", "/api/components/ApprovalWorkflow/broadcast", `{"event": {"type": "X"}}`, nil, 400, "machineName is required"},
		{"broadcast no event", "/api/components/ApprovalWorkflow/broadcast", `{"machineName": "ExpenseRequest"}`, nil, 400, "event type is required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(req{method: "POST", path: c.path, body: c.body, header: c.header})
			if r.status != c.status || !strings.Contains(r.str("error"), c.want) {
				t.Errorf("status %d %s, want %d with %q", r.status, r.raw, c.status, c.want)
			}
		})
	}
	// A missing Content-Type is refused (a web page's fetch of a Blob sends none).
	r := e.do(req{method: "POST", path: events, body: `{"type": "EDIT"}`, header: map[string]string{"Content-Type": ""}})
	e.must(r, 415)
	if r := e.do(req{method: "POST", path: events, body: `{"type":"EDIT"}`, header: map[string]string{"Content-Type": "application/json; charset=utf-8"}}); r.status != 200 {
		t.Errorf("charset: %d %s", r.status, r.raw)
	}
}

func TestUnknownRoutes(t *testing.T) {
	e := approvalEnv(t, Options{})
	r := e.must(e.get("/api/nothing"), 404)
	if !strings.Contains(r.str("error"), "no such endpoint") {
		t.Errorf("404: %s", r.raw)
	}
	r = e.must(e.do(req{method: "DELETE", path: "/api/instances"}), 405)
	if r.header.Get("Allow") == "" || r.str("error") == "" {
		t.Errorf("405: %v %s", r.header, r.raw)
	}
	e.must(e.get("/api/instances/not-a-uuid"), 400)
	e.must(e.get("/api/instances/0193f0a0-0000-7000-8000-000000000000"), 404)
}

func TestApprovalWorkflow(t *testing.T) {
	e := approvalEnv(t, Options{})
	const comp = "ApprovalWorkflow"
	big := e.create(comp, "ExpenseRequest", expense("EXP-100", 8000))
	small := e.create(comp, "ExpenseRequest", expense("EXP-101", 1000))
	for _, id := range []string{big, small} {
		e.send(comp, id, "SUBMIT", nil, 200)
	}

	// The 7-day timeout is armed in PendingManagerApproval.
	r := e.must(e.get("/api/instances/"+big), 200)
	pts := r.list("pendingTimeouts")
	if len(pts) != 1 {
		t.Fatalf("pendingTimeouts: %s", r.raw)
	}
	pt := pts[0].(map[string]any)
	week := float64(7 * 24 * time.Hour / time.Millisecond)
	if pt["event"] != "APPROVAL_TIMEOUT" || pt["targetState"] != "Expired" || pt["totalMs"] != week ||
		pt["remainingMs"] != week || pt["dueAt"] != float64(t0.UnixMilli())+week {
		t.Errorf("pending timeout: %v", pt)
	}
	e.advance(24 * time.Hour)
	r = e.must(e.get("/api/instances/"+big), 200)
	if rem := r.list("pendingTimeouts")[0].(map[string]any)["remainingMs"]; rem != week-float64(24*time.Hour/time.Millisecond) {
		t.Errorf("remainingMs after a day: %v", rem)
	}

	// Guards route by amount.
	e.send(comp, big, "MANAGER_APPROVE", nil, 200)
	if r := e.send(comp, big, "ROUTE", nil, 200); r.str("newState") != "PendingDirectorApproval" {
		t.Errorf("8000 EUR routed to %s", r.str("newState"))
	}
	e.send(comp, small, "MANAGER_APPROVE", nil, 200)
	if r := e.send(comp, small, "ROUTE", nil, 200); r.str("newState") != "PendingFinanceReview" {
		t.Errorf("1000 EUR routed to %s", r.str("newState"))
	}
	// A director decision that no guard accepts is refused.
	e.send(comp, big, "DIRECTOR_DECIDE", map[string]any{"decision": "maybe"}, 409)
	e.send(comp, big, "DIRECTOR_DECIDE", map[string]any{"decision": "approve"}, 200)
	if r := e.send(comp, big, "FINANCE_APPROVE", nil, 200); r.str("instance", "status") != "completed" {
		t.Errorf("approved: %s", r.raw)
	}

	// A third request waits for its manager for 7 days and expires.
	late := e.create(comp, "", expense("EXP-102", 50))
	e.send(comp, late, "SUBMIT", nil, 200)
	e.advance(7 * 24 * time.Hour)
	r = e.must(e.get("/api/instances/"+late), 200)
	if r.str("currentState") != "Expired" || r.str("status") != "error" || len(r.list("pendingTimeouts")) != 0 {
		t.Errorf("expired: %s", r.raw)
	}
	h := e.must(e.get("/api/instances/"+late+"/history"), 200).list("history")
	lastEv := h[len(h)-1].(map[string]any)
	if lastEv["event"].(map[string]any)["type"] != "APPROVAL_TIMEOUT" || lastEv["actor"] != "timer" || lastEv["source"] != "timer" {
		t.Errorf("timeout in history: %v", lastEv)
	}

	// Completed and failed instances stay listed.
	for status, want := range map[string]string{"completed": big, "error": late} {
		r := e.must(e.get("/api/instances?status="+status), 200)
		if ins := r.list("instances"); len(ins) != 1 || ins[0].(map[string]any)["id"] != want {
			t.Errorf("status=%s: %s", status, r.raw)
		}
	}
	if r := e.must(e.get("/api/instances"), 200); len(r.list("instances")) != 3 {
		t.Errorf("all: %s", r.raw)
	}
}

func TestListFiltersAndPagination(t *testing.T) {
	e := approvalEnv(t, Options{})
	const comp = "ApprovalWorkflow"
	var ids []string
	for i := range 5 {
		ids = append(ids, e.create(comp, "", expense(fmt.Sprintf("EXP-%d", 200+i), float64(100*(i+1)))))
		e.advance(time.Second) // distinct updatedAt
	}
	e.send(comp, ids[0], "SUBMIT", nil, 200)
	e.send(comp, ids[1], "SUBMIT", nil, 200)

	seen := map[string]bool{}
	cursor := ""
	pages := 0
	for {
		q := "/api/instances?limit=2"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		r := e.must(e.get(q), 200)
		pages++
		for _, it := range r.list("instances") {
			m := it.(map[string]any)
			if m["id"] != m["instanceId"] || m["pendingTimeouts"] == nil || m["componentName"] != comp {
				t.Errorf("item shape: %v", m)
			}
			if seen[m["id"].(string)] {
				t.Errorf("instance %v listed twice", m["id"])
			}
			seen[m["id"].(string)] = true
		}
		cursor = r.str("nextCursor")
		if cursor == "" {
			break
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if len(seen) != 5 || pages != 3 {
		t.Errorf("paged %d instances in %d pages", len(seen), pages)
	}

	check := func(q string, want ...string) {
		t.Helper()
		r := e.must(e.get(q), 200)
		var got []string
		for _, it := range r.list("instances") {
			got = append(got, it.(map[string]any)["id"].(string))
		}
		if fmt.Sprint(sorted(got)) != fmt.Sprint(sorted(want)) {
			t.Errorf("%s: got %v, want %v", q, got, want)
		}
	}
	check("/api/instances?state=PendingManagerApproval", ids[0], ids[1])
	check("/api/instances?machine=ExpenseRequest&state=Draft&status=active", ids[2], ids[3], ids[4])
	check("/api/instances?q=exp-203", ids[3])
	check("/api/instances?q="+ids[4][24:], ids[4])
	check("/api/instances?component=Other")
	check("/api/components/"+comp+"/instances?state=Draft&limit=10", ids[2], ids[3], ids[4])
	check("/api/instances?status=completed")
	check("/api/instances?limit=5000", ids...) // clamped to 1000

	for _, q := range []string{"?status=done", "?limit=0", "?limit=x", "?from=yesterday", "?q=" + strings.Repeat("x", 300), "?cursor=zz"} {
		if r := e.get("/api/instances" + q); r.status != 400 || r.str("error") == "" {
			t.Errorf("%s: %d %s", q, r.status, r.raw)
		}
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func TestHistory(t *testing.T) {
	e := approvalEnv(t, Options{})
	const comp = "ApprovalWorkflow"
	id := e.create(comp, "", expense("EXP-300", 700))
	e.advance(time.Minute)
	e.send(comp, id, "SUBMIT", map[string]any{"note": "please"}, 200)

	r := e.must(e.get("/api/instances/"+id+"/history"), 200)
	h := r.list("history")
	if len(h) != 2 {
		t.Fatalf("history: %s", r.raw)
	}
	created, submit := h[0].(map[string]any), h[1].(map[string]any)
	for _, k := range []string{"id", "instanceId", "machineName", "componentName", "event", "stateBefore", "stateAfter",
		"publicMemberSnapshot", "causedBy", "correlationId", "actor", "persistedAt"} {
		if _, ok := submit[k]; !ok {
			t.Errorf("history entry lacks %s: %v", k, submit)
		}
	}
	if created["event"].(map[string]any)["type"] != "INSTANCE_CREATED" || created["stateAfter"] != "Draft" {
		t.Errorf("creation entry: %v", created)
	}
	ev := submit["event"].(map[string]any)
	if ev["type"] != "SUBMIT" || ev["payload"].(map[string]any)["note"] != "please" || ev["timestamp"] != float64(t0.Add(time.Minute).UnixMilli()) ||
		submit["stateBefore"] != "Draft" || submit["stateAfter"] != "PendingManagerApproval" || submit["actor"] != "anonymous" ||
		submit["publicMemberSnapshot"].(map[string]any)["note"] != "please" {
		t.Errorf("SUBMIT entry: %v", submit)
	}
	e.must(e.get("/api/instances/0193f0a0-0000-7000-8000-000000000000/history"), 404)

	r = e.must(e.get("/api/history/instances/"+id+"/events"), 200)
	if r.str("snapshot", "instance", "id") != id || r.str("snapshot", "lastEventId") != submit["id"] || len(r.list("events")) != 2 {
		t.Errorf("history events: %s", r.raw)
	}

	other := e.create(comp, "", expense("EXP-301", 900))
	r = e.must(e.get("/api/history/instances?machine=ExpenseRequest&state=PendingManagerApproval"), 200)
	ins := r.list("instances")
	if len(ins) != 1 {
		t.Fatalf("history search: %s", r.raw)
	}
	hi := ins[0].(map[string]any)
	if hi["instance_id"] != id || hi["machine_name"] != "ExpenseRequest" || hi["current_state"] != "PendingManagerApproval" ||
		hi["event_count"] != float64(2) || hi["created_at"] != float64(t0.UnixMilli()) || hi["updated_at"] == nil || hi["context"] == nil {
		t.Errorf("snake_case entry: %v", hi)
	}
	from := t0.Add(30 * time.Second).UnixMilli()
	r = e.must(e.get(fmt.Sprintf("/api/history/instances?from=%d&to=%d", from, from+60_000)), 200)
	if len(r.list("instances")) != 2 {
		t.Errorf("from/to: %s", r.raw)
	}
	r = e.must(e.get("/api/history/instances?to=2024-12-31"), 200)
	if len(r.list("instances")) != 0 {
		t.Errorf("to date: %s", r.raw)
	}
	r = e.must(e.get("/api/history/instances?from=2025-01-01&to=2025-01-01"), 200)
	if len(r.list("instances")) != 2 {
		t.Errorf("from/to the same day: %s", r.raw)
	}
	r = e.must(e.get("/api/history/instances?q=EXP-301"), 200)
	if l := r.list("instances"); len(l) != 1 || l[0].(map[string]any)["instance_id"] != other {
		t.Errorf("q: %s", r.raw)
	}
	r = e.must(e.get("/api/history/instances?limit=1"), 200)
	if len(r.list("instances")) != 1 || r.str("nextCursor") == "" {
		t.Errorf("limit: %s", r.raw)
	}

	// Correlated: by correlation id, and by instance id (all its correlations).
	corr := submit["correlationId"].(string)
	r = e.must(e.get("/api/history/correlated/"+corr), 200)
	if r.str("correlationId") != corr || len(r.list("events")) != 1 {
		t.Errorf("correlated: %s", r.raw)
	}
	r = e.must(e.get("/api/history/correlated/"+id), 200)
	if len(r.list("events")) != 2 || len(r.list("correlationIds")) != 2 {
		t.Errorf("correlated by instance: %s", r.raw)
	}
	e.must(e.get("/api/history/correlated/xyz"), 400)
}

func TestOrderAndPayment(t *testing.T) {
	e := newEnv(t, Options{}, []*component.Component{loadFixture(t, "order.yaml"), loadFixture(t, "payment.yaml")}, nil)
	order := e.create("OrderComponent", "", map[string]any{"orderId": "ORD-1", "amount": 42})
	r := e.send("OrderComponent", order, "CHECKOUT", nil, 200)
	if r.str("newState") != "AwaitingPayment" {
		t.Fatalf("checkout: %s", r.raw)
	}
	// cross_component without targetEvent created the payment, then the cascade of the same
	// transition (dispatched after the creation) moved it on.
	e.idle()
	r = e.must(e.get("/api/components/PaymentComponent/instances"), 200)
	pays := r.list("instances")
	if len(pays) != 1 {
		t.Fatalf("payments: %s", r.raw)
	}
	pay := pays[0].(map[string]any)
	if st := pay["currentState"]; st != "Processing" || pay["context"].(map[string]any)["orderId"] != "ORD-1" {
		t.Errorf("payment: %v", pay)
	}
	payID := pay["id"].(string)

	// The causal chain crosses components: one correlation from CHECKOUT.
	hist := e.must(e.get("/api/instances/"+payID+"/history"), 200).list("history")
	created := hist[0].(map[string]any)
	if created["sourceComponentName"] != "OrderComponent" {
		t.Errorf("payment creation source: %v", created)
	}
	r = e.must(e.get("/api/history/correlated/"+created["correlationId"].(string)), 200)
	comps := map[string]bool{}
	for _, ev := range r.list("events") {
		comps[ev.(map[string]any)["componentName"].(string)] = true
	}
	if !comps["OrderComponent"] || !comps["PaymentComponent"] {
		t.Errorf("correlated events cover %v", comps)
	}

	// Sequence diagram: Order and Payment lifelines, arrows from the order to the payment.
	r = e.must(e.get("/api/instances/"+order+"/sequence?format=mermaid"), 200)
	d := r.str("diagram")
	orderP := regexp.MustCompile(`participant (p\d+) as Order#` + shortID(order)).FindStringSubmatch(d)
	payP := regexp.MustCompile(`participant (p\d+) as Payment#` + shortID(payID)).FindStringSubmatch(d)
	if !strings.HasPrefix(d, "sequenceDiagram\n") || orderP == nil || payP == nil {
		t.Fatalf("diagram:\n%s", d)
	}
	if !strings.Contains(d, orderP[1]+"->>"+payP[1]+": create → Pending") || !strings.Contains(d, "participant p0 as API\n") ||
		!strings.Contains(d, "p0->>"+orderP[1]+": CHECKOUT: Created → AwaitingPayment [anonymous]") {
		t.Errorf("diagram arrows:\n%s", d)
	}
	if !strings.Contains(d, orderP[1]+"->>"+payP[1]+": PROCESS: Pending → Processing") {
		t.Errorf("cascade arrow missing:\n%s", d)
	}
	r = e.must(e.get("/api/instances/"+order+"/sequence?format=json"), 200)
	if len(r.list("participants")) != 3 || len(r.list("messages")) < 3 {
		t.Errorf("sequence json: %s", r.raw)
	}
	e.must(e.get("/api/instances/"+order+"/sequence?format=svg"), 400)

	// cross_component with targetEvent: CANCEL aborts the matching payment only.
	order2 := e.create("OrderComponent", "", map[string]any{"orderId": "ORD-2", "amount": 7})
	pay2 := e.create("PaymentComponent", "", map[string]any{"orderId": "ORD-2"})
	pay3 := e.create("PaymentComponent", "", map[string]any{"orderId": "ORD-3"})
	e.send("OrderComponent", order2, "CANCEL", nil, 200)
	if s := e.state(pay2); s != "Aborted" {
		t.Errorf("matching payment: %s", s)
	}
	if s := e.state(pay3); s != "Pending" {
		t.Errorf("other payment: %s", s)
	}

	// Broadcast: PROCESS to every Pending payment: ORD-3's only.
	pending := len(e.must(e.get("/api/instances?component=PaymentComponent&state=Pending"), 200).list("instances"))
	r = e.must(e.post("/api/components/PaymentComponent/broadcast", map[string]any{"machineName": "Payment",
		"event": map[string]any{"type": "PROCESS"}, "currentState": "Pending"}), 200)
	if pending != 1 || r.num("matched") != float64(pending) || r.num("processed") != float64(pending) {
		t.Errorf("broadcast to %d pending: %s", pending, r.raw)
	}
	e.idle()
	if s := e.state(pay3); s != "Processing" {
		t.Errorf("broadcast target: %s", s)
	}
	e.must(e.post("/api/components/PaymentComponent/broadcast", map[string]any{"machineName": "Nope", "event": "X"}), 404)

	// Runtimes: one local entry per component.
	r = e.must(e.get("/api/runtimes"), 200)
	rts := r.list("runtimes")
	if len(rts) != 2 {
		t.Fatalf("runtimes: %s", r.raw)
	}
	rt := rts[1].(map[string]any)
	if rt["componentName"] != "PaymentComponent" || rt["status"] != "up" || rt["runtimeName"] != "test" || rt["port"] != float64(3000) || rt["instances"] != float64(2) {
		t.Errorf("runtime: %v", rt)
	}
	if rts[0].(map[string]any)["runtimeId"] == rt["runtimeId"] {
		t.Errorf("runtime ids not unique")
	}
}

func TestParentAndChildren(t *testing.T) {
	e := newEnv(t, Options{}, []*component.Component{loadFixture(t, "parent_child.yaml")}, nil)
	// Shipping is a singleton with autoCreateEntryPoint: the shipment exists already.
	r := e.must(e.get("/api/instances?machine=Shipment"), 200)
	ship := r.list("instances")[0].(map[string]any)["id"].(string)
	e.send("Shipping", ship, "SHIP", map[string]any{"parcel": "P1"}, 200)

	r = e.must(e.get("/api/instances/"+ship), 200)
	children := r.list("children")
	if len(children) != 1 || r.get("parent") != nil {
		t.Fatalf("shipment: %s", r.raw)
	}
	child := children[0].(map[string]any)
	if child["machineName"] != "Parcel" || child["currentState"] != "Packed" {
		t.Errorf("child: %v", child)
	}
	seq := e.must(e.get("/api/instances/"+ship+"/sequence"), 200).str("diagram")
	if !regexp.MustCompile(`(?m)^    p1->>p2: create → Packed$`).MatchString(seq) ||
		!strings.Contains(seq, "participant p1 as Shipment#"+shortID(ship)) || !strings.Contains(seq, "participant p2 as Parcel#") {
		t.Errorf("parent/child sequence:\n%s", seq)
	}
	r = e.must(e.get("/api/instances/"+child["id"].(string)), 200)
	if r.str("parent", "id") != ship || r.str("parentInstanceId") != ship || r.str("parent", "machineName") != "Shipment" || len(r.list("children")) != 0 {
		t.Errorf("parcel: %s", r.raw)
	}
}

func TestDiagram(t *testing.T) {
	e := approvalEnv(t, Options{})
	id := e.create("ApprovalWorkflow", "", expense("EXP-1", 5))
	r := e.must(e.get("/api/machines/ExpenseRequest/diagram"), 200)
	if !strings.HasPrefix(r.str("diagram"), "stateDiagram-v2") || r.str("machineName") != "ExpenseRequest" || r.str("currentState") != "" {
		t.Errorf("diagram: %s", r.raw)
	}
	r = e.must(e.get("/api/machines/ExpenseRequest/diagram?component=ApprovalWorkflow&instanceId="+id), 200)
	if r.str("currentState") != "Draft" || !strings.Contains(r.str("diagram"), "currentState") {
		t.Errorf("diagram of an instance: %s", r.raw)
	}
	r = e.must(e.get("/api/machines/ExpenseRequest/diagram?currentState=Approved"), 200)
	if r.str("currentState") != "Approved" {
		t.Errorf("diagram currentState: %s", r.raw)
	}
	e.must(e.get("/api/machines/Nope/diagram"), 404)
	e.must(e.get("/api/machines/ExpenseRequest/diagram?component=Nope"), 404)
	e.must(e.get("/api/machines/ExpenseRequest/diagram?instanceId=bad"), 400)
}

// slowBackend makes Send wait for its context, to test timeouts.
type slowBackend struct{ Backend }

func (slowBackend) Send(ctx context.Context, _, _ string, _ xc.Event) (xc.Result, error) {
	<-ctx.Done()
	return xc.Result{}, ctx.Err()
}

func TestTimeout(t *testing.T) {
	e := newEnv(t, Options{RequestTimeout: 50 * time.Millisecond}, []*component.Component{loadFixture(t, "approval.yaml")},
		func(b Backend) Backend { return slowBackend{b} })
	id := e.create("ApprovalWorkflow", "", expense("EXP-1", 5))
	r := e.must(e.post("/api/instances/"+id+"/trigger", map[string]any{"event": "SUBMIT"}), http.StatusGatewayTimeout)
	if !strings.HasPrefix(r.str("error"), "timed out") {
		t.Errorf("504: %s", r.raw)
	}
}

func TestCORS(t *testing.T) {
	closed := approvalEnv(t, Options{})
	r := closed.do(req{method: "GET", path: "/api/components", header: map[string]string{"Origin": "http://ui.example"}})
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS on by default")
	}
	e := approvalEnv(t, Options{CORSOrigins: []string{"http://ui.example"}})
	r = e.do(req{method: "GET", path: "/api/components", header: map[string]string{"Origin": "http://ui.example"}})
	if r.header.Get("Access-Control-Allow-Origin") != "http://ui.example" {
		t.Errorf("CORS origin: %v", r.header)
	}
	r = e.do(req{method: "OPTIONS", path: "/api/components/ApprovalWorkflow/instances",
		header: map[string]string{"Origin": "http://ui.example", "Access-Control-Request-Method": "POST"}})
	if r.status != 204 || !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: %d %v", r.status, r.header)
	}
	r = e.do(req{method: "GET", path: "/api/components", header: map[string]string{"Origin": "http://evil.example"}})
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS for an unlisted origin")
	}
}

func TestRequestLog(t *testing.T) {
	e := approvalEnv(t, Options{})
	e.must(e.get("/api/components?x=1"), 200)
	logs := e.logs.String()
	for _, want := range []string{`"msg":"http request"`, `"method":"GET"`, `"path":"/api/components"`, `"status":200`, `"actor":"anonymous"`, `"duration"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("request log lacks %s: %s", want, logs)
		}
	}
}
