package httpapi

import (
	"context"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xcomponent/xcomponent/internal/dashboard"
	"github.com/xcomponent/xcomponent/internal/redact"
)

// Options configure the HTTP layer. The zero value is usable: open API (no tokens), no CORS,
// 1 MiB bodies, a private Metrics.
type Options struct {
	// Tokens enables auth: every /api call and the stream need a bearer token of one of these
	// roles. Empty: open, and the actor recorded with commands is "anonymous".
	Tokens Tokens
	// CORSOrigins lists the origins allowed to call the API from a browser ("*" for any).
	// Empty: no CORS headers.
	CORSOrigins []string
	// AllowedHosts lists the host names accepted in the Host header (port ignored, case
	// insensitive), besides IP literals, localhost and *.localhost which are always accepted;
	// "*" accepts any. Checking it defeats DNS rebinding (a page of the attacker's domain
	// resolved to this address). See HostsFor.
	AllowedHosts []string
	// Logger receives one line per request; slog.Default() when nil.
	Logger *slog.Logger
	// Metrics is served at /metrics; pass the same value to the engine's Options.Observer.
	// NewMetrics() when nil (then the engine counters stay at zero).
	Metrics *Metrics
	// MaxBodyBytes bounds request bodies (default 1 MiB); larger ones get 413.
	MaxBodyBytes int64
	// RequestTimeout bounds each call to the backend (default 30 s); then 504.
	RequestTimeout time.Duration
	// Heartbeat is the interval of the stream's keep-alive comments (default 15 s).
	Heartbeat time.Duration
	// StreamBuffer is how many messages a stream client may lag behind before it is dropped
	// (default 256).
	StreamBuffer int
	// StreamWriteTimeout bounds one write to a stream client (default 10 s); a client that
	// does not read is dropped.
	StreamWriteTimeout time.Duration
	// MaxStreams caps the live streams open at once (default 256); beyond, 503.
	MaxStreams int
	// MaxStreamsPerClient caps the live streams of one token, or of one client address when
	// auth is off (default 16); beyond, 429.
	MaxStreamsPerClient int
	// StreamSnapshotBytes bounds the instances sent to one client on connect (default
	// 4 MiB); a component whose instances do not fit is sent truncated ("truncated": true).
	StreamSnapshotBytes int
	// Closing, when closed, ends the live streams (at shutdown: they never go idle, while
	// ordinary requests are left to finish).
	Closing <-chan struct{}
	// Trace, when set, is called at the start of each request (tracing: telemetry.HTTPTrace);
	// it returns the request to serve (its context carrying the request's span) and a function
	// called when the request is done, with its route pattern and status.
	Trace func(r *http.Request) (*http.Request, func(route string, status int))
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.StreamBuffer <= 0 {
		o.StreamBuffer = 256
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = 256
	}
	if o.MaxStreamsPerClient <= 0 {
		o.MaxStreamsPerClient = 16
	}
	if o.StreamSnapshotBytes <= 0 {
		o.StreamSnapshotBytes = 4 << 20
	}
	if o.StreamWriteTimeout <= 0 {
		o.StreamWriteTimeout = 10 * time.Second
	}
}

// server is the http.Handler returned by New.
type server struct {
	b       Backend
	opts    Options
	log     *slog.Logger
	metrics *Metrics
	auth    *authenticator
	// mux routes requests: every route of the table, then a catch-all for what matches none.
	mux *http.ServeMux
	// table holds the routes alone: it tells a 404 from a 405 (with its Allow header).
	table  *http.ServeMux
	routes map[string]route // by pattern
	hub    *hub
	promh  http.Handler
	ui     http.Handler // the dashboard's static files
	// snapshots bounds the stream snapshots built at once (each holds a page of instances).
	snapshots chan struct{}
	// bufs are the buffers answers are encoded into.
	bufs bufPool
}

// route is one endpoint.
type route struct {
	method, path string
	handle       func(w http.ResponseWriter, r *http.Request) error
	// open routes need no token (health, metrics).
	open bool
	// stream routes are long-lived (excluded from latency metrics).
	stream bool
}

func (rt route) pattern() string { return rt.method + " " + rt.path }

// New returns the handler of the API, the stream, health and metrics endpoints, over b.
// Long-lived streams end when the request context is cancelled: give the http.Server a
// BaseContext that is cancelled at shutdown.
func New(b Backend, opts Options) http.Handler {
	opts.defaults()
	s := &server{
		b: b, opts: opts, log: opts.Logger, metrics: opts.Metrics,
		auth: newAuthenticator(opts.Tokens), mux: http.NewServeMux(), table: http.NewServeMux(), routes: map[string]route{},
	}
	s.hub = newHub(b, opts.StreamBuffer, s.log)
	s.hub.maxTotal, s.hub.maxPerKey = opts.MaxStreams, opts.MaxStreamsPerClient
	s.snapshots = make(chan struct{}, 4)
	s.metrics.setSource(b.Stats, 5*time.Second)
	s.promh = s.metrics.Handler()
	s.ui = dashboard.Handler()
	for _, rt := range s.routeTable() {
		s.routes[rt.pattern()] = rt
		h := s.endpoint(rt)
		s.mux.HandleFunc(rt.pattern(), h)
		s.table.HandleFunc(rt.pattern(), h)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h, pattern := s.table.Handler(r)
		if _, known := s.routes[pattern]; pattern != "" && known {
			h.ServeHTTP(w, r) // cannot happen: the routes are registered on mux too
			return
		}
		s.routeError(w, r, h)
	})
	return s
}

// routeTable lists every endpoint; the OpenAPI document is checked against it.
func (s *server) routeTable() []route {
	return []route{
		{method: "GET", path: "/health", handle: s.handleHealth, open: true},
		{method: "GET", path: "/healthz", handle: s.handleHealthz, open: true},
		{method: "GET", path: "/readyz", handle: s.handleReadyz, open: true},
		{method: "GET", path: "/metrics", handle: s.handleMetrics, open: true},
		{method: "GET", path: "/api/openapi.json", handle: s.handleOpenAPI},
		{method: "GET", path: "/api/components", handle: s.handleComponents},
		{method: "GET", path: "/api/components/{component}", handle: s.handleComponent},
		{method: "GET", path: "/api/components/{component}/machines", handle: s.handleMachines},
		{method: "GET", path: "/api/components/{component}/instances", handle: s.handleComponentInstances},
		{method: "POST", path: "/api/components/{component}/instances", handle: s.handleCreate},
		{method: "POST", path: "/api/components/{component}/instances/{id}/events", handle: s.handleComponentEvent},
		{method: "POST", path: "/api/components/{component}/instances/{id}/terminate", handle: s.handleTerminate},
		{method: "POST", path: "/api/components/{component}/instances/{id}/retry", handle: s.handleRetry},
		{method: "POST", path: "/api/components/{component}/broadcast", handle: s.handleBroadcast},
		{method: "POST", path: "/api/instances/{id}/trigger", handle: s.handleTrigger},
		{method: "GET", path: "/api/instances", handle: s.handleInstances},
		{method: "GET", path: "/api/instances/{id}", handle: s.handleInstance},
		{method: "GET", path: "/api/instances/{id}/history", handle: s.handleHistory},
		{method: "GET", path: "/api/instances/{id}/history/export", handle: s.handleHistoryExport},
		{method: "GET", path: "/api/instances/{id}/sequence", handle: s.handleSequence},
		{method: "GET", path: "/api/history/instances", handle: s.handleHistoryInstances},
		{method: "GET", path: "/api/history/instances/{id}/events", handle: s.handleHistoryEvents},
		{method: "GET", path: "/api/history/correlated/{id}", handle: s.handleCorrelated},
		{method: "GET", path: "/api/runtimes", handle: s.handleRuntimes},
		{method: "GET", path: "/api/counts", handle: s.handleCounts},
		{method: "GET", path: "/api/session", handle: s.handleSession},
		{method: "POST", path: "/api/events", handle: s.handleBulkEvents},
		{method: "GET", path: "/api/machines/{machine}/diagram", handle: s.handleDiagram},
		{method: "GET", path: "/api/stream", handle: s.handleStream, stream: true},
	}
}

// endpoint is the handler of one route: checks of writes, auth, then the endpoint; errors
// are written by writeError, the one place where they become statuses.
func (s *server) endpoint(rt route) http.HandlerFunc {
	pattern := rt.pattern()
	return func(w http.ResponseWriter, r *http.Request) {
		ri := info(w)
		ri.route = pattern
		if rt.method == http.MethodPost {
			if err := s.checkWrite(r); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		if !rt.open {
			who, err := s.authorize(r)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			ri.who, ri.authd = who, true
		}
		if err := rt.handle(w, r); err != nil {
			s.writeError(w, r, err)
		}
	}
}

// reqInfo is what the request log needs from inner layers.
type reqInfo struct {
	route string
	who   principal
	authd bool
}

// info is the reqInfo of the request w answers (ServeHTTP's statusWriter).
func info(w http.ResponseWriter) *reqInfo {
	if sw, ok := w.(*statusWriter); ok {
		return &sw.ri
	}
	return &reqInfo{}
}

// ServeHTTP is the middleware chain: recovery, request log and metrics, CORS, routing with
// JSON 404/405, auth, then the endpoint.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var endTrace func(string, int)
	if s.opts.Trace != nil {
		r, endTrace = s.opts.Trace(r)
	}
	sw := &statusWriter{ResponseWriter: w}
	ri := &sw.ri
	defer func() {
		v := recover()
		if v != nil && v != http.ErrAbortHandler {
			s.log.Error("http handler panic", "method", r.Method, "path", r.URL.Path, "panic", v)
			if !sw.wrote {
				_ = writeJSON(sw, http.StatusInternalServerError, errorBody{Error: "internal error"})
			}
		}
		s.logRequest(r, sw, ri, time.Since(start))
		if endTrace != nil {
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			endTrace(ri.route, status)
		}
		if v == http.ErrAbortHandler {
			panic(v)
		}
	}()
	if !s.hostAllowed(r.Host) {
		_ = writeJSON(sw, http.StatusForbidden, errorBody{Error: "host " + strconv.Quote(truncate(r.Host, 128)) +
			" not allowed: add it with --allowed-host (the API accepts IP addresses and localhost names)"})
		return
	}
	if s.cors(sw, r) {
		return
	}
	if p := r.URL.Path; p != cleanPath(p) {
		// The mux would redirect to the cleaned path (a 307 without Location for a POST,
		// an open redirect for "//host/.."): such paths are simply not endpoints.
		writeJSON(sw, http.StatusNotFound, errorBody{Error: "no such endpoint: " + r.Method + " " +
			truncate(p, 256) + " (paths have no empty or dot segments)"})
		return
	}
	// The dashboard's static files (GET / and /assets/...) are outside the route table and the
	// OpenAPI document, and need no token: the page asks for one when the API answers 401.
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && dashboard.IsPath(r.URL.Path) {
		ri.route = "GET /assets/"
		if r.URL.Path == "/" {
			ri.route = "GET /"
		}
		s.ui.ServeHTTP(sw, r)
		return
	}
	s.mux.ServeHTTP(sw, r)
}

// routeError answers an unknown path (404) or method (405, with Allow) in JSON; h is the
// table's handler for r (its own 404 or 405).
func (s *server) routeError(w http.ResponseWriter, r *http.Request, h http.Handler) {
	c := &captureWriter{header: http.Header{}}
	h.ServeHTTP(c, r)
	if allow := c.header.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
	}
	status := c.status
	if status == 0 || status == http.StatusOK {
		status = http.StatusNotFound
	}
	msg := "no such endpoint: " + r.Method + " " + r.URL.Path
	if status == http.StatusMethodNotAllowed {
		msg = "method " + r.Method + " not allowed on " + r.URL.Path
	}
	writeJSON(w, status, errorBody{Error: msg})
}

// authorize checks the bearer token (header, or ?token= for the stream, which EventSource
// cannot give headers) and the role: viewers may not POST.
func (s *server) authorize(r *http.Request) (principal, error) {
	if s.auth.open() {
		return anonymous, nil
	}
	tok := bearer(r.Header.Get("Authorization"))
	if tok == "" && r.URL.Path == "/api/stream" {
		tok = r.URL.Query().Get("token")
	}
	if tok == "" {
		return principal{}, &apiError{status: http.StatusUnauthorized, msg: "missing bearer token (Authorization: Bearer <token>)"}
	}
	who, ok := s.auth.check(tok)
	if !ok {
		return principal{}, &apiError{status: http.StatusUnauthorized, msg: "invalid token"}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && who.role != RoleOperator {
		return principal{}, &apiError{status: http.StatusForbidden, msg: "role " + string(who.role) + " may not " + r.Method + " " + r.URL.Path + ": operator role required"}
	}
	return who, nil
}

// actor is the name recorded with the commands of the request w answers.
func actor(w http.ResponseWriter) string {
	if ri := info(w); ri.authd {
		return ri.who.actor
	}
	return anonymous.actor
}

// cors sets the CORS headers for allowed origins and answers preflights; it reports whether
// the request was fully handled.
func (s *server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || len(s.opts.CORSOrigins) == 0 {
		return false
	}
	if !slices.Contains(s.opts.CORSOrigins, "*") && !slices.Contains(s.opts.CORSOrigins, origin) {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, "+HeaderIdempotencyKey)
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	h.Set("Access-Control-Expose-Headers", HeaderIdempotentReplayed)
	return false
}

// cleanPath is p as the mux would clean it: rooted, no empty or dot segments, the final
// slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// hostAllowed reports whether the Host header names this server (see Options.AllowedHosts).
func (s *server) hostAllowed(host string) bool {
	if slices.Contains(s.opts.AllowedHosts, "*") {
		return true
	}
	name := hostName(host)
	if name == "" {
		return false
	}
	if net.ParseIP(name) != nil || name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return true
	}
	for _, a := range s.opts.AllowedHosts {
		if hostName(a) == name {
			return true
		}
	}
	return false
}

// hostName is the lowercase host of a Host header or URL host, without port, brackets or
// final dot.
func hostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	return strings.ToLower(host)
}

// HostsFor is the Options.AllowedHosts of a server listening on bind with the names given
// by the operator: those names when any, else any host when bind is every interface (its
// names are unknown; the Origin check still guards writes), else none beyond IP literals
// and localhost names.
func HostsFor(bind string, configured []string) []string {
	if len(configured) > 0 {
		return configured
	}
	if ip := net.ParseIP(strings.Trim(bind, "[]")); bind == "" || (ip != nil && ip.IsUnspecified()) {
		return []string{"*"}
	}
	if net.ParseIP(strings.Trim(bind, "[]")) == nil && bind != "localhost" {
		return []string{bind} // a host name to bind to names this server
	}
	return nil
}

// checkWrite refuses the writes a web page of another site could send without a CORS
// preflight: bodies that are not application/json (text/plain, forms and typeless bodies
// are "simple requests"), and an Origin that is neither this server nor an allowed CORS
// origin.
func (s *server) checkWrite(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if !isJSONContentType(ct) {
		got := "no Content-Type"
		if ct != "" {
			got = truncate(ct, 128)
		}
		return &apiError{status: http.StatusUnsupportedMediaType,
			msg: "request body must be sent with Content-Type: application/json, not " + got}
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil // not a browser, or a same-origin GET-like navigation
	}
	if slices.Contains(s.opts.CORSOrigins, "*") || slices.Contains(s.opts.CORSOrigins, origin) {
		return nil
	}
	if u, err := url.Parse(origin); err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host) {
		return nil
	}
	return &apiError{status: http.StatusForbidden,
		msg: "cross-origin write from " + strconv.Quote(truncate(origin, 128)) + " refused: allow it with --cors-origin"}
}

// isJSONContentType reports whether a Content-Type is application/json or a +json type,
// parameters allowed; the usual spellings are recognised without parsing.
func isJSONContentType(ct string) bool {
	switch ct {
	case "application/json", "application/json; charset=utf-8", "application/json;charset=utf-8", "application/json; charset=UTF-8":
		return true
	case "":
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// logRequest writes the request log line and the HTTP metrics. The query string is not
// logged: it may hold the stream's token.
func (s *server) logRequest(r *http.Request, sw *statusWriter, ri *reqInfo, d time.Duration) {
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	rt := s.routes[ri.route]
	s.metrics.observeHTTP(r.Method, ri.route, status, d, rt.stream)
	who := "-"
	if ri.authd {
		who = ri.who.actor
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	if !s.log.Enabled(r.Context(), level) {
		return
	}
	s.log.LogAttrs(r.Context(), level, "http request",
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("route", ri.route),
		slog.Int("status", status), slog.Duration("duration", d), slog.String("actor", who),
		slog.Int64("bytes", sw.bytes))
}

// statusWriter records the status and size of a response; it keeps Flush and the
// ResponseController working through Unwrap.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
	ri     reqInfo
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// captureWriter swallows the response of the mux's 404/405 handlers.
type captureWriter struct {
	header http.Header
	status int
}

func (c *captureWriter) Header() http.Header         { return c.header }
func (c *captureWriter) Write(p []byte) (int, error) { return len(p), nil }
func (c *captureWriter) WriteHeader(code int)        { c.status = code }

// ---- health and metrics ----

func (s *server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	h := s.b.Health(ctx)
	if h.Components == nil {
		h.Components = []string{}
	}
	h.Broker = redact.URL(h.Broker)
	if !s.details(r) {
		// Open endpoint with auth on: the driver's errors name users, databases, hosts and
		// ports; they go to the log, the answer says only what is wrong.
		for i, p := range h.Problems {
			if what, _, ok := strings.Cut(p, ": "); ok {
				s.log.Warn("health problem", "problem", p)
				h.Problems[i] = what + ": unavailable (details in the log, or with a token)"
			}
		}
		if h.Broker != "none" && h.Broker != "" {
			h.Broker = "configured"
		}
	}
	return writeJSON(w, http.StatusOK, h)
}

// details reports whether an answer of an open endpoint may include infrastructure details:
// when auth is off (everything is open), or the request carries a valid token.
func (s *server) details(r *http.Request) bool {
	if s.auth.open() {
		return true
	}
	_, ok := s.auth.check(bearer(r.Header.Get("Authorization")))
	return ok
}

func (s *server) handleHealthz(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) handleReadyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.b.Ready(ctx); err != nil {
		msg := err.Error()
		if !s.details(r) {
			s.log.Warn("not ready", "err", err)
			msg = "not ready (details in the log, or with a token)"
		}
		return writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": msg})
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *server) handleMetrics(w http.ResponseWriter, r *http.Request) error {
	s.promh.ServeHTTP(w, r)
	return nil
}

func (s *server) handleOpenAPI(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(openAPIDoc)))
	_, err := io.WriteString(w, openAPIDoc)
	return err
}

// ctx bounds a backend call by the request timeout.
func (s *server) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.opts.RequestTimeout)
}
