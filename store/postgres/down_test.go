package postgres_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/postgres"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
)

// proxy is a TCP proxy to the test server that can play a database outage: when down it
// drops its connections and refuses new ones.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	up     bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string, up bool) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, up: up, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		_ = ln.Close()
		p.setUp(false)
		p.wg.Wait()
	})
	return p
}

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if !p.up {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			_ = dst.Close()
			_ = src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		p.wg.Go(func() { pipe(c, s) })
		p.wg.Go(func() { pipe(s, c) })
	}
}

func (p *proxy) setUp(up bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = up
	if !up {
		for c := range p.conns {
			_ = c.Close()
		}
	}
}

// viaProxy returns dsn (a URL) pointing at the proxy, and the proxy.
func viaProxy(t *testing.T, dsn string, up bool) (string, *proxy) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), up)
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		t.Skip("the outage tests need XCOMPONENT_TEST_POSTGRES as a URL")
	}
	u.Host = p.ln.Addr().String()
	return u.String(), p
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestDatabaseDownWhileRunning(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	pdsn, p := viaProxy(t, dsn, true)
	s := openDSN(t, pdsn)
	direct := openDSN(t, dsn)
	ctx := context.Background()
	in := commitOne(t, s)

	p.setUp(false)
	next := in
	next.Version, next.State = 1, "Paid"
	c := &store.Commit{
		Instances: []store.InstanceWrite{{Instance: recPtr(next), ExpectVersion: 0}},
		Events: []store.Event{{ID: uuid.NewString(), InstanceID: in.ID, Machine: in.Machine, Type: "PAY",
			FromState: in.State, ToState: "Paid", Seq: 1, PersistedAt: 1}},
		Outbox:  []store.Message{{ID: uuid.NewString(), Component: "Shop", Kind: "k", Body: []byte("x")}},
		InboxID: uuid.NewString(),
	}
	err := s.Commit(ctx, c)
	if err == nil || errors.Is(err, store.ErrConflict) || !strings.HasPrefix(err.Error(), "commit: ") {
		t.Fatalf("commit while the database is down: %v", err)
	}
	t.Logf("error while down: %v", err)
	if got, _ := direct.Instance(ctx, in.ID); got.Version != 0 {
		t.Fatalf("a failed commit was applied: version %d", got.Version)
	}
	if ob, _ := direct.PendingOutbox(ctx, "", 0); len(ob) != 0 {
		t.Fatalf("a failed commit wrote its outbox: %v", ob)
	}

	p.setUp(true)
	waitFor(t, "the store to recover", func() bool {
		err := s.Commit(ctx, c)
		if err != nil && (errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrDuplicate)) {
			t.Fatalf("retry after recovery: %v", err)
		}
		return err == nil
	})
	if got, _ := direct.Instance(ctx, in.ID); got.Version != 1 || got.State != "Paid" {
		t.Fatalf("after recovery: %+v", got)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

// recorder is a slog.Handler that hands records to a channel.
type recorder struct{ ch chan slog.Record }

func (r recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r recorder) Handle(_ context.Context, rec slog.Record) error {
	select {
	case r.ch <- rec.Clone():
	default:
	}
	return nil
}
func (r recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r recorder) WithGroup(string) slog.Handler      { return r }

func TestOpenRetriesUntilTheDatabaseIsUp(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	pdsn, p := viaProxy(t, dsn, false)
	u, _ := url.Parse(pdsn)
	u.User = url.UserPassword(u.User.Username(), "s3cret")
	pdsn = u.String()

	rec := recorder{ch: make(chan slog.Record, 64)}
	type result struct {
		s   *postgres.Store
		err error
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() {
		s, err := postgres.Open(ctx, pdsn, postgres.WithLogger(slog.New(rec)), postgres.WithMaxBackoff(200*time.Millisecond))
		done <- result{s, err}
	}()
	select {
	case r := <-rec.ch:
		text := r.Message
		r.Attrs(func(a slog.Attr) bool { text += " " + a.String(); return true })
		if !strings.HasPrefix(r.Message, "database unreachable, retrying in ") || r.Level != slog.LevelWarn {
			t.Errorf("log line: %s", text)
		}
		if strings.Contains(text, "s3cret") || !strings.Contains(text, "***") {
			t.Errorf("log line does not mask the password: %s", text)
		}
	case r := <-done:
		t.Fatalf("Open returned while the database is down: %v", r.err)
	}
	p.setUp(true)
	r := <-done
	if r.err != nil {
		t.Fatalf("Open after the database came up: %v", r.err)
	}
	defer r.s.Close()
	commitOne(t, r.s)

	// An Open whose context ends while the database is down fails, naming no password.
	p.setUp(false)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	_, err := postgres.Open(ctx2, pdsn, postgres.WithLogger(quiet()))
	if err == nil || !strings.Contains(err.Error(), "database unreachable") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Open with a deadline on a down database: %v", err)
	}
}

// TestOpenRejectedCredentials: credentials the server rejects fail Open at once (no retry).
func TestOpenRejectedCredentials(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		t.Skip("needs XCOMPONENT_TEST_POSTGRES as a URL")
	}
	u.User = url.UserPassword("xc_no_such_role", "s3cret")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = postgres.Open(ctx, u.String(), postgres.WithLogger(quiet()))
	if err == nil || ctx.Err() != nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Open with an unknown role: %v (ctx %v)", err, ctx.Err())
	}
	t.Log(err)
}
