package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/clock"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// env is an httptest server over a real engine (memory store, fake clock, background
// processing).
type env struct {
	t       testing.TB
	eng     *xc.Engine
	clock   *clock.Fake
	store   *flakyStore
	metrics *Metrics
	srv     *httptest.Server
	handler *server
	logs    *syncBuffer
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// flakyStore is a memory store that fails on demand.
type flakyStore struct {
	*store.Memory
	down atomic.Bool
}

var errDown = errors.New("connection refused")

func (f *flakyStore) Commit(ctx context.Context, c *store.Commit) error {
	if f.down.Load() {
		return errDown
	}
	return f.Memory.Commit(ctx, c)
}

func (f *flakyStore) Search(ctx context.Context, q store.Query) ([]store.Instance, string, error) {
	if f.down.Load() {
		return nil, "", errDown
	}
	return f.Memory.Search(ctx, q)
}

func (f *flakyStore) Ping(ctx context.Context) error {
	if f.down.Load() {
		return errDown
	}
	return nil
}

func loadFixture(t testing.TB, name string) *component.Component {
	t.Helper()
	c, err := component.LoadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return c
}

func parseYAML(t testing.TB, src string) *component.Component {
	t.Helper()
	c, err := component.Parse([]byte(strings.ReplaceAll(src, "\t", "  ")), "inline.yaml")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return c
}

// newEnv starts an engine with the components and an API server over it. wrap, when not nil,
// wraps the local backend (to inject failures).
func newEnv(t testing.TB, opts Options, comps []*component.Component, wrap func(Backend) Backend) *env {
	t.Helper()
	e := &env{t: t, clock: clock.NewFake(t0), store: &flakyStore{Memory: store.NewMemory()}, logs: &syncBuffer{}}
	e.metrics = NewMetrics()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.eng = xc.New(xc.Options{Store: e.store, Clock: e.clock, Logger: quiet, Observer: e.metrics})
	ctx := context.Background()
	for _, c := range comps {
		if err := e.eng.Load(ctx, c); err != nil {
			t.Fatalf("load %s: %v", c.Name, err)
		}
	}
	var b Backend = NewLocal(e.eng, WithRuntime("test", "localhost", 3000), WithDatabaseType("memory"))
	if wrap != nil {
		b = wrap(b)
	}
	opts.Metrics = e.metrics
	opts.Logger = slog.New(slog.NewJSONHandler(e.logs, nil))
	h := New(b, opts)
	e.handler = h.(*server)
	e.srv = httptest.NewServer(h)
	t.Cleanup(func() {
		e.srv.CloseClientConnections()
		e.srv.Close()
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.eng.Close(cctx)
	})
	return e
}

func (e *env) idle() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.eng.WaitIdle(ctx); err != nil {
		e.t.Fatalf("wait idle: %v", err)
	}
}

// advance moves the fake clock (firing due timers) and waits for what they caused.
func (e *env) advance(d time.Duration) {
	e.t.Helper()
	e.clock.Advance(d)
	e.idle()
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r response) str(path ...string) string {
	v, _ := r.get(path...).(string)
	return v
}

func (r response) num(path ...string) float64 {
	v, _ := r.get(path...).(float64)
	return v
}

func (r response) list(path ...string) []any {
	v, _ := r.get(path...).([]any)
	return v
}

func (r response) get(path ...string) any {
	var cur any = r.body
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

// req describes a request: body is JSON-encoded unless it is a string or []byte.
type req struct {
	method, path string
	body         any
	token        string
	header       map[string]string
}

func (e *env) do(r req) response {
	e.t.Helper()
	var rd io.Reader
	switch b := r.body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	hr, err := http.NewRequest(r.method, e.srv.URL+r.path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil || r.method == "POST" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.header {
		if k == "Host" {
			hr.Host = v
			continue
		}
		if v == "" {
			hr.Header.Del(k)
		} else {
			hr.Header.Set(k, v)
		}
	}
	resp, err := e.srv.Client().Do(hr)
	if err != nil {
		e.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read: %v", r.method, r.path, err)
	}
	out := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			e.t.Fatalf("%s %s: answer is not a JSON object: %v: %s", r.method, r.path, err, raw)
		}
	}
	return out
}

func (e *env) get(path string) response { return e.do(req{method: "GET", path: path}) }

func (e *env) post(path string, body any) response {
	return e.do(req{method: "POST", path: path, body: body})
}

// must checks the status of an answer.
func (e *env) must(r response, status int) response {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	return r
}

// create creates an instance through the API and returns its id.
func (e *env) create(comp, machine string, ctx map[string]any) string {
	e.t.Helper()
	r := e.must(e.post("/api/components/"+comp+"/instances", map[string]any{"machineName": machine, "context": ctx}), 201)
	e.idle()
	return r.str("instanceId")
}

// send sends an event through the API and checks the answer's status.
func (e *env) send(comp, id, typ string, payload map[string]any, status int) response {
	e.t.Helper()
	r := e.must(e.post("/api/components/"+comp+"/instances/"+id+"/events", map[string]any{"type": typ, "payload": payload}), status)
	e.idle()
	return r
}

func (e *env) state(id string) string {
	e.t.Helper()
	return e.must(e.get("/api/instances/"+id), 200).str("currentState")
}

// sse is a stream client: it parses messages into a channel.
type sse struct {
	resp *http.Response
	msgs chan sseMsg
	done chan struct{} // closed when the stream ends
}

type sseMsg struct {
	event string
	data  map[string]any
}

func (e *env) stream(query string, header map[string]string) *sse {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	hr, err := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/stream"+query, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		hr.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(hr)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		e.t.Fatalf("stream: status %d: %s", resp.StatusCode, b)
	}
	s := &sse{resp: resp, msgs: make(chan sseMsg, 1024), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		var ev string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case strings.HasPrefix(line, "event: "):
				ev = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				var m map[string]any
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &m)
				select {
				case s.msgs <- sseMsg{event: ev, data: m}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return s
}

// next waits for the next message of type event (skipping others).
func (s *sse) next(t *testing.T, event string) sseMsg {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-s.msgs:
			if m.event == event {
				return m
			}
		case <-s.done:
			t.Fatalf("stream ended while waiting for %s", event)
		case <-timeout:
			t.Fatalf("no %s message within 10s", event)
		}
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
