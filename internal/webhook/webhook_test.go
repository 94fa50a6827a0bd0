package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/internal/webhook"
	"github.com/xcomponent/xcomponent/xcomponenttest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// sent is one call on the recording Sender.
type sent struct {
	Kind, Component, InstanceID, Machine, State string
	Event                                       xc.Event
}

type recorder struct{ calls []sent }

func (r *recorder) SendToSelf(ev xc.Event) { r.calls = append(r.calls, sent{Kind: "self", Event: ev}) }
func (r *recorder) SendTo(id string, ev xc.Event) {
	r.calls = append(r.calls, sent{Kind: "to", InstanceID: id, Event: ev})
}
func (r *recorder) SendToComponent(c, id string, ev xc.Event) {
	r.calls = append(r.calls, sent{Kind: "component", Component: c, InstanceID: id, Event: ev})
}
func (r *recorder) Broadcast(m string, ev xc.Event, state, c string) {
	r.calls = append(r.calls, sent{Kind: "broadcast", Machine: m, State: state, Component: c, Event: ev})
}
func (r *recorder) CreateInstance(string, map[string]any)                    {}
func (r *recorder) CreateInstanceInComponent(string, string, map[string]any) {}

func newHook(kind xc.HookKind) (*xc.Hook, *recorder) {
	rec := &recorder{}
	return &xc.Hook{
		Kind: kind, Method: "reserveStock", Component: "Orders", Machine: "Order", InstanceID: "i-1",
		State: "Validated", From: "Validated", To: "Reserved",
		Event: xc.Event{Type: "RESERVE", Payload: map[string]any{"qty": 2.0}, ID: "e-1", CorrelationID: "c-1"},
		Data:  map[string]any{"orderId": "o-1", "keep": "k", "drop": "d"},
		Send:  rec,
	}, rec
}

// endpoint serves answer (status and body) and records the last request.
type endpoint struct {
	mu      sync.Mutex
	body    map[string]any
	headers http.Header
}

func (e *endpoint) serve(t *testing.T, status int, answer string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("request body: %v", err)
		}
		e.mu.Lock()
		e.body, e.headers = body, r.Header.Clone()
		e.mu.Unlock()
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request: %s %s", r.Method, r.Header.Get("Content-Type"))
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRequestShapeAndHeaders(t *testing.T) {
	var ep endpoint
	srv := ep.serve(t, 200, `{}`)
	fn := webhook.New(srv.URL+"/hooks", webhook.Options{Logger: quiet,
		Headers: http.Header{"Authorization": {"Bearer s3cret"}}})
	h, _ := newHook(xc.HookTriggered)
	if err := fn(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"hook": "triggeredMethod", "method": "reserveStock", "component": "Orders", "machine": "Order",
		"instanceId": "i-1", "state": "Validated", "from": "Validated", "to": "Reserved",
		"event":   map[string]any{"type": "RESERVE", "payload": map[string]any{"qty": 2.0}, "id": "e-1", "correlationId": "c-1"},
		"context": map[string]any{"orderId": "o-1", "keep": "k", "drop": "d"},
	}
	if !reflect.DeepEqual(ep.body, want) {
		t.Fatalf("request body:\n got %v\nwant %v", ep.body, want)
	}
	if got := ep.headers.Get("Authorization"); got != "Bearer s3cret" {
		t.Fatalf("Authorization header: %q", got)
	}
}

func TestAnswers(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		answer    string
		wantData  map[string]any
		wantSends []sent
	}{
		{name: "empty object", status: 200, answer: `{}`},
		{name: "empty body", status: 200, answer: ``},
		{name: "no content", status: 204},
		{name: "null", status: 200, answer: `null`},
		{
			name: "patch and delete", status: 200,
			answer:   `{"context": {"reserved": true, "qty": 2, "drop": null, "nested": {"a": [1]}}}`,
			wantData: map[string]any{"orderId": "o-1", "keep": "k", "reserved": true, "qty": 2.0, "nested": map[string]any{"a": []any{1.0}}},
		},
		{
			name: "send to self", status: 200,
			answer:    `{"send": [{"type": "RESERVED", "payload": {"at": "now"}}]}`,
			wantSends: []sent{{Kind: "self", Event: xc.Event{Type: "RESERVED", Payload: map[string]any{"at": "now"}}}},
		},
		{
			name: "send to other instances", status: 201,
			answer: `{"send": [{"type": "PING", "instanceId": "i-2"}, {"type": "PONG", "instanceId": "i-3", "component": "Stock"},
				{"type": "WAKE", "broadcast": {"machine": "Waiter", "state": "Idle", "component": "Other"}}]}`,
			wantSends: []sent{
				{Kind: "to", InstanceID: "i-2", Event: xc.Event{Type: "PING"}},
				{Kind: "component", Component: "Stock", InstanceID: "i-3", Event: xc.Event{Type: "PONG"}},
				{Kind: "broadcast", Machine: "Waiter", State: "Idle", Component: "Other", Event: xc.Event{Type: "WAKE"}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ep endpoint
			srv := ep.serve(t, tc.status, tc.answer)
			h, rec := newHook(xc.HookTriggered)
			before := map[string]any{}
			for k, v := range h.Data {
				before[k] = v
			}
			if err := webhook.New(srv.URL, webhook.Options{Logger: quiet})(context.Background(), h); err != nil {
				t.Fatalf("hook: %v", err)
			}
			wantData := tc.wantData
			if wantData == nil {
				wantData = before
			}
			if !reflect.DeepEqual(h.Data, wantData) {
				t.Fatalf("data:\n got %v\nwant %v", h.Data, wantData)
			}
			if !reflect.DeepEqual(rec.calls, tc.wantSends) {
				t.Fatalf("sends:\n got %+v\nwant %+v", rec.calls, tc.wantSends)
			}
		})
	}
}

func TestFailuresVeto(t *testing.T) {
	tests := []struct {
		name   string
		status int
		answer string
		want   string // in the error
		veto   bool   // a VetoError rather than ErrEndpoint
	}{
		{name: "veto", status: 200, answer: `{"error": "out of stock", "context": {"x": 1}, "send": [{"type": "X"}]}`, want: "out of stock", veto: true},
		{name: "500", status: 500, answer: `{"context": {"x": 1}}`, want: "500 Internal Server Error"},
		{name: "401", status: 401, answer: `denied`, want: "401 Unauthorized"},
		{name: "malformed", status: 200, answer: `{"context": `, want: "malformed answer"},
		{name: "wrong shape", status: 200, answer: `{"context": [1, 2]}`, want: "malformed answer"},
		{name: "send without type", status: 200, answer: `{"context": {"x": 1}, "send": [{"type": "OK"}, {"payload": {}}]}`, want: "send[1]: no event type"},
		// Data no store could keep as sent: refused, never stored rounded (9007199254740993
		// became 9007199254740992 when answers were decoded as float64).
		{name: "integer beyond 2^53", status: 200, answer: `{"context": {"x": 9007199254740993}}`, want: "beyond ±2^53"},
		{name: "payload integer beyond 2^53", status: 200, answer: `{"send": [{"type": "X", "payload": {"x": -9007199254740993}}]}`, want: "send[0].payload"},
		{name: "NUL", status: 200, answer: `{"context": {"x": "a\u0000b"}}`, want: "NUL"},
		{name: "two values", status: 200, answer: `{"context": {"x": 1}} {}`, want: "malformed answer"},
		{name: "too large", status: 200, answer: `{"context": {"x": "` + strings.Repeat("a", webhook.MaxResponseBytes) + `"}}`, want: "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ep endpoint
			srv := ep.serve(t, tc.status, tc.answer)
			h, rec := newHook(xc.HookOnExit)
			err := webhook.New(srv.URL+"/hooks?token=abc", webhook.Options{Logger: quiet})(context.Background(), h)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			var v *webhook.VetoError
			if tc.veto != errors.As(err, &v) || tc.veto == errors.Is(err, webhook.ErrEndpoint) {
				t.Fatalf("error kind: %#v", err)
			}
			if !tc.veto && (!strings.Contains(err.Error(), srv.URL+"/hooks") || strings.Contains(err.Error(), "abc")) {
				t.Fatalf("error should name the URL without its query: %v", err)
			}
			if _, touched := h.Data["x"]; touched || len(rec.calls) != 0 {
				t.Fatalf("a failed answer was applied: data %v sends %v", h.Data, rec.calls)
			}
		})
	}
}

func TestTimeoutVetoes(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	fn := webhook.New(srv.URL, webhook.Options{Logger: quiet, Timeout: 50 * time.Millisecond})
	h, _ := newHook(xc.HookTriggered)
	start := time.Now()
	err := fn(context.Background(), h)
	if !errors.Is(err, webhook.ErrEndpoint) || !strings.Contains(err.Error(), "no answer within 50ms") {
		t.Fatalf("timeout: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("timeout took %v", d)
	}

	// The hook's own context bounds the call too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fn = webhook.New(srv.URL, webhook.Options{Logger: quiet})
	if err := fn(ctx, h); !errors.Is(err, webhook.ErrEndpoint) || !errors.Is(err, context.Canceled) && !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("cancelled context: %v", err)
	}
}

func TestUnreachableRedactsCredentials(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := strings.Replace(srv.URL, "http://", "http://user:pa55@", 1) + "/hooks?key=k3y"
	srv.Close()
	h, _ := newHook(xc.HookTriggered)
	err := webhook.New(url, webhook.Options{Logger: quiet})(context.Background(), h)
	if !errors.Is(err, webhook.ErrEndpoint) {
		t.Fatalf("unreachable: %v", err)
	}
	for _, secret := range []string{"pa55", "k3y"} { // the user name is shown, as in store and broker URLs
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error leaks %q: %v", secret, err)
		}
	}
}

func TestParseHeaderAndCheckURL(t *testing.T) {
	k, v, err := webhook.ParseHeader("authorization:  Bearer a:b ")
	if err != nil || k != "Authorization" || v != "Bearer a:b" {
		t.Fatalf("ParseHeader: %q %q %v", k, v, err)
	}
	for _, bad := range []string{"Bearer s3cret", ": x", "Bad Name: x"} {
		if _, _, err := webhook.ParseHeader(bad); err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("ParseHeader(%q): %v", bad, err)
		}
	}
	if err := webhook.CheckURL("https://h.example/hooks"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"h.example/hooks", "ftp://h.example", "http://", "://x"} {
		if err := webhook.CheckURL(bad); err == nil {
			t.Fatalf("CheckURL(%q) accepted", bad)
		}
	}
}

// TestThroughEngine runs a triggeredMethod served by the endpoint in a real (manual) engine:
// the answer's data patch is committed with the transition and its follow-up event is
// processed after the commit.
func TestThroughEngine(t *testing.T) {
	src := `
name: Orders
stateMachines:
  - name: Order
    initialState: Validated
    states:
      - {name: Validated}
      - {name: Reserved}
      - {name: Shipped, type: final}
    transitions:
      - {from: Validated, to: Reserved, event: RESERVE, triggeredMethod: reserveStock}
      - {from: Reserved, to: Shipped, event: SHIP}
`
	var mu sync.Mutex
	var calls []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		calls = append(calls, body)
		mu.Unlock()
		if body["method"] != "reserveStock" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		_, _ = io.WriteString(w, `{"context": {"reservation": "R-42", "draft": null}, "send": [{"type": "SHIP", "payload": {"carrier": "ups"}}]}`)
	}))
	t.Cleanup(srv.Close)

	comp, err := component.Parse([]byte(src), "orders.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eng := xcomponenttest.NewManual(xc.Options{Logger: quiet, DefaultHook: webhook.New(srv.URL, webhook.Options{Logger: quiet})})
	t.Cleanup(func() { _ = eng.Close(context.Background()) })
	ctx := context.Background()
	if err := eng.Load(ctx, comp); err != nil {
		t.Fatal(err)
	}
	in, err := eng.Create(ctx, xc.CreateRequest{Component: "Orders", Machine: "Order", Data: map[string]any{"draft": true, "sku": "X"}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := eng.Send(ctx, in.ID, xc.Event{Type: "RESERVE"})
	if err != nil {
		t.Fatal(err)
	}
	// The transition committed with the patched data; SHIP waits in the queue (manual mode).
	if res.NewState != "Reserved" || res.Instance.Context["reservation"] != "R-42" {
		t.Fatalf("RESERVE: %+v", res)
	}
	if _, ok := res.Instance.Context["draft"]; ok {
		t.Fatalf("draft not deleted: %v", res.Instance.Context)
	}
	if got, _ := eng.Get(ctx, in.ID); got.CurrentState != "Reserved" {
		t.Fatalf("follow-up processed before the commit returned: %s", got.CurrentState)
	}
	if err := eng.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := eng.Get(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.CurrentState != "Shipped" || got.Context["carrier"] != "ups" || got.Context["reservation"] != "R-42" || got.Context["sku"] != "X" {
		t.Fatalf("after settle: %+v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 || calls[0]["hook"] != "triggeredMethod" || calls[0]["instanceId"] != in.ID {
		t.Fatalf("endpoint calls: %v", calls)
	}
}
