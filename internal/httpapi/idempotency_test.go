package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

// keyed sends a POST with an Idempotency-Key (none when key is "-") and returns the status,
// the answer and whether it says Idempotent-Replayed.
func keyed(t *testing.T, url, path, key, token, body string) (int, map[string]any, bool) {
	t.Helper()
	hr, err := http.NewRequest("POST", url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/json")
	if key != "-" {
		hr.Header.Set(HeaderIdempotencyKey, key)
	}
	if token != "" {
		hr.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, raw)
	}
	return resp.StatusCode, m, resp.Header.Get(HeaderIdempotentReplayed) == "true"
}

// historyOf is the event types of an instance's history, oldest first.
func historyOf(t *testing.T, s storeServer, id string) []string {
	t.Helper()
	var h struct {
		Events []struct {
			Event struct {
				Type string `json:"type"`
			} `json:"event"`
		} `json:"history"`
	}
	raw := s.get(t, "/api/instances/"+id+"/history")
	if err := json.Unmarshal([]byte(raw), &h); err != nil {
		t.Fatalf("history: %v: %s", err, raw)
	}
	var out []string
	for _, e := range h.Events {
		out = append(out, e.Event.Type)
	}
	return out
}

func count(types []string, typ string) int {
	n := 0
	for _, x := range types {
		if x == typ {
			n++
		}
	}
	return n
}

func instanceCount(t *testing.T, s storeServer) int {
	t.Helper()
	var l struct {
		Instances []any `json:"instances"`
	}
	if err := json.Unmarshal([]byte(s.get(t, "/api/components/Expense/instances?limit=1000")), &l); err != nil {
		t.Fatal(err)
	}
	return len(l.Instances)
}

// TestIdempotencyKeyOnEveryStore: retried creates, events and operator actions with the same
// Idempotency-Key are applied once and answered as the first was (Idempotent-Replayed), on the
// memory, SQLite and PostgreSQL stores; a refused first attempt is evaluated again; a key
// reused for another request is 422; concurrent duplicates apply once.
func TestIdempotencyKeyOnEveryStore(t *testing.T) {
	eachStore(t, func(t *testing.T, s storeServer) {
		const create = "/api/components/Expense/instances"
		body := `{"context":{"employee":"ann","amount":12}}`

		// Create, retried: one instance, the same answer.
		st, first, rep := keyed(t, s.url, create, "order-1", "", body)
		if st != 201 || rep {
			t.Fatalf("first create: %d replayed=%v %v", st, rep, first)
		}
		id := first["instanceId"].(string)
		st, again, rep := keyed(t, s.url, create, "order-1", "", body)
		if st != 201 || !rep || again["instanceId"] != id {
			t.Fatalf("retried create: %d replayed=%v %v, want 201 replayed with %s", st, rep, again, id)
		}
		if n := instanceCount(t, s); n != 1 {
			t.Fatalf("%d instances after a retried create, want 1", n)
		}
		// The same key for another request: 422, nothing created; another key: a new instance.
		st, m, _ := keyed(t, s.url, create, "order-1", "", `{"context":{"employee":"bob","amount":12}}`)
		if st != 422 || !strings.Contains(m["error"].(string), HeaderIdempotencyKey) {
			t.Fatalf("key reused with another context: %d %v, want 422", st, m)
		}
		st, other, rep := keyed(t, s.url, create, "order-2", "", body)
		if st != 201 || rep || other["instanceId"] == id {
			t.Fatalf("another key: %d replayed=%v %v", st, rep, other)
		}

		// An event, retried after it moved the instance on (the retry alone is refused
		// by the machine): the first answer again, the event recorded once.
		events := "/api/instances/" + id + "/trigger"
		st, m, rep = keyed(t, s.url, events, "submit-1", "", `{"type":"SUBMIT","payload":{"amount":13}}`)
		if st != 200 || rep || m["newState"] != "Submitted" {
			t.Fatalf("submit: %d replayed=%v %v", st, rep, m)
		}
		eventID := m["eventId"]
		for _, path := range []string{events, "/api/components/Expense/instances/" + id + "/events"} {
			st, m, rep = keyed(t, s.url, path, "submit-1", "", `{"type":"SUBMIT","payload":{"amount":13}}`)
			if st != 200 || !rep || m["previousState"] != "Draft" || m["newState"] != "Submitted" || m["eventId"] != eventID {
				t.Fatalf("retried submit on %s: %d replayed=%v %v", path, st, rep, m)
			}
		}
		st, m, _ = keyed(t, s.url, events, "submit-1", "", `{"type":"SUBMIT","payload":{"amount":14}}`)
		if st != 422 || !strings.Contains(m["error"].(string), "payload") {
			t.Fatalf("key reused with another payload: %d %v, want 422", st, m)
		}
		// A self-transition the machine would take again: the store's inbox refuses the id.
		for i := range 3 {
			st, _, rep = keyed(t, s.url, events, "note-1", "", `{"type":"NOTE"}`)
			if st != 200 || rep != (i > 0) {
				t.Fatalf("note #%d: %d replayed=%v", i+1, st, rep)
			}
		}
		h := historyOf(t, s, id)
		if count(h, "SUBMIT") != 1 || count(h, "NOTE") != 1 {
			t.Fatalf("history %v: want one SUBMIT and one NOTE", h)
		}

		// Refused first (nothing applied): the retry is evaluated again.
		otherID := other["instanceId"].(string)
		st, _, _ = keyed(t, s.url, "/api/instances/"+otherID+"/trigger", "note-2", "", `{"type":"NOTE"}`)
		if st != 409 {
			t.Fatalf("NOTE from Draft: %d, want 409", st)
		}
		if st, _, _ = keyed(t, s.url, "/api/instances/"+otherID+"/trigger", "-", "", `{"type":"SUBMIT"}`); st != 200 {
			t.Fatalf("submit without key: %d", st)
		}
		st, _, rep = keyed(t, s.url, "/api/instances/"+otherID+"/trigger", "note-2", "", `{"type":"NOTE"}`)
		if st != 200 || rep {
			t.Fatalf("NOTE retried after a refusal: %d replayed=%v, want applied now", st, rep)
		}

		// Terminate, retried: one audit entry.
		for i := range 2 {
			st, m, rep = keyed(t, s.url, "/api/components/Expense/instances/"+otherID+"/terminate", "stop-1", "", `{"reason":"dup"}`)
			if st != 200 || rep != (i > 0) || m["newState"] != "Submitted" {
				t.Fatalf("terminate #%d: %d replayed=%v %v", i+1, st, rep, m)
			}
		}
		if h := historyOf(t, s, otherID); count(h, xc.EventTerminated) != 1 {
			t.Fatalf("history %v: want one termination", h)
		}

		// Concurrent duplicates: each answered, one applied.
		const n = 8
		var wg sync.WaitGroup
		ids := make(chan string, n)
		fresh := make(chan bool, n)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, m, rep := keyed(t, s.url, create, "order-3", "", body)
				if st != 201 {
					t.Errorf("concurrent create: %d %v", st, m)
					return
				}
				ids <- m["instanceId"].(string)
				fresh <- !rep
			}()
		}
		wg.Wait()
		close(ids)
		close(fresh)
		var created string
		for x := range ids {
			if created != "" && x != created {
				t.Fatalf("concurrent creates answered %s and %s", created, x)
			}
			created = x
		}
		applied := 0
		for f := range fresh {
			if f {
				applied++
			}
		}
		if applied != 1 || instanceCount(t, s) != 3 {
			t.Fatalf("%d concurrent creates answered as applied, %d instances: want 1 and 3", applied, instanceCount(t, s))
		}
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if st, m, _ := keyed(t, s.url, "/api/instances/"+created+"/trigger", "submit-3", "", `{"type":"SUBMIT"}`); st != 200 {
					t.Errorf("concurrent submit: %d %v", st, m)
				}
			}()
		}
		wg.Wait()
		if h := historyOf(t, s, created); count(h, "SUBMIT") != 1 {
			t.Fatalf("history %v after concurrent submits: want one SUBMIT", h)
		}

		// Bulk: one id per instance; a retry reports the instances reached before.
		bulk := `{"instanceIds":["` + id + `","` + created + `"],"type":"NOTE"}`
		for i := range 2 {
			st, m, _ := keyed(t, s.url, "/api/events", "bulk-1", "", bulk)
			if st != 200 || m["processed"] != json.Number("2") {
				t.Fatalf("bulk #%d: %d %v", i+1, st, m)
			}
			for _, r := range m["results"].([]any) {
				if res := r.(map[string]any); res["ok"] != true || (res["replayed"] == true) != (i > 0) {
					t.Fatalf("bulk #%d result %v, want ok, replayed on the retry only", i+1, res)
				}
			}
		}
		if h := historyOf(t, s, created); count(h, "NOTE") != 1 {
			t.Fatalf("history %v after a retried bulk: want one NOTE", h)
		}
	})
}

// TestIdempotencyKeyChecks: malformed keys are 400 naming the header, broadcast takes none,
// and keys are scoped to the caller: two tokens' equal keys are two requests.
func TestIdempotencyKeyChecks(t *testing.T) {
	eng := xc.New(xc.Options{Store: store.NewMemory(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := eng.Load(t.Context(), parseYAML(t, expenseYAML)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close(t.Context()) })
	const tokA, tokB = "operator-token-aaaaaaaa", "operator-token-bbbbbbbb"
	srv := httptest.NewServer(New(NewLocal(eng), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Tokens: Tokens{RoleOperator: {tokA, tokB}}, CORSOrigins: []string{"https://ops.example"}}))
	t.Cleanup(srv.Close)
	const create = "/api/components/Expense/instances"
	body := `{"context":{"employee":"ann"}}`
	for _, bad := range []string{strings.Repeat("k", 256), "clé", `"unterminated\"`} {
		st, m, _ := keyed(t, srv.URL, create, bad, tokA, body)
		if st != 400 || !strings.Contains(m["error"].(string), HeaderIdempotencyKey) {
			t.Fatalf("key %q: %d %v, want 400 naming the header", bad, st, m)
		}
	}
	hr, _ := http.NewRequest("POST", srv.URL+create, strings.NewReader(body))
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+tokA)
	hr.Header["Idempotency-Key"] = []string{""}
	if resp, err := http.DefaultClient.Do(hr); err != nil || resp.StatusCode != 400 {
		t.Fatalf("empty key: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// A quoted key (structured-field string) is the key it quotes.
	_, a1, _ := keyed(t, srv.URL, create, `"k-1"`, tokA, body)
	_, a2, rep := keyed(t, srv.URL, create, "k-1", tokA, body)
	if !rep || a1["instanceId"] != a2["instanceId"] {
		t.Fatalf("quoted then bare key: %v %v replayed=%v", a1, a2, rep)
	}
	_, b1, rep := keyed(t, srv.URL, create, "k-1", tokB, body)
	if rep || b1["instanceId"] == a1["instanceId"] {
		t.Fatalf("another token's equal key answered %v replayed=%v: keys must be scoped to the caller", b1, rep)
	}
	st, m, _ := keyed(t, srv.URL, "/api/components/Expense/broadcast", "b-1", tokA, `{"machineName":"Request","event":"NOTE"}`)
	if st != 400 || !strings.Contains(m["error"].(string), HeaderIdempotencyKey) {
		t.Fatalf("broadcast with a key: %d %v, want 400", st, m)
	}
	// CORS: browsers may send the header and read the answer's.
	pre, _ := http.NewRequest("OPTIONS", srv.URL+create, nil)
	pre.Header.Set("Origin", "https://ops.example")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "idempotency-key")
	resp, err := http.DefaultClient.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), HeaderIdempotencyKey) {
		t.Fatalf("preflight allows %q", resp.Header.Get("Access-Control-Allow-Headers"))
	}
	hr, _ = http.NewRequest("POST", srv.URL+create, strings.NewReader(body))
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+tokA)
	hr.Header.Set("Origin", "https://ops.example")
	hr.Header.Set(HeaderIdempotencyKey, "k-1")
	resp, err = http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get(HeaderIdempotentReplayed) != "true" || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), HeaderIdempotentReplayed) {
		t.Fatalf("cross-origin replay: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestIdempotencyKeyRetryHook: a retried hook retry is answered from the audit trail and
// does not run the hook again.
func TestIdempotencyKeyRetryHook(t *testing.T) {
	e := newEnv(t, Options{}, []*component.Component{parseYAML(t, opsYAML)}, nil)
	var calls atomic.Int32
	e.eng.Handle("ship", func(context.Context, *xc.Hook) error {
		if calls.Add(1) == 1 {
			return errors.New("carrier down")
		}
		return nil
	})
	base := "/api/components/Ops/instances"
	id := e.must(e.post(base, map[string]any{"machineName": "Order"}), 201).str("instanceId")
	e.must(e.post(base+"/"+id+"/events", map[string]any{"type": "SHIP"}), 200)
	e.idle()
	for i := range 3 {
		r := e.do(req{method: "POST", path: base + "/" + id + "/retry", body: map[string]any{"reason": "carrier back"},
			header: map[string]string{HeaderIdempotencyKey: "retry-1"}})
		if r.status != 200 || (r.header.Get(HeaderIdempotentReplayed) == "true") != (i > 0) {
			t.Fatalf("retry #%d: %d %v %s", i+1, r.status, r.header, r.raw)
		}
		e.idle()
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("hook ran %d times, want 2 (failed, retried once)", n)
	}
}
