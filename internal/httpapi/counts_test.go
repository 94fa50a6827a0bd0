package httpapi

import (
	"fmt"
	"testing"
)

// TestCounts: exact counts per machine, state and status, kept by the store, beyond any
// list page; totals per status and per component.
func TestCounts(t *testing.T) {
	e := approvalEnv(t, Options{})
	const n = 1205
	var last string
	for i := range n {
		last = e.create("ApprovalWorkflow", "ExpenseRequest", expense(fmt.Sprintf("EXP-%d", i), 10))
	}
	e.send("ApprovalWorkflow", last, "SUBMIT", nil, 200)
	r := e.must(e.get("/api/counts?component=ApprovalWorkflow"), 200)
	got := map[string]float64{}
	for _, c := range r.list("counts") {
		m := c.(map[string]any)
		got[m["state"].(string)+"/"+m["status"].(string)] += m["count"].(float64)
	}
	if got["Draft/active"] != n-1 || got["PendingManagerApproval/active"] != 1 || len(got) != 2 {
		t.Errorf("counts = %v", got)
	}
	if r.num("totals", "active") != n || r.num("totals", "all") != n || r.num("components", "ApprovalWorkflow", "active") != n {
		t.Errorf("totals: %s", r.raw[:min(len(r.raw), 400)])
	}
	if all := e.must(e.get("/api/counts"), 200); all.num("totals", "active") != n {
		t.Errorf("counts of every component: %v", all.get("totals"))
	}
	e.must(e.get("/api/counts?component=Nope"), 404)
}

// TestWhere: ?where=key:value finds instances by a business key, typed or as text, on
// every page; POST /api/events sends an event to the instances a key matches.
func TestWhere(t *testing.T) {
	e := approvalEnv(t, Options{})
	var want string
	for i := range 300 {
		ctx := expense(fmt.Sprintf("EXP-%d", i), float64(i+1))
		id := e.create("ApprovalWorkflow", "ExpenseRequest", ctx)
		if i == 42 {
			want = id
		}
	}
	for _, q := range []string{"where=requestId:EXP-42", "where=amount:43", "where=amount:43&where=requestId:EXP-42"} {
		r := e.must(e.get("/api/components/ApprovalWorkflow/instances?limit=10&"+q), 200)
		if l := r.list("instances"); len(l) != 1 || l[0].(map[string]any)["id"] != want {
			t.Errorf("%s: %s", q, r.raw[:min(len(r.raw), 300)])
		}
	}
	if r := e.must(e.get("/api/instances?where=amount:43&where=requestId:EXP-1"), 200); len(r.list("instances")) != 0 {
		t.Errorf("ANDed conditions: %s", r.raw)
	}
	e.must(e.get("/api/instances?where=nocolon"), 400)

	r := e.must(e.post("/api/events", map[string]any{"component": "ApprovalWorkflow", "where": "requestId:EXP-42", "event": "SUBMIT"}), 200)
	if r.num("matched") != 1 || r.num("processed") != 1 || e.state(want) != "PendingManagerApproval" {
		t.Errorf("event by key: %s", r.raw)
	}
	// by ids, one refused
	other := e.create("ApprovalWorkflow", "ExpenseRequest", expense("EXP-9999", 5))
	r = e.must(e.post("/api/events", map[string]any{"instanceIds": []string{want, other}, "event": map[string]any{"type": "SUBMIT"}}), 200)
	if r.num("matched") != 2 || r.num("processed") != 1 {
		t.Errorf("event to ids: %s", r.raw)
	}
	res := r.list("results")
	if res[0].(map[string]any)["status"] != float64(409) || res[1].(map[string]any)["ok"] != true {
		t.Errorf("results: %s", r.raw)
	}
	e.must(e.post("/api/events", map[string]any{"event": "SUBMIT"}), 400)
}

// TestSession: the page learns its role.
func TestSession(t *testing.T) {
	tokens, err := ParseTokens("operator=op-token-0123456789,viewer=view-token-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	e := approvalEnv(t, Options{Tokens: tokens})
	for tok, want := range map[string]string{"op-token-0123456789": "operator", "view-token-0123456789": "viewer"} {
		r := e.must(e.do(req{method: "GET", path: "/api/session", header: map[string]string{"Authorization": "Bearer " + tok}}), 200)
		if r.str("role") != want || r.get("auth") != true || r.get("canWrite") != (want == "operator") {
			t.Errorf("session of %s: %s", want, r.raw)
		}
	}
	e.must(e.get("/api/session"), 401)
	open := approvalEnv(t, Options{})
	if r := open.must(open.get("/api/session"), 200); r.str("role") != "operator" || r.str("actor") != "anonymous" || r.get("auth") != false {
		t.Errorf("open session: %s", r.raw)
	}
}
