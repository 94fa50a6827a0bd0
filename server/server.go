// Package server serves the REST API, live stream (SSE), health and metrics of an engine: what
// `xcomponent serve` runs, for a Go program that embeds the runtime with its own hooks.
//
//	metrics := server.NewMetrics()
//	eng := xcomponent.New(xcomponent.Options{Store: st, Observer: metrics})
//	eng.Handle("checkStock", checkStock)
//	_ = eng.Load(ctx, comp)
//	err := server.ListenAndServe(ctx, ":3000", eng, server.Options{Metrics: metrics})
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/internal/httpapi"
)

// Metrics are the Prometheus metrics of the API and the engine. Pass the same value to the
// engine (xcomponent.Options.Observer) and to Options.Metrics.
type Metrics = httpapi.Metrics

// NewMetrics returns metrics on a private registry.
func NewMetrics() *Metrics { return httpapi.NewMetrics() }

// Tokens are the API's bearer tokens by role ("viewer": read; "operator": read, create, send).
type Tokens = httpapi.Tokens

// ParseTokens reads "operator=T1,viewer=T2,operator=T3".
func ParseTokens(s string) (Tokens, error) { return httpapi.ParseTokens(s) }

// Transport are the connection settings of the HTTP server: allowed Host names, read and
// idle timeouts, connection cap.
type Transport = httpapi.Transport

// Options configure the API.
type Options struct {
	// Tokens enables auth (see ParseTokens). Empty: the API is open.
	Tokens Tokens
	// Metrics served at /metrics; see NewMetrics.
	Metrics *Metrics
	// Logger receives one line per request; slog.Default() when nil.
	Logger *slog.Logger
	// MaxBodyBytes bounds request bodies (default 1 MiB).
	MaxBodyBytes int64
	// CORSOrigins allowed ("*" for any); none: CORS off.
	CORSOrigins []string
	// HTTP are the connection settings. When HTTP.AllowedHosts is empty, Serve derives it
	// from the listener's address (httpapi.HostsFor).
	HTTP Transport
	// Name of this process in /api/runtimes (default "embedded").
	Name string
	// DatabaseType shown in /health ("memory", "sqlite", "postgres").
	DatabaseType string
	// ShutdownTimeout bounds the graceful stop of ListenAndServe (default 10s).
	ShutdownTimeout time.Duration
	// BrokerURL and BrokerConnected report a message broker the process depends on: shown
	// in /health (password masked); /readyz answers 503 while BrokerConnected returns false.
	BrokerURL       string
	BrokerConnected func() bool
	// Ready, when set, is one more readiness check of /readyz (after the store's and the
	// broker's): a non-nil error makes it answer 503 with that error.
	Ready func(context.Context) error
	// Trace, when set, traces each request (see httpapi.Options.Trace; telemetry.HTTPTrace).
	Trace func(r *http.Request) (*http.Request, func(route string, status int))
}

// Handler returns the API of eng as an http.Handler. port is reported in /api/runtimes.
func Handler(eng *xc.Engine, port int, opts Options) http.Handler {
	return handler(eng, port, opts, nil)
}

func handler(eng *xc.Engine, port int, opts Options, closing <-chan struct{}) http.Handler {
	name := opts.Name
	if name == "" {
		name = "embedded"
	}
	host, _ := os.Hostname()
	lopts := []httpapi.LocalOption{httpapi.WithDatabaseType(opts.DatabaseType), httpapi.WithRuntime(name, host, port)}
	if opts.BrokerURL != "" {
		lopts = append(lopts, httpapi.WithBroker(opts.BrokerURL, opts.BrokerConnected))
	}
	if opts.Ready != nil {
		lopts = append(lopts, httpapi.WithReady(opts.Ready))
	}
	backend := httpapi.NewLocal(eng, lopts...)
	return httpapi.New(backend, httpapi.Options{Tokens: opts.Tokens, Logger: opts.Logger, Metrics: opts.Metrics,
		MaxBodyBytes: opts.MaxBodyBytes, CORSOrigins: opts.CORSOrigins, AllowedHosts: opts.HTTP.AllowedHosts,
		MaxStreams: opts.HTTP.MaxStreams, MaxStreamsPerClient: opts.HTTP.MaxStreamsPerClient,
		StreamSnapshotBytes: opts.HTTP.StreamSnapshotBytes, Closing: closing, Trace: opts.Trace})
}

// ListenAndServe serves the API of eng on addr until ctx is done, then shuts the server down
// gracefully (live streams are closed, in-flight requests finish). It does not close eng.
func ListenAndServe(ctx context.Context, addr string, eng *xc.Engine, opts Options) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return Serve(ctx, ln, eng, opts)
}

// Serve is ListenAndServe on a listener of the caller's.
func Serve(ctx context.Context, ln net.Listener, eng *xc.Engine, opts Options) error {
	port := 0
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		port = a.Port
	}
	if len(opts.HTTP.AllowedHosts) == 0 {
		host, _, _ := net.SplitHostPort(ln.Addr().String())
		opts.HTTP.AllowedHosts = httpapi.HostsFor(host, nil)
	}
	closing := make(chan struct{})
	h := handler(eng, port, opts, closing)
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	srv := opts.HTTP.Server(h, log)
	ln = opts.HTTP.Listener(ln)
	// At shutdown, live streams end (they never go idle); other requests finish.
	srv.RegisterOnShutdown(func() { close(closing) })
	return httpapi.ServeUntil(ctx, srv, ln, opts.ShutdownTimeout, nil)
}

// Addr formats a bind address and port for ListenAndServe.
func Addr(bind string, port int) string { return net.JoinHostPort(bind, strconv.Itoa(port)) }
