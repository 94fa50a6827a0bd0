// Package maintenance runs the periodic upkeep of a store while a process serves it: today,
// pruning the inbox of the SQL stores (store.InboxPruner).
//
// The inbox holds the id of every applied command and inter-process message (Commit.InboxID),
// so that a redelivery is acknowledged without effect. Without pruning it grows by one row per
// message for ever. An id must be kept as long as a duplicate of its message can still arrive:
// a command waits at most its TTL in its broker queue (10 minutes by default), a redelivery
// after a lost acknowledgement comes within seconds, an outbox message left behind by a crash
// is republished when its runtime starts again, and an HTTP client retrying a create with the
// same event id does so within its own timeouts. DefaultInboxRetention (24 hours) covers all of
// these with a wide margin, including a runtime down overnight, and is the window of the usual
// idempotency keys of HTTP APIs; at 1,000 messages a second it keeps about 86 million short
// rows.
package maintenance

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/xcomponent/xcomponent/clock"
	"github.com/xcomponent/xcomponent/store"
)

// DefaultInboxRetention is how long applied ids are kept by default.
const DefaultInboxRetention = 24 * time.Hour

// Bounds of the default interval between two prunes (InboxRetention/24).
const (
	MinInterval = time.Minute
	MaxInterval = time.Hour
)

// Options of Start.
type Options struct {
	// InboxRetention is how long applied ids are kept: DefaultInboxRetention when 0, never
	// pruned when negative. An id is forgotten between InboxRetention and InboxRetention +
	// Interval after it was applied.
	InboxRetention time.Duration
	// Interval between two prunes; when 0, InboxRetention/24 within [MinInterval, MaxInterval]
	// (one hour for the default retention).
	Interval time.Duration
	// Clock schedules the prunes (clock.Real when nil; a clock.Fake in tests).
	Clock  clock.Clock
	Logger *slog.Logger
}

// EnvInboxRetention is the environment variable of the retention (flag --inbox-retention) of
// `xcomponent serve` and `xcomponent runtime`.
const EnvInboxRetention = "INBOX_RETENTION"

// ParseRetention reads a retention as the flag and environment variable give it: a Go
// duration (24h, 90m), 0 meaning never prune. It returns the Options.InboxRetention value
// (negative for never).
func ParseRetention(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration such as 24h (0: never prune)", s)
	}
	return FlagRetention(d), nil
}

// FlagRetention maps a retention given on the command line (0: never prune) to its
// Options.InboxRetention value.
func FlagRetention(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// interval returns the interval between two prunes.
func (o Options) interval(retention time.Duration) time.Duration {
	if o.Interval > 0 {
		return o.Interval
	}
	return min(max(retention/24, MinInterval), MaxInterval)
}

// Start prunes st's inbox at once and then every interval, until ctx is done; the channel it
// returns is closed once the task has stopped (a prune under way is cancelled through ctx and
// waited for), so that the caller may then close the store. Stores without an inbox to prune
// (not store.InboxPruner: the memory store bounds its inbox itself), and a negative retention,
// start nothing. Failures are logged; the next prune tries again.
func Start(ctx context.Context, st store.Store, o Options) <-chan struct{} {
	done := make(chan struct{})
	p, ok := st.(store.InboxPruner)
	if o.InboxRetention == 0 {
		o.InboxRetention = DefaultInboxRetention
	}
	if !ok || o.InboxRetention < 0 {
		context.AfterFunc(ctx, func() { close(done) })
		return done
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	t := &task{ctx: ctx, p: p, retention: o.InboxRetention, every: o.interval(o.InboxRetention), clock: o.Clock, log: o.Logger}
	t.log.Info("inbox pruning", "retention", t.retention.String(), "every", t.every.String())
	t.mu.Lock()
	t.timer = t.clock.AfterFunc(0, t.run)
	t.mu.Unlock()
	context.AfterFunc(ctx, func() {
		t.mu.Lock()
		t.stopped = true
		t.timer.Stop()
		t.mu.Unlock()
		t.running.Wait()
		close(done)
	})
	return done
}

// task is one started pruning loop: each run is a clock callback that arms the next one.
type task struct {
	ctx       context.Context
	p         store.InboxPruner
	retention time.Duration
	every     time.Duration
	clock     clock.Clock
	log       *slog.Logger

	mu      sync.Mutex
	stopped bool
	timer   clock.Timer
	running sync.WaitGroup // a run under way
}

func (t *task) run() {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	t.running.Add(1)
	t.mu.Unlock()
	defer t.running.Done()

	n, err := t.p.PruneInbox(t.ctx, t.retention)
	switch {
	case err != nil && t.ctx.Err() == nil:
		t.log.Warn("inbox pruning failed; retrying at the next interval", "err", err, "retry_in", t.every.String())
	case n > 0:
		t.log.Info("inbox pruned", "ids", n, "retention", t.retention.String())
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped {
		t.timer = t.clock.AfterFunc(t.every, t.run)
	}
}
