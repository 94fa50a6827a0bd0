package httpapi

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
)

const opsYAML = `
name: Ops
stateMachines:
  - name: Order
    initialState: Waiting
    states:
      - {name: Waiting}
      - {name: Expired, type: final}
      - {name: Shipping, onEntry: ship}
    transitions:
      - {from: Waiting, to: Expired, event: TIMEOUT, type: timeout, timeoutMs: 60000}
      - {from: Waiting, to: Shipping, event: SHIP}
      - {from: Waiting, to: Waiting, event: NOTE}
`

func lastHistory(e *env, id, token string) map[string]any {
	e.t.Helper()
	r := e.must(e.do(req{method: "GET", path: "/api/instances/" + id + "/history", token: token}), 200)
	h := r.list("history")
	if len(h) == 0 {
		e.t.Fatalf("empty history: %s", r.raw)
	}
	return h[len(h)-1].(map[string]any)
}

// Terminate and retry over HTTP: operator role, actor and reason in the audit trail, clear
// refusals; every operator action takes a reason.
func TestOperatorActions(t *testing.T) {
	const opTok, viewTok = "op-secret-token", "view-secret-token"
	tokens, _ := ParseTokens("operator=" + opTok + ",viewer=" + viewTok)
	e := newEnv(t, Options{Tokens: tokens}, []*component.Component{parseYAML(t, opsYAML)}, nil)
	shipOK := make(chan bool, 4)
	shipOK <- false
	e.eng.Handle("ship", func(context.Context, *xc.Hook) error {
		select {
		case ok := <-shipOK:
			if !ok {
				return errors.New("carrier down")
			}
		default:
		}
		return nil
	})
	actorRE := regexp.MustCompile(`^operator:[0-9a-f]{6}$`)
	base := "/api/components/Ops/instances"
	post := func(path string, body any, tok string) response {
		return e.do(req{method: "POST", path: path, body: body, token: tok})
	}

	// Create and send with a reason.
	r := e.must(post(base, map[string]any{"machineName": "Order", "reason": "phone order #12"}, opTok), 201)
	id := r.str("instanceId")
	if h := lastHistory(e, id, viewTok); h["reason"] != "phone order #12" || !actorRE.MatchString(h["actor"].(string)) {
		t.Fatalf("create audit: %v", h)
	}
	e.must(post(base+"/"+id+"/events", map[string]any{"type": "NOTE", "reason": "customer called"}, opTok), 200)
	if h := lastHistory(e, id, viewTok); h["reason"] != "customer called" {
		t.Fatalf("send audit: %v", h)
	}
	e.must(post("/api/events", map[string]any{"instanceIds": []string{id}, "event": "NOTE", "reason": "bulk fix"}, opTok), 200)
	if h := lastHistory(e, id, viewTok); h["reason"] != "bulk fix" {
		t.Fatalf("bulk audit: %v", h)
	}
	r = e.must(post(base+"/"+id+"/events", map[string]any{"type": "NOTE", "reason": strings.Repeat("x", 1001)}, opTok), 400)
	if !strings.Contains(r.str("error"), "reason") {
		t.Errorf("long reason: %s", r.raw)
	}

	// Viewers may not terminate; unknown component/instance; then the operator terminates.
	r = e.must(post(base+"/"+id+"/terminate", map[string]any{"reason": "x"}, viewTok), 403)
	if !strings.Contains(r.str("error"), "operator role required") {
		t.Errorf("viewer terminate: %s", r.raw)
	}
	e.must(post("/api/components/Nope/instances/"+id+"/terminate", nil, opTok), 404)
	e.must(post(base+"/0190c2a6-0000-7000-8000-000000000000/terminate", nil, opTok), 404)
	e.must(post(base+"/not-a-uuid/terminate", nil, opTok), 400)
	r = e.must(post(base+"/"+id+"/terminate", map[string]any{"reason": "duplicate order"}, opTok), 200)
	if r.str("instance", "status") != "terminated" || r.str("newState") != "Waiting" {
		t.Fatalf("terminate answer: %s", r.raw)
	}
	h := lastHistory(e, id, viewTok)
	if h["event"].(map[string]any)["type"] != "INSTANCE_TERMINATED" || h["reason"] != "duplicate order" ||
		!actorRE.MatchString(h["actor"].(string)) || h["source"] != "operator" {
		t.Fatalf("terminate audit: %v", h)
	}
	r = e.must(post(base+"/"+id+"/terminate", nil, opTok), 409)
	if !strings.Contains(r.str("error"), "is terminated") {
		t.Errorf("second terminate: %s", r.raw)
	}
	r = e.must(post(base+"/"+id+"/events", map[string]any{"type": "SHIP"}, opTok), 409)
	if !strings.Contains(r.str("error"), "terminated") {
		t.Errorf("event after terminate: %s", r.raw)
	}
	// Its timer never fires; it is listed as terminated.
	e.advance(2 * time.Minute)
	r = e.must(e.do(req{method: "GET", path: "/api/instances/" + id, token: viewTok}), 200)
	if r.str("status") != "terminated" || r.str("currentState") != "Waiting" {
		t.Fatalf("after the deadline: %s", r.raw)
	}
	r = e.must(e.do(req{method: "GET", path: "/api/instances?status=terminated", token: viewTok}), 200)
	if l := r.list("instances"); len(l) != 1 || l[0].(map[string]any)["id"] != id {
		t.Fatalf("status=terminated: %s", r.raw)
	}

	// Retry: nothing to retry, then a failed onEntry retried.
	r = e.must(post(base, map[string]any{"machineName": "Order"}, opTok), 201)
	id2 := r.str("instanceId")
	r = e.must(post(base+"/"+id2+"/retry", nil, opTok), 409)
	if !strings.Contains(r.str("error"), "no onEntry hook") {
		t.Errorf("retry without hook: %s", r.raw)
	}
	e.must(post(base+"/"+id2+"/events", map[string]any{"type": "SHIP"}, opTok), 200)
	if h := lastHistory(e, id2, viewTok); !strings.Contains(h["note"].(string), "carrier down") {
		t.Fatalf("failure not noted: %v", h)
	}
	e.must(post(base+"/"+id2+"/retry", map[string]any{"reason": "x"}, viewTok), 403)
	shipOK <- false
	r = e.must(post(base+"/"+id2+"/retry", map[string]any{"reason": "try once"}, opTok), 409)
	if !strings.Contains(r.str("error"), "carrier down") {
		t.Errorf("retry failing again: %s", r.raw)
	}
	shipOK <- true
	r = e.must(post(base+"/"+id2+"/retry", map[string]any{"reason": "carrier back"}, opTok), 200)
	if r.str("newState") != "Shipping" {
		t.Fatalf("retry answer: %s", r.raw)
	}
	h = lastHistory(e, id2, viewTok)
	if h["event"].(map[string]any)["type"] != "HOOK_RETRIED" || h["reason"] != "carrier back" || h["note"] != nil {
		t.Fatalf("retry audit: %v", h)
	}
	r = e.must(post(base+"/"+id2+"/retry", nil, opTok), 409)
	if !strings.Contains(r.str("error"), "no failed hook") {
		t.Errorf("retry after success: %s", r.raw)
	}
}

// A backend without the operator actions answers 501.
func TestOperatorActionsNotImplemented(t *testing.T) {
	e := newEnv(t, Options{}, []*component.Component{parseYAML(t, opsYAML)}, func(b Backend) Backend {
		return struct{ Backend }{b} // hides Operator
	})
	r := e.must(e.post("/api/components/Ops/instances", map[string]any{"machineName": "Order"}), 201)
	r = e.must(e.post("/api/components/Ops/instances/"+r.str("instanceId")+"/terminate", nil), 501)
	if r.str("error") == "" {
		t.Errorf("501 without a message: %s", r.raw)
	}
}
