package serve

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/xcomponent/xcomponent/bus/rabbitmq"
	"github.com/xcomponent/xcomponent/internal/busbackend"
	"github.com/xcomponent/xcomponent/internal/httpapi"
	"github.com/xcomponent/xcomponent/internal/redact"
	"github.com/xcomponent/xcomponent/internal/telemetry"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/postgres"
)

// DashboardConfig configures the standalone distributed dashboard (`xcomponent dashboard`).
type DashboardConfig struct {
	// BrokerURL is the RabbitMQ URL.
	BrokerURL string
	// DatabaseURL, optional, is the PostgreSQL database the runtimes share (postgres://…).
	DatabaseURL string
	// Bind and Port say where the HTTP API listens.
	Bind string
	Port int
	// Tokens configure auth; none means open.
	Tokens httpapi.Tokens
	// MaxBodyBytes limits request bodies (0: 1 MiB).
	MaxBodyBytes int64
	// CORSOrigins allowed; none: CORS off.
	CORSOrigins []string
	// HTTP are the connection settings (allowed hosts, timeouts, connection cap).
	HTTP httpapi.Transport
	// ShutdownTimeout bounds the graceful stop (default 10s).
	ShutdownTimeout time.Duration
	// LostAfter: a runtime silent that long is shown as lost (default 60s).
	LostAfter time.Duration
	// CommandTimeout bounds the wait for a runtime's answer to a command (default 10s).
	CommandTimeout time.Duration
	Logger         *slog.Logger
	// TracerProvider, when set, traces the API's requests; the commands they publish carry
	// the trace context (W3C) to the runtimes. nil: no tracing.
	TracerProvider trace.TracerProvider
	// Ready, when set, is called with the listening address once the API serves.
	Ready func(addr net.Addr)
}

// dashboardPrefetch is the dashboard's window of unacknowledged deliveries per subscription.
const dashboardPrefetch = 1024

// Dashboard runs the standalone dashboard until ctx is cancelled, then stops gracefully.
func Dashboard(ctx context.Context, cfg DashboardConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	// After a reconnection the runtimes are asked to announce themselves again.
	var backend atomic.Pointer[busbackend.Backend]
	// Its subscriptions are fan-out queues that receive every runtime event and reply (two
	// messages per event): a wide window, so that the flow does not wait on acknowledgement
	// round trips through a busy broker (the bus's 16 closed whenever the broker took more
	// than 16 ms to process one at 1,000 events/s; fan-out subscriptions now take at least 256).
	b, err := rabbitmq.New(rabbitmq.Options{URL: cfg.BrokerURL, Name: "xcomponent-dashboard", Logger: log, Prefetch: dashboardPrefetch,
		OnStateChange: func(connected bool) {
			if be := backend.Load(); be != nil && connected {
				be.BrokerReconnected()
			}
		}})
	if err != nil {
		return err
	}
	defer func() { _ = b.Close() }()
	log.Info("connecting to the broker", "broker", redact.URL(cfg.BrokerURL))
	var st store.Store
	if cfg.DatabaseURL != "" {
		pg, err := postgres.Open(ctx, cfg.DatabaseURL, postgres.WithLogger(log))
		if err != nil {
			return err
		}
		defer func() { _ = pg.Close() }()
		st = pg
		log.Info("database open", "database", redact.URL(cfg.DatabaseURL))
	} else {
		log.Warn("no DATABASE_URL: history, audit trail and completed instances come from what this dashboard saw on the broker since it started")
	}
	// A broker that is not there within a few seconds does not keep the dashboard from
	// serving: /health and /readyz say it is missing, and it subscribes once the broker is up.
	nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	be, err := busbackend.New(nctx, busbackend.Config{Bus: b, BrokerURL: cfg.BrokerURL, Store: st,
		LostAfter: cfg.LostAfter, CommandTimeout: cfg.CommandTimeout, Logger: log})
	cancel()
	if err != nil {
		return err
	}
	defer func() { _ = be.Close() }()
	backend.Store(be)

	addr := net.JoinHostPort(cfg.Bind, strconv.Itoa(cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	if len(cfg.Tokens) == 0 && !isLoopback(cfg.Bind) {
		log.Warn("auth is off and the API listens beyond this machine: anyone who can reach it can drive instances; set XCOMPONENT_AUTH_TOKENS", "addr", ln.Addr().String())
	}
	closing := make(chan struct{})
	h := httpapi.New(be, httpapi.Options{Tokens: cfg.Tokens, Logger: log, MaxBodyBytes: cfg.MaxBodyBytes,
		CORSOrigins: cfg.CORSOrigins, AllowedHosts: httpapi.HostsFor(cfg.Bind, cfg.HTTP.AllowedHosts),
		MaxStreams: cfg.HTTP.MaxStreams, MaxStreamsPerClient: cfg.HTTP.MaxStreamsPerClient,
		StreamSnapshotBytes: cfg.HTTP.StreamSnapshotBytes, Closing: closing, Trace: telemetry.HTTPTrace(cfg.TracerProvider)})
	srv := cfg.HTTP.Server(h, log)
	ln = cfg.HTTP.Listener(ln)
	srv.RegisterOnShutdown(func() { close(closing) })
	log.Info("dashboard serving", "url", "http://"+ln.Addr().String(), "auth", len(cfg.Tokens) > 0)
	if cfg.Ready != nil {
		cfg.Ready(ln.Addr())
	}
	err = httpapi.ServeUntil(ctx, srv, ln, cfg.ShutdownTimeout, func() { log.Info("shutting down") })
	log.Info("stopped")
	return err
}
