package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Transport are the connection-level settings of the HTTP server shared by serve, runtime
// --port and dashboard. The zero value takes the defaults.
type Transport struct {
	// AllowedHosts: see Options.AllowedHosts (HostsFor computes it from the bind address).
	AllowedHosts []string
	// ReadTimeout bounds the reading of a request, body included (default 30 s): a client
	// sending its body a byte at a time cannot hold a connection longer.
	ReadTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle that long (default 60 s).
	IdleTimeout time.Duration
	// MaxConns caps the connections served at once (default 1024); more wait to be accepted.
	MaxConns int
	// MaxStreams, MaxStreamsPerClient and StreamSnapshotBytes: see Options.
	MaxStreams, MaxStreamsPerClient, StreamSnapshotBytes int
}

func (t *Transport) defaults() {
	if t.ReadTimeout <= 0 {
		t.ReadTimeout = 30 * time.Second
	}
	if t.IdleTimeout <= 0 {
		t.IdleTimeout = 60 * time.Second
	}
	if t.MaxConns <= 0 {
		t.MaxConns = 1024
	}
}

// Server returns the http.Server of h with these timeouts. No WriteTimeout: it would cut the
// live stream, whose writes have their own deadline (Options.StreamWriteTimeout), as have the
// backend calls of the other requests (Options.RequestTimeout).
func (t Transport) Server(h http.Handler, log *slog.Logger) *http.Server {
	t.defaults()
	rh := 10 * time.Second
	if t.ReadTimeout < rh {
		rh = t.ReadTimeout
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: rh,
		ReadTimeout:       t.ReadTimeout,
		IdleTimeout:       t.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// ServeUntil serves srv on ln until ctx is done or Serve fails, then shuts srv down
// gracefully within timeout (10 s when not positive). stopping, when set, runs once serving
// ends, before the shutdown. A closed server is not an error.
func ServeUntil(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration, stopping func()) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var err error
	select {
	case err = <-served:
	case <-ctx.Done():
	}
	if stopping != nil {
		stopping()
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil && err == nil {
		err = fmt.Errorf("shutdown: %w", serr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Listener caps the connections accepted from ln at once at MaxConns.
func (t Transport) Listener(ln net.Listener) net.Listener {
	t.defaults()
	return &limitListener{Listener: ln, sem: make(chan struct{}, t.MaxConns), done: make(chan struct{})}
}

// limitListener accepts a connection only when fewer than cap(sem) are open.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
