package httpapi

import (
	"bytes"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/xcomponent/xcomponent/component"
)

// fuzzComponent has no contextSchema: whatever data the API accepts is stored as is, so that
// what comes back can be compared with what was sent.
const fuzzComponent = `
name: Free
entryMachine: M
entryMachineMode: multiple
stateMachines:
  - name: M
    initialState: A
    states: [{name: A, type: entry}, {name: B}]
    transitions:
      - {from: A, to: B, event: GO}
      - {from: B, to: B, event: GO}
`

// fuzzBroadcast is where broadcasts go: one instance, so that a broadcast costs the same
// however many instances the fuzzed creates made.
const fuzzBroadcast = `
name: Other
entryMachine: M
stateMachines:
  - name: M
    initialState: A
    states: [{name: A, type: entry}]
    transitions:
      - {from: A, to: A, event: GO}
`

const fuzzMaxBody = 8 << 10

// FuzzRequestBody sends arbitrary bodies to the write endpoints (create, event, broadcast, bulk
// events) and arbitrary query strings to the instance list, over a real engine. Properties:
//   - every answer is a client error (400, 404, 409, 413, 422) or a success, never a 5xx: a
//     client's input must never look like an outage;
//   - an error answer is a JSON object with an "error" message;
//   - the limits hold: a body over MaxBodyBytes is a 413, one nested deeper than MaxJSONDepth a
//     400, a NUL character or an integer beyond 2^53 in the data a 422;
//   - accepted data is kept exactly: the created instance's context, read back, has the sent
//     values (integers digit for digit, other numbers as the float64 they denote).
func FuzzRequestBody(f *testing.F) {
	comp, err := component.Parse([]byte(fuzzComponent), "free.yaml")
	if err != nil {
		f.Fatal(err)
	}
	other, err := component.Parse([]byte(fuzzBroadcast), "other.yaml")
	if err != nil {
		f.Fatal(err)
	}
	e := newEnv(f, Options{MaxBodyBytes: fuzzMaxBody}, []*component.Component{comp, other}, nil)
	if r := e.do(req{method: "POST", path: "/api/components/Other/instances", body: map[string]any{}}); r.status != http.StatusCreated {
		f.Fatalf("create: %d %s", r.status, r.raw)
	}
	created := e.do(req{method: "POST", path: "/api/components/Free/instances", body: map[string]any{"context": map[string]any{"a": 1}}})
	if created.status != http.StatusCreated {
		f.Fatalf("create: %d %s", created.status, created.raw)
	}
	id := created.str("instanceId")
	host := strings.TrimPrefix(e.srv.URL, "http://")

	for _, s := range []string{
		`{"context":{"employee":"a\u0000b"}}`, `{"context":{"n":9007199254740993}}`, `{"context":{"n":-9007199254740992,"f":0.1,"e":1e300}}`,
		`{"context":{"n":1e400}}`, `{"context":{"n":123456789012345678901234567890}}`, `{"context":{"k\u0000":1}}`,
		`{"context":{"a":{"b":[1,2,{"c":null}]},"s":"\ud800","t":true}}`, `{"type":"GO","payload":{"x":1}}`,
		`{"event":"GO","payload":{"x":"y"}}`, `{"event":{"type":"GO","payload":{"n":9007199254740993}}}`,
		`{"machineName":"M","event":{"type":"GO"}}`, `{"machineName":"M","event":"GO","currentState":"A"}`,
		`{"context":` + strings.Repeat("[", 65) + strings.Repeat("]", 65) + `}`, `{"context":{"s":"` + strings.Repeat("x", fuzzMaxBody) + `"}}`,
		`{"machineName":"M"} {}`, `[]`, `null`, ``, `{"context":[]}`, `{"type":"` + strings.Repeat("E", 300) + `"}`, `{"type":"G\tO"}`,
		`{"context":{"a":1},"context":{"b":2}}`, `{"Context":{"a":1}}`, `{"context":{"a":"\"{]"}}`,
	} {
		for kind := range uint8(3) {
			f.Add(kind, []byte(s), "")
		}
	}
	for _, s := range []string{
		`{"component":"Free","where":{"a":1},"type":"GO"}`, `{"instanceIds":["` + id + `"],"event":"GO","payload":{"n":9007199254740993}}`,
		`{"component":"Free","where":["a:\u0000"],"type":"GO"}`, `{"component":"Other","where":"a:[1,{}]","event":{"type":"GO"}}`,
		`{"instanceIds":["` + id + `"],"where":{"a":1},"type":"GO"}`, `{"instanceIds":["X"],"type":"GO"}`,
	} {
		f.Add(uint8(4), []byte(s), "")
	}
	for _, q := range []string{"q=a%00b", "limit=0", "limit=99999999999999999999", "status=nope", "from=x", "cursor=" + strings.Repeat("z", 600),
		"component=Free&machine=M&state=A", "q=" + strings.Repeat("a", 300), "from=2025-01-01T00:00:00Z&to=1"} {
		f.Add(uint8(3), []byte{}, q)
	}
	paths := []string{"/api/components/Free/instances", "/api/components/Free/instances/" + id + "/events", "/api/components/Other/broadcast",
		"/api/instances", "/api/events"}
	f.Fuzz(func(t *testing.T, kind uint8, body []byte, query string) {
		var r *http.Request
		kind %= uint8(len(paths))
		if kind == 3 {
			if _, err := url.ParseQuery(query); err != nil {
				return
			}
			r = httptest.NewRequest("GET", "/api/instances", nil)
			r.URL.RawQuery = query
		} else {
			r = httptest.NewRequest("POST", paths[kind], bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
		}
		r.Host = host
		w := httptest.NewRecorder()
		e.handler.ServeHTTP(w, r)
		status := w.Code
		var answer map[string]any
		dec := json.NewDecoder(w.Body)
		dec.UseNumber()
		if err := dec.Decode(&answer); err != nil {
			t.Fatalf("answer %d is not a JSON object: %v", status, err)
		}
		switch status {
		case 200, 201:
		case 400, 404, 409, 413, 422:
			if msg, _ := answer["error"].(string); msg == "" {
				t.Fatalf("error answer %d without a message: %v", status, answer)
			}
		default:
			t.Fatalf("status %d for %q (kind %d, query %q): %v", status, body, kind, query, answer)
		}
		if kind == 3 {
			return
		}
		if kind == 4 && status == http.StatusOK {
			// Bulk sends answer 200 with one status per instance: none may be a 5xx either.
			results, _ := answer["results"].([]any)
			for _, r := range results {
				m, _ := r.(map[string]any)
				n, _ := m["status"].(json.Number)
				if st, err := n.Int64(); err != nil || st >= 500 {
					t.Fatalf("bulk send: an instance got %d: %v", st, r)
				}
			}
		}
		switch {
		case len(body) > fuzzMaxBody:
			if status != http.StatusRequestEntityTooLarge {
				t.Fatalf("body of %d bytes: status %d, want 413", len(body), status)
			}
			return
		case json.Valid(body) && jsonDepth(body) > MaxJSONDepth:
			if status != http.StatusBadRequest {
				t.Fatalf("body nested %d levels: status %d, want 400", jsonDepth(body), status)
			}
			return
		}
		var sent struct {
			Context map[string]any `json:"context"`
			Payload map[string]any `json:"payload"`
		}
		sd := json.NewDecoder(bytes.NewReader(body))
		sd.UseNumber()
		if sd.Decode(&sent) != nil {
			return
		}
		if data := sent.Context; kind == 0 {
			if bad := unstorable(data); bad != "" && status < 300 {
				t.Fatalf("%s accepted (%d): %s", bad, status, body)
			}
			if status == http.StatusCreated {
				inst, _ := answer["instance"].(map[string]any)
				got, _ := inst["context"].(map[string]any)
				if !sameData(data, got) && len(data) > 0 {
					t.Fatalf("context changed:\n sent %s\n  got %v", body, got)
				}
			}
		}
		if kind == 1 && status < 300 {
			if bad := unstorable(sent.Payload); bad != "" {
				t.Fatalf("payload with %s accepted (%d): %s", bad, status, body)
			}
		}
	})
}

// unstorable names what in data no store can keep as sent ("" when nothing).
func unstorable(v any) string {
	switch x := v.(type) {
	case string:
		if strings.IndexByte(x, 0) >= 0 {
			return "a NUL character"
		}
	case json.Number:
		if !strings.ContainsAny(string(x), ".eE") {
			n, ok := new(big.Int).SetString(string(x), 10)
			if !ok || n.CmpAbs(big.NewInt(1<<53)) > 0 {
				return "an integer beyond 2^53"
			}
		}
	case map[string]any:
		for k, e := range x {
			if strings.IndexByte(k, 0) >= 0 {
				return "a NUL character in a key"
			}
			if bad := unstorable(e); bad != "" {
				return bad
			}
		}
	case []any:
		for _, e := range x {
			if bad := unstorable(e); bad != "" {
				return bad
			}
		}
	}
	return ""
}

// sameData compares sent and stored data: integers digit for digit, other numbers as the
// float64 they denote, everything else exactly.
func sameData(sent, got any) bool {
	switch x := sent.(type) {
	case json.Number:
		y, ok := got.(json.Number)
		if !ok {
			return false
		}
		if !strings.ContainsAny(string(x), ".eE") {
			a, _ := new(big.Int).SetString(string(x), 10)
			b, ok := new(big.Float).SetString(string(y))
			if !ok || a == nil {
				return false
			}
			bi, acc := b.Int(nil)
			return acc == big.Exact && a.Cmp(bi) == 0
		}
		fa, errA := x.Float64()
		fb, errB := y.Float64()
		return errA == nil && errB == nil && fa == fb
	case map[string]any:
		y, ok := got.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, e := range x {
			if !sameData(e, y[k]) {
				return false
			}
		}
		return true
	case []any:
		y, ok := got.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameData(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return sent == got
}
