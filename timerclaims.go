package xcomponent

import (
	"context"
	"sync"
	"time"

	"github.com/xcomponent/xcomponent/clock"
	"github.com/xcomponent/xcomponent/store"
)

// Defaults of the timer poller (Options.TimerPoll, TimerTakeover, TimerLease).
const (
	DefaultTimerPoll     = time.Second
	DefaultTimerTakeover = 500 * time.Millisecond
	DefaultTimerLease    = 10 * time.Second
)

// timerPoller fires the due timers of instances this engine may not even know: those armed by
// another process sharing the store, which died or lags (docs/semantics.md: a timer still fires if
// the runtime that armed it is gone). Every poll it claims, for each loaded component, the
// instances whose earliest timer is TimerTakeover late (store.TimerClaimer: leased in the
// database, so that two pollers never claim the same instance at once) and fires their due
// timers through the instance's mailbox, like the local timer queue does.
//
// The local queue stays the normal path — the process that armed a timer fires it on time —
// and the poller is the takeover. Both may try the same arming (here or in two processes):
// the firing is a transition with optimistic concurrency, so exactly one attempt commits and
// the others find the arming gone (errTimerGone); the event id derived from the arming
// (timerEvent) makes a second row in the audit trail impossible even so.
type timerPoller struct {
	e        *Engine
	claimer  store.TimerClaimer
	every    time.Duration
	takeover time.Duration
	lease    time.Duration
	batch    int

	mu      sync.Mutex
	next    clock.Timer
	stopped bool
	failing bool // the last claim failed (logged once until it succeeds again)
}

func (p *timerPoller) init(e *Engine, opts Options) {
	p.e = e
	p.claimer, _ = e.store.(store.TimerClaimer)
	p.every, p.takeover, p.lease = opts.TimerPoll, opts.TimerTakeover, opts.TimerLease
	if p.every == 0 {
		p.every = DefaultTimerPoll
	}
	if p.takeover <= 0 {
		p.takeover = DefaultTimerTakeover
	}
	if p.lease <= 0 {
		p.lease = DefaultTimerLease
	}
	p.batch = opts.TimerBatch
	if p.batch <= 0 {
		p.batch = 1000
	}
	if p.claimer == nil || p.every < 0 || e.manual {
		p.stopped = true
		return
	}
	p.mu.Lock()
	p.next = e.clock.AfterFunc(p.every, p.tick)
	p.mu.Unlock()
}

func (p *timerPoller) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	if p.next != nil {
		p.next.Stop()
		p.next = nil
	}
}

// tick runs one poll and schedules the next.
func (p *timerPoller) tick() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.e.wg.Add(1)
	p.mu.Unlock()
	defer p.e.wg.Done()
	p.poll(p.e.baseCtx)
	p.mu.Lock()
	if !p.stopped {
		p.next = p.e.clock.AfterFunc(p.every, p.tick)
	}
	p.mu.Unlock()
}

// poll claims and fires, component by component, batch after batch, until no claim is full.
// It returns how many instances it claimed.
func (p *timerPoller) poll(ctx context.Context) int {
	e := p.e
	e.mu.RLock()
	crs := make([]*compRuntime, 0, len(e.components))
	for _, cr := range e.components {
		crs = append(crs, cr)
	}
	e.mu.RUnlock()
	total := 0
	for _, cr := range crs {
		for {
			if e.closed.Load() {
				return total
			}
			now := e.nowMs()
			recs, err := p.claimer.ClaimDueTimers(ctx, store.TimerClaim{Component: cr.def.Name,
				DueBy: now - p.takeover.Milliseconds(), Now: now, LeaseUntil: now + p.lease.Milliseconds(), Limit: p.batch})
			p.report(cr.def.Name, err)
			if err != nil {
				break
			}
			total += len(recs)
			if len(recs) > 0 {
				// Another process armed them and did not fire them in time: it died or lags.
				e.log.Info("timers taken over", "component", cr.def.Name, "instances", len(recs))
			}
			p.fire(cr, recs)
			if len(recs) < p.batch {
				break
			}
		}
	}
	return total
}

// fire fires the due timers of claimed records and waits until they are processed. Due means
// due now, on a fresh reading of the clock: the claim's reading was taken before a database
// round trip, and a wall clock stepped back meanwhile would otherwise fire timers early (the
// instance's own timer queue fires them at their deadline).
func (p *timerPoller) fire(cr *compRuntime, recs []store.Instance) {
	e := p.e
	now := e.nowMs()
	var wg sync.WaitGroup
	for i := range recs {
		rec := &recs[i]
		inst := e.lookup(rec.ID)
		if inst == nil {
			// Created by another process and never used here: this engine takes it on,
			// with its routing indexes and timer queue entries.
			var err error
			if inst, err = e.register(cr, rec); err != nil {
				e.log.Warn("timer claim: instance skipped", "component", cr.def.Name, "instance", rec.ID, "err", err)
				continue
			}
		}
		for _, t := range rec.Timers {
			if !t.Spent && t.DueAt <= now {
				e.timers.fire(inst, t, now, rec, &wg)
			}
		}
	}
	if e.manual {
		return
	}
	wg.Wait()
}

// report logs the first failure of a run of failed claims, and the recovery.
func (p *timerPoller) report(comp string, err error) {
	p.mu.Lock()
	was := p.failing
	p.failing = err != nil
	p.mu.Unlock()
	switch {
	case err != nil && !was:
		p.e.log.Warn("timer claim failed; retrying every poll", "component", comp, "err", err)
	case err == nil && was:
		p.e.log.Info("timer claims work again", "component", comp)
	}
}
