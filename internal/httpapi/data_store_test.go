package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/postgres"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/store/sqlite"
)

// The data holes of issue 9 are checked on every store through the API: the same input
// must get the same answer whatever the store, and a client error must never be a 503.

const expenseYAML = `
name: Expense
entryMachine: Request
stateMachines:
	- name: Request
		initialState: Draft
		contextSchema:
			employee: {type: text, required: true}
			amount: {type: number}
		states:
			- {name: Draft, type: entry}
			- {name: Submitted, type: regular}
		transitions:
			- {from: Draft, to: Submitted, event: SUBMIT, type: triggerable}
			- {from: Submitted, to: Submitted, event: NOTE, type: triggerable}
`

type storeServer struct {
	url string
}

func eachStore(t *testing.T, f func(t *testing.T, s storeServer)) {
	stores := map[string]func(t *testing.T) store.Store{
		"memory": func(*testing.T) store.Store { return store.NewMemory() },
		"sqlite": func(t *testing.T) store.Store {
			s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "x.db"))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"postgres": func(t *testing.T) store.Store {
			s, err := postgres.Open(context.Background(), pgtest.NewDatabase(t))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
	for _, name := range []string{"memory", "sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			st := stores[name](t)
			eng := xc.New(xc.Options{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err := eng.Load(context.Background(), parseYAML(t, expenseYAML)); err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(New(NewLocal(eng), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
			t.Cleanup(func() {
				srv.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = eng.Close(ctx)
				_ = st.Close()
			})
			f(t, storeServer{url: srv.URL})
		})
	}
}

func (s storeServer) post(t *testing.T, path, body string) (int, map[string]any, string) {
	t.Helper()
	resp, err := http.Post(s.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	_ = dec.Decode(&m)
	return resp.StatusCode, m, string(raw)
}

func (s storeServer) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get(s.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return string(raw)
}

func (s storeServer) create(t *testing.T, ctxJSON string) string {
	t.Helper()
	code, m, raw := s.post(t, "/api/components/Expense/instances", `{"context":`+ctxJSON+`}`)
	if code != http.StatusCreated {
		t.Fatalf("create %s: %d %s", ctxJSON, code, raw)
	}
	return m["instanceId"].(string)
}

func TestNULCharacterRefusedOnEveryStore(t *testing.T) {
	eachStore(t, func(t *testing.T, s storeServer) {
		code, _, raw := s.post(t, "/api/components/Expense/instances", `{"context":{"employee":"a\u0000b"}}`)
		if code != http.StatusUnprocessableEntity || !strings.Contains(raw, `"employee"`) || !strings.Contains(raw, "NUL") {
			t.Fatalf("create with NUL: %d %s, want 422 naming employee", code, raw)
		}
		code, _, raw = s.post(t, "/api/components/Expense/instances", `{"context":{"employee":"x","nested":{"a\u0000":[1,"z\u0000"]}}}`)
		if code != http.StatusUnprocessableEntity || !strings.Contains(raw, `nested.a\\u0000`) {
			t.Fatalf("create with nested NUL: %d %s", code, raw)
		}
		id := s.create(t, `{"employee":"x"}`)
		code, _, raw = s.post(t, "/api/instances/"+id+"/trigger", `{"type":"SUBMIT","payload":{"note":"a\u0000b"}}`)
		if code != http.StatusUnprocessableEntity || !strings.Contains(raw, "payload.note") {
			t.Fatalf("event with NUL: %d %s, want 422 naming payload.note", code, raw)
		}
		if got := s.get(t, "/api/instances/"+id); !strings.Contains(got, `"currentState":"Draft"`) {
			t.Fatalf("instance changed by a refused event: %s", got)
		}
		code, _, raw = s.post(t, "/api/instances/"+id+"/trigger", `{"type":"SUBMIT","payload":{"note":"fine"}}`)
		if code != http.StatusOK {
			t.Fatalf("valid event after refusal: %d %s", code, raw)
		}
	})
}

func TestIntegersBeyond2p53RefusedNotRounded(t *testing.T) {
	eachStore(t, func(t *testing.T, s storeServer) {
		for _, body := range []string{
			`{"context":{"employee":"x","amount":9007199254740993}}`,
			`{"context":{"employee":"x","ref":{"ids":[1,-9007199254740993]}}}`,
			`{"context":{"employee":"x","amount":1e400}}`,
		} {
			code, _, raw := s.post(t, "/api/components/Expense/instances", body)
			if code != http.StatusUnprocessableEntity || !strings.Contains(raw, `"field":"`) {
				t.Fatalf("create %s: %d %s, want 422 naming the field", body, code, raw)
			}
		}
		// The largest exact integers, and fractions, are kept as sent.
		id := s.create(t, `{"employee":"x","amount":9007199254740992,"neg":-9007199254740992,"f":0.1,"big":1e300}`)
		got := s.get(t, "/api/instances/"+id)
		for _, want := range []string{`"amount":9007199254740992`, `"neg":-9007199254740992`, `"f":0.1`, `"big":1e+300`} {
			if !strings.Contains(got, want) {
				t.Fatalf("stored instance lacks %s: %s", want, got)
			}
		}
		code, _, raw := s.post(t, "/api/instances/"+id+"/trigger", `{"type":"SUBMIT","payload":{"amount":9007199254740993}}`)
		if code != http.StatusUnprocessableEntity || !strings.Contains(raw, "payload.amount") {
			t.Fatalf("event with a big integer: %d %s, want 422 naming payload.amount", code, raw)
		}
		if got := s.get(t, "/api/instances/"+id); !strings.Contains(got, `"currentState":"Draft"`) || !strings.Contains(got, `"amount":9007199254740992`) {
			t.Fatalf("instance changed by a refused event: %s", got)
		}
	})
}

func TestEventPayloadCheckedAgainstContextSchema(t *testing.T) {
	eachStore(t, func(t *testing.T, s storeServer) {
		id := s.create(t, `{"employee":"x","amount":5}`)
		code, _, raw := s.post(t, "/api/instances/"+id+"/trigger", `{"type":"SUBMIT","payload":{"amount":"abc","employee":null}}`)
		if code != http.StatusUnprocessableEntity || !strings.Contains(raw, "payload.amount") || !strings.Contains(raw, "payload.employee") {
			t.Fatalf("invalid payload: %d %s, want 422 naming payload.amount and payload.employee", code, raw)
		}
		got := s.get(t, "/api/instances/"+id)
		if !strings.Contains(got, `"currentState":"Draft"`) || !strings.Contains(got, `"employee":"x"`) || !strings.Contains(got, `"amount":5`) || !strings.Contains(got, `"version":0`) {
			t.Fatalf("instance changed by a refused event: %s", got)
		}
		if h := s.get(t, "/api/instances/"+id+"/history"); strings.Contains(h, "SUBMIT") {
			t.Fatalf("refused event recorded in history: %s", h)
		}
		// A valid payload is coerced like a create context and applied.
		code, _, raw = s.post(t, "/api/instances/"+id+"/trigger", `{"type":"SUBMIT","payload":{"amount":"12.5","extra":"kept"}}`)
		if code != http.StatusOK {
			t.Fatalf("valid payload: %d %s", code, raw)
		}
		got = s.get(t, "/api/instances/"+id)
		for _, want := range []string{`"currentState":"Submitted"`, `"amount":12.5`, `"extra":"kept"`, `"employee":"x"`} {
			if !strings.Contains(got, want) {
				t.Fatalf("instance lacks %s: %s", want, got)
			}
		}
	})
}

func TestNULInListQueryIsAClientError(t *testing.T) {
	eachStore(t, func(t *testing.T, s storeServer) {
		s.create(t, `{"employee":"x"}`)
		for _, q := range []string{"q=a%00b", "cursor=a%00b", "q=%00"} {
			resp, err := http.Get(s.url + "/api/instances?" + q)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("GET /api/instances?%s: %d %s, want 400", q, resp.StatusCode, raw)
			}
		}
	})
}
