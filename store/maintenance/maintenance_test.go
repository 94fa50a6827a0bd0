package maintenance_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/clock"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/maintenance"
	"github.com/xcomponent/xcomponent/store/sqlite"
)

// pruner is a store.Store whose PruneInbox records its calls.
type pruner struct {
	store.Store // nil: only PruneInbox is called
	mu          sync.Mutex
	calls       []time.Duration
	err         error
}

func (p *pruner) PruneInbox(_ context.Context, olderThan time.Duration) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, olderThan)
	return 2, p.err
}

func (p *pruner) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls)
}

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(new(bytes.Buffer), nil)) }

func TestPrunesAtStartThenEveryInterval(t *testing.T) {
	clk := clock.NewFake(start)
	p := &pruner{}
	ctx, cancel := context.WithCancel(context.Background())
	done := maintenance.Start(ctx, p, maintenance.Options{Clock: clk, Logger: quiet()})
	clk.Advance(0)
	if p.count() != 1 || p.calls[0] != maintenance.DefaultInboxRetention {
		t.Fatalf("at start: calls %v, want one with the default retention", p.calls)
	}
	clk.Advance(time.Hour - time.Millisecond) // the default interval: retention/24
	if n := p.count(); n != 1 {
		t.Fatalf("before the interval: %d calls", n)
	}
	clk.Advance(time.Millisecond)
	if n := p.count(); n != 2 {
		t.Fatalf("after one interval: %d calls, want 2", n)
	}
	clk.Advance(3 * time.Hour)
	if n := p.count(); n != 5 {
		t.Fatalf("after four intervals: %d calls, want 5", n)
	}
	cancel()
	<-done
	clk.Advance(10 * time.Hour)
	if n := p.count(); n != 5 {
		t.Errorf("after stop: %d calls, want none more", n)
	}
}

func TestRetentionAndInterval(t *testing.T) {
	for _, tc := range []struct {
		name                string
		opts                maintenance.Options
		retention, interval time.Duration
	}{
		{"custom retention", maintenance.Options{InboxRetention: 2 * time.Hour}, 2 * time.Hour, 5 * time.Minute},
		{"short retention", maintenance.Options{InboxRetention: 10 * time.Minute}, 10 * time.Minute, maintenance.MinInterval},
		{"long retention", maintenance.Options{InboxRetention: 30 * 24 * time.Hour}, 30 * 24 * time.Hour, maintenance.MaxInterval},
		{"explicit interval", maintenance.Options{Interval: 7 * time.Minute}, maintenance.DefaultInboxRetention, 7 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewFake(start)
			p := &pruner{}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tc.opts.Clock, tc.opts.Logger = clk, quiet()
			done := maintenance.Start(ctx, p, tc.opts)
			clk.Advance(tc.interval - 1)
			clk.Advance(1)
			if p.count() != 2 || p.calls[1] != tc.retention {
				t.Errorf("after one interval of %v: calls %v, want 2 of %v", tc.interval, p.calls, tc.retention)
			}
			cancel()
			<-done
		})
	}
}

func TestFailureIsLoggedAndRetried(t *testing.T) {
	clk := clock.NewFake(start)
	p := &pruner{err: errors.New("database down")}
	var logs bytes.Buffer
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	done := maintenance.Start(ctx, p, maintenance.Options{Clock: clk, Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))})
	clk.Advance(0)
	clk.Advance(time.Hour)
	cancel()
	<-done
	if n := p.count(); n != 2 {
		t.Errorf("%d calls, want 2 (a failure does not stop the task)", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "database down") {
		t.Errorf("the failure is not logged:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func TestNothingToPrune(t *testing.T) {
	clk := clock.NewFake(start)
	for name, tc := range map[string]struct {
		st   store.Store
		opts maintenance.Options
	}{
		"memory store":       {store.NewMemory(), maintenance.Options{Clock: clk}},
		"negative retention": {&pruner{}, maintenance.Options{Clock: clk, InboxRetention: -1}},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		done := maintenance.Start(ctx, tc.st, tc.opts)
		clk.Advance(48 * time.Hour)
		if p, ok := tc.st.(*pruner); ok && p.count() != 0 {
			t.Errorf("%s: %d prunes", name, p.count())
		}
		select {
		case <-done:
			t.Errorf("%s: done before the context", name)
		default:
		}
		cancel()
		<-done
	}
}

// TestSQLiteStore runs the task on a real store: an id applied now is within the retention
// and stays; the task stops before the store closes.
func TestSQLiteStore(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "m.db"), sqlite.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Commit(ctx, &store.Commit{InboxID: "cmd-1"}); err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(start)
	mctx, cancel := context.WithCancel(ctx)
	done := maintenance.Start(mctx, st, maintenance.Options{Clock: clk, Logger: quiet()})
	clk.Advance(0)
	clk.Advance(time.Hour)
	cancel()
	<-done
	if err := st.Commit(ctx, &store.Commit{InboxID: "cmd-1"}); !errors.Is(err, store.ErrDuplicate) {
		t.Errorf("an id within the retention was pruned: %v", err)
	}
}
