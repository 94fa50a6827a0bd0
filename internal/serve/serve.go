// Package serve wires the processes of `xcomponent serve` (the store, the engine with its
// components, the HTTP API and dashboard: Serve) and `xcomponent dashboard` (the standalone
// dashboard of the distributed mode, over the broker: Dashboard).
package serve

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/internal/redact"
	"github.com/xcomponent/xcomponent/internal/telemetry"
	"github.com/xcomponent/xcomponent/internal/webhook"
	"github.com/xcomponent/xcomponent/server"
	"github.com/xcomponent/xcomponent/store/maintenance"
	"github.com/xcomponent/xcomponent/store/storeurl"
)

// Config of `xcomponent serve`.
type Config struct {
	// Files are the component YAML files to load.
	Files []string
	// Store is a store spec (memory, sqlite:PATH, postgres://…); see storeurl.
	Store string
	// Bind and Port say where the HTTP API listens.
	Bind string
	Port int
	// Tokens configure auth; none means open.
	Tokens server.Tokens
	// MaxBodyBytes limits request bodies (0: the API's default, 1 MiB).
	MaxBodyBytes int64
	// CORSOrigins allowed; none: CORS off.
	CORSOrigins []string
	// HTTP are the connection settings (allowed hosts, timeouts, connection cap).
	HTTP server.Transport
	// ShutdownTimeout bounds the graceful stop (default 10s).
	ShutdownTimeout time.Duration
	// Name identifies this process in /api/runtimes.
	Name   string
	Logger *slog.Logger
	// Ready, when set, is called with the listening address once the API serves.
	Ready func(addr net.Addr)
	// HooksURL, when set, is the HTTP endpoint that serves every hook method (see package
	// webhook); HooksHeaders are sent with each call (e.g. Authorization).
	HooksURL     string
	HooksHeaders http.Header
	// TracerProvider, when set, traces requests, transitions, hooks and commits
	// (OpenTelemetry); nil: no tracing.
	TracerProvider trace.TracerProvider
	// InboxRetention is how long the SQL stores keep the ids of applied commands before the
	// periodic pruning forgets them (maintenance.DefaultInboxRetention when 0, never pruned
	// when negative); see package store/maintenance.
	InboxRetention time.Duration
}

// LoadComponents loads component files and checks them together; warnings are logged.
func LoadComponents(files []string, log *slog.Logger) ([]*component.Component, error) {
	var comps []*component.Component
	for _, f := range files {
		c, err := component.LoadFile(f)
		if err != nil {
			return nil, err
		}
		for _, w := range c.Warnings {
			log.Warn("component warning", "problem", w.String())
		}
		comps = append(comps, c)
	}
	for _, p := range component.ValidateSet(comps) {
		if p.Severity == component.SeverityError {
			return nil, fmt.Errorf("%s", p.String())
		}
		log.Warn("component warning", "problem", p.String())
	}
	return comps, nil
}

// Serve runs `xcomponent serve` until ctx is cancelled (SIGINT/SIGTERM), then stops
// gracefully: no new requests, in-flight work finished, store closed.
func Serve(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	comps, err := LoadComponents(cfg.Files, log)
	if err != nil {
		return err
	}
	if cfg.HooksURL != "" {
		if err := webhook.CheckURL(cfg.HooksURL); err != nil {
			return err
		}
	}
	st, err := storeurl.Open(ctx, cfg.Store, storeurl.WithLogger(log))
	if err != nil {
		return fmt.Errorf("open store %s: %w", redact.URL(cfg.Store), err)
	}
	defer st.Close()
	log.Info("store open", "store", redact.URL(cfg.Store))
	// Stopped (and waited for) before the store closes: defers run last-in first-out.
	mctx, stopMaintenance := context.WithCancel(ctx)
	maintained := maintenance.Start(mctx, st, maintenance.Options{InboxRetention: cfg.InboxRetention, Logger: log})
	defer func() { stopMaintenance(); <-maintained }()

	metrics := server.NewMetrics()
	opts := xc.Options{Store: st, Logger: log, Observer: metrics, Tracer: telemetry.Engine(cfg.TracerProvider)}
	if cfg.HooksURL != "" {
		opts.DefaultHook = webhook.New(cfg.HooksURL, webhook.Options{Headers: cfg.HooksHeaders, Logger: log})
		log.Info("hooks endpoint", "url", redact.URL(cfg.HooksURL), "headers", len(cfg.HooksHeaders))
	}
	eng := xc.New(opts)
	for _, c := range comps {
		if err := eng.Load(ctx, c); err != nil {
			_ = eng.Close(context.Background())
			return err
		}
		log.Info("component loaded", "component", c.Name, "machines", len(c.StateMachines))
	}

	addr := net.JoinHostPort(cfg.Bind, strconv.Itoa(cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = eng.Close(context.Background())
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	if len(cfg.Tokens) == 0 && !isLoopback(cfg.Bind) {
		log.Warn("auth is off and the API listens beyond this machine: anyone who can reach it can drive instances; set XCOMPONENT_AUTH_TOKENS", "addr", ln.Addr().String())
	}
	name := cfg.Name
	if name == "" {
		name = "serve"
	}
	log.Info("serving", "addr", "http://"+ln.Addr().String(), "components", len(comps), "auth", len(cfg.Tokens) > 0)
	if cfg.Ready != nil {
		cfg.Ready(ln.Addr())
	}
	err = server.Serve(ctx, ln, eng, server.Options{Tokens: cfg.Tokens, Logger: log, Metrics: metrics,
		MaxBodyBytes: cfg.MaxBodyBytes, CORSOrigins: cfg.CORSOrigins, Name: name, HTTP: cfg.HTTP,
		DatabaseType: storeurl.Kind(cfg.Store), ShutdownTimeout: cfg.ShutdownTimeout, Trace: telemetry.HTTPTrace(cfg.TracerProvider)})
	log.Info("shutting down")
	timeout := cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if cerr := eng.Close(sctx); cerr != nil {
		log.Warn("engine close", "err", cerr)
	}
	log.Info("stopped")
	return err
}

func isLoopback(bind string) bool {
	if bind == "localhost" {
		return true
	}
	ip := net.ParseIP(bind)
	return ip != nil && ip.IsLoopback()
}
