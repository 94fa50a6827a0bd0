package httpapi

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMetricsLabelsBounded: client-chosen methods and paths never become metric labels
// (issue 9, hole 1): 200 invented methods and paths leave /metrics with the known methods,
// OTHER and route patterns only.
func TestMetricsLabelsBounded(t *testing.T) {
	e := approvalEnv(t, Options{})
	for i := range 200 {
		e.do(req{method: fmt.Sprintf("X%06d", i), path: fmt.Sprintf("/nope/%d", i)})
		e.get(fmt.Sprintf("/api/components/Unknown%d", i))
	}
	text := string(e.must(e.get("/metrics"), 200).raw)
	if strings.Contains(text, "X000") || strings.Contains(text, "/nope/") || strings.Contains(text, "Unknown1") {
		t.Fatalf("client-chosen values in metric labels")
	}
	if !strings.Contains(text, `method="OTHER"`) {
		t.Errorf("invented methods not counted as OTHER")
	}
	if n := strings.Count(text, "http_requests_total{"); n > 10 {
		t.Errorf("%d http_requests_total series, want a handful", n)
	}
}

// TestWritesRequireJSON: a web page can POST text/plain, form or typeless bodies without a
// CORS preflight; only application/json is accepted (issue 9, hole 3).
func TestWritesRequireJSON(t *testing.T) {
	e := approvalEnv(t, Options{})
	body := `{"context":{"requestId":"EXP-1","employeeName":"ann","amount":10,"category":"travel"}}`
	for _, ct := range []string{"text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""} {
		r := e.do(req{method: "POST", path: "/api/components/ApprovalWorkflow/instances", body: body, header: map[string]string{"Content-Type": ct}})
		if r.status != 415 || !strings.Contains(r.str("error"), "application/json") {
			t.Errorf("Content-Type %q: %d %s, want 415 naming application/json", ct, r.status, r.raw)
		}
	}
	if n := len(e.get("/api/instances").list("instances")); n != 0 {
		t.Fatalf("%d instances created by refused requests", n)
	}
	e.must(e.do(req{method: "POST", path: "/api/components/ApprovalWorkflow/instances", body: body,
		header: map[string]string{"Content-Type": "application/json; charset=utf-8"}}), 201)
}

// TestHostAndOriginChecked: DNS rebinding (a Host of the attacker's name) and cross-origin
// writes are refused (issue 9, hole 3).
func TestHostAndOriginChecked(t *testing.T) {
	e := approvalEnv(t, Options{})
	for _, host := range []string{"attacker.example", "attacker.example:3000", "localhost.attacker.example"} {
		r := e.do(req{method: "GET", path: "/api/components", header: map[string]string{"Host": host}})
		if r.status != 403 || !strings.Contains(r.str("error"), "allowed-host") {
			t.Errorf("Host %s: %d %s, want 403 naming --allowed-host", host, r.status, r.raw)
		}
	}
	for _, host := range []string{"localhost:3000", "127.0.0.1:3000", "[::1]:3000", "app.localhost"} {
		e.must(e.do(req{method: "GET", path: "/api/components", header: map[string]string{"Host": host}}), 200)
	}
	body := map[string]any{"context": expense("EXP-1", 10)}
	r := e.do(req{method: "POST", path: "/api/components/ApprovalWorkflow/instances", body: body,
		header: map[string]string{"Origin": "http://evil.example"}})
	if r.status != 403 || !strings.Contains(r.str("error"), "cors-origin") {
		t.Errorf("cross-origin write: %d %s, want 403", r.status, r.raw)
	}
	// Same origin (the dashboard's own page) and no Origin (curl) pass.
	e.must(e.do(req{method: "POST", path: "/api/components/ApprovalWorkflow/instances", body: body,
		header: map[string]string{"Origin": e.srv.URL}}), 201)
	e.must(e.post("/api/components/ApprovalWorkflow/instances", body), 201)

	// Configured names and origins.
	e = approvalEnv(t, Options{AllowedHosts: []string{"xc.example.com"}, CORSOrigins: []string{"http://ui.example"}})
	e.must(e.do(req{method: "GET", path: "/api/components", header: map[string]string{"Host": "XC.example.com:443"}}), 200)
	e.must(e.do(req{method: "POST", path: "/api/components/ApprovalWorkflow/instances", body: body,
		header: map[string]string{"Origin": "http://ui.example"}}), 201)
	e = approvalEnv(t, Options{AllowedHosts: []string{"*"}})
	e.must(e.do(req{method: "GET", path: "/api/components", header: map[string]string{"Host": "anything.example"}}), 200)
}

// transportServer serves h on 127.0.0.1 with t, until the test ends.
func transportServer(tb testing.TB, h http.Handler, t Transport) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := t.Server(h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go func() { _ = srv.Serve(t.Listener(ln)) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// closedWithin reports whether the server closes c within d (reading what it sends).
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

// TestReadAndIdleTimeouts: a body trickled in, or an idle keep-alive, does not hold a
// connection beyond the timeouts; a live stream outlives them (issue 9, hole 4).
func TestReadAndIdleTimeouts(t *testing.T) {
	e := approvalEnv(t, Options{Heartbeat: 20 * time.Millisecond})
	addr := transportServer(t, e.handler, Transport{ReadTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})

	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST /api/components/ApprovalWorkflow/instances HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	if !closedWithin(slow, 10*time.Second) {
		t.Errorf("a trickled body held the connection beyond ReadTimeout")
	}

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fmt.Fprintf(idle, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
	if !closedWithin(idle, 10*time.Second) {
		t.Errorf("an idle keep-alive connection stayed open beyond IdleTimeout")
	}

	// The stream lives on past ReadTimeout: heartbeats keep coming for 3 timeouts.
	resp, err := http.Get("http://" + addr + "/api/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start, rd := time.Now(), bufio.NewReader(resp.Body)
	for time.Since(start) < 900*time.Millisecond {
		if _, err := rd.ReadString('\n'); err != nil {
			t.Fatalf("stream cut after %v: %v", time.Since(start), err)
		}
	}
}

// TestMaxConns: connections beyond MaxConns wait until one closes (issue 9, hole 4).
func TestMaxConns(t *testing.T) {
	e := approvalEnv(t, Options{})
	addr := transportServer(t, e.handler, Transport{MaxConns: 1})
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(first, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
	if _, err := http.ReadResponse(bufio.NewReader(first), nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		r, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			r.Body.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("second connection served while the first is open (err %v)", err)
	case <-time.After(300 * time.Millisecond): // a negative check: nothing to wait on
	}
	first.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second connection not served after the first closed")
	}
}

// TestNoRedirects: paths the mux would clean (double slashes, dot segments) get a JSON 404,
// never a 307 without Location nor an open redirect (issue 9, hole 6).
func TestNoRedirects(t *testing.T) {
	e := approvalEnv(t, Options{})
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, rq := range []struct{ method, path string }{
		{"POST", "/api/instances//trigger"},
		{"GET", "//evil.com/.."},
		{"GET", "/api/components/../instances"},
		{"GET", "/api//components"},
	} {
		hr, err := http.NewRequest(rq.method, e.srv.URL+rq.path, strings.NewReader(`{"event":"X"}`))
		if err != nil {
			t.Fatal(err)
		}
		hr.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 || resp.Header.Get("Location") != "" ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || !strings.Contains(string(body), `"error"`) {
			t.Errorf("%s %s: %d Location=%q %s, want a JSON 404", rq.method, rq.path, resp.StatusCode, resp.Header.Get("Location"), body)
		}
	}
}

// TestHealthDetailsBehindAuth: with auth on, the open /health and /readyz do not print the
// driver's errors (users, databases, hosts, ports); a token shows them (issue 9, hole 12).
func TestHealthDetailsBehindAuth(t *testing.T) {
	const tok = "viewer-token-0123456789abcdef0123"
	toks, err := ParseTokens("viewer=" + tok)
	if err != nil {
		t.Fatal(err)
	}
	e := approvalEnv(t, Options{Tokens: toks})
	e.store.down.Store(true)
	for _, p := range []string{"/health", "/readyz"} {
		r := e.get(p)
		if strings.Contains(string(r.raw), errDown.Error()) || !strings.Contains(string(r.raw), "details in the log") {
			t.Errorf("%s without a token: %s", p, r.raw)
		}
		if r := e.do(req{method: "GET", path: p, token: tok}); !strings.Contains(string(r.raw), errDown.Error()) {
			t.Errorf("%s with a token lacks the details: %s", p, r.raw)
		}
	}
	if !strings.Contains(e.logs.String(), errDown.Error()) {
		t.Errorf("the details are not logged")
	}
}

// TestUppercaseIDs: an id written in uppercase names the same instance (issue 9, hole 12).
func TestUppercaseIDs(t *testing.T) {
	e := approvalEnv(t, Options{})
	id := e.create("ApprovalWorkflow", "", expense("EXP-1", 10))
	up := strings.ToUpper(id)
	e.must(e.get("/api/instances/"+up), 200)
	e.must(e.get("/api/instances/"+up+"/history"), 200)
	e.must(e.post("/api/instances/"+up+"/trigger", map[string]any{"event": "SUBMIT"}), 200)
	if n := len(e.get("/api/components/ApprovalWorkflow/instances?instanceId=" + up).list("instances")); n != 1 {
		t.Errorf("filter by uppercase instanceId: %d instances", n)
	}
}

// TestDeepJSONRefused: bodies nested deeper than MaxJSONDepth get a 400 naming the limit;
// brackets inside strings do not count (issue 9, hole 10).
func TestDeepJSONRefused(t *testing.T) {
	e := approvalEnv(t, Options{})
	nested := func(levels int) string { // the context is level 2: {"context":{...}}
		return `{"context":{"requestId":"EXP-1","employeeName":"Ada","amount":1,"category":"travel","deep":` +
			strings.Repeat(`[`, levels-2) + strings.Repeat(`]`, levels-2) + `}}`
	}
	r := e.post("/api/components/ApprovalWorkflow/instances", nested(MaxJSONDepth+1))
	if r.status != 400 || !strings.Contains(r.str("error"), "at most 64 levels") {
		t.Errorf("65 levels: %d %s, want 400 naming the limit", r.status, r.raw)
	}
	r = e.post("/api/components/ApprovalWorkflow/instances", nested(9000))
	if r.status != 400 {
		t.Errorf("9000 levels: %d %s", r.status, r.raw)
	}
	e.must(e.post("/api/components/ApprovalWorkflow/instances", nested(MaxJSONDepth)), 201)
	e.must(e.post("/api/components/ApprovalWorkflow/instances",
		`{"context":{"requestId":"EXP-2","employeeName":"Ada","amount":1,"category":"travel","note":"`+strings.Repeat(`[{\"`, 100)+`"}}`), 201)
}

// TestStreamSnapshotBounded: the connect snapshot holds at most StreamSnapshotBytes of
// instances for a client, says when it is truncated, and does not repeat publicMember
// (equal to context) (issue 9, hole 2).
func TestStreamSnapshotBounded(t *testing.T) {
	const budget = 50 << 10
	e := approvalEnv(t, Options{StreamSnapshotBytes: budget})
	for i := range 20 {
		ctx := expense(fmt.Sprintf("EXP-%d", i), 10)
		ctx["note"] = strings.Repeat("x", 10<<10)
		e.create("ApprovalWorkflow", "", ctx)
	}
	// The API shows publicMember (the machine declares publicMemberType).
	if r := e.get("/api/instances"); r.list("instances")[0].(map[string]any)["publicMember"] == nil {
		t.Fatalf("fixture: no publicMember in the API: %s", r.raw)
	}
	m := e.stream("", nil).next(t, "instances_update")
	ins, _ := m.data["instances"].([]any)
	raw, _ := json.Marshal(m.data)
	if len(raw) > budget+1024 || len(ins) == 0 || len(ins) >= 20 || m.data["truncated"] != true {
		t.Fatalf("snapshot: %d bytes, %d instances, truncated=%v; want at most %d bytes, truncated", len(raw), len(ins), m.data["truncated"], budget)
	}
	for _, in := range ins {
		if _, dup := in.(map[string]any)["publicMember"]; dup {
			t.Fatalf("publicMember repeated in the snapshot")
		}
	}
}

// TestStreamCaps: live streams are capped per client (429) and in total (503), with a clear
// message; a closed stream frees its place (issue 9, hole 2).
func TestStreamCaps(t *testing.T) {
	e := approvalEnv(t, Options{MaxStreams: 3, MaxStreamsPerClient: 2})
	first := e.stream("", nil)
	first.next(t, "components_list")
	e.stream("", nil).next(t, "components_list")
	r := e.get("/api/stream")
	if r.status != 429 || !strings.Contains(r.str("error"), "too many live streams for this client") {
		t.Fatalf("third stream of one client: %d %s, want 429", r.status, r.raw)
	}

	toks, err := ParseTokens("viewer=viewer-token-aaaaaaaaaaaaaaaa,viewer=viewer-token-bbbbbbbbbbbbbbbb")
	if err != nil {
		t.Fatal(err)
	}
	e = approvalEnv(t, Options{Tokens: toks, MaxStreams: 3, MaxStreamsPerClient: 2})
	a := map[string]string{"Authorization": "Bearer viewer-token-aaaaaaaaaaaaaaaa"}
	b := map[string]string{"Authorization": "Bearer viewer-token-bbbbbbbbbbbbbbbb"}
	e.stream("", a).next(t, "components_list")
	e.stream("", a).next(t, "components_list")
	if r := e.do(req{method: "GET", path: "/api/stream", header: a}); r.status != 429 {
		t.Fatalf("third stream of one token: %d %s", r.status, r.raw)
	}
	s := e.stream("", b)
	s.next(t, "components_list")
	r = e.do(req{method: "GET", path: "/api/stream", header: b})
	if r.status != 503 || !strings.Contains(r.str("error"), "too many live streams open") {
		t.Fatalf("stream over the total: %d %s, want 503", r.status, r.raw)
	}
	// Closing one frees its place.
	s.resp.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for e.handler.hub.count() >= 3 {
		if time.Now().After(deadline) {
			t.Fatal("closed stream not released")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
	e.stream("", b).next(t, "components_list")
}
