// Package clock abstracts time so that timers can run on a virtual clock in tests and in
// `xcomponent simulate`, without sleeping.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock tells the time and runs functions later.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine (Real) or in Advance's (Fake) once d has elapsed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	// Stop prevents the call if it has not happened yet; it reports whether it did.
	Stop() bool
}

// Real is the system clock.
type Real struct{}

// Now implements Clock.
func (Real) Now() time.Time { return time.Now() }

// AfterFunc implements Clock.
func (Real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Fake is a virtual clock that moves only when told to. Safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	seq     int
	waiters []*fakeTimer
}

type fakeTimer struct {
	c    *Fake
	at   time.Time
	seq  int
	f    func()
	done bool
}

// NewFake returns a virtual clock set to start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now implements Clock.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc implements Clock. A non-positive d is due at the next Advance (or Set).
func (c *Fake) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{c: c, at: c.now.Add(d), seq: c.seq, f: f}
	c.waiters = append(c.waiters, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.done {
		return false
	}
	t.done = true
	return true
}

// Advance moves the clock forward by d, calling due functions in deadline order, each with the
// clock set to its deadline.
func (c *Fake) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// Set moves the clock to t (never backwards), calling due functions in deadline order.
func (c *Fake) Set(t time.Time) {
	for {
		c.mu.Lock()
		live := c.waiters[:0]
		for _, w := range c.waiters {
			if !w.done {
				live = append(live, w)
			}
		}
		c.waiters = live
		sort.Slice(c.waiters, func(i, j int) bool {
			if !c.waiters[i].at.Equal(c.waiters[j].at) {
				return c.waiters[i].at.Before(c.waiters[j].at)
			}
			return c.waiters[i].seq < c.waiters[j].seq
		})
		if len(c.waiters) == 0 || c.waiters[0].at.After(t) {
			if t.After(c.now) {
				c.now = t
			}
			c.mu.Unlock()
			return
		}
		w := c.waiters[0]
		w.done = true
		if w.at.After(c.now) {
			c.now = w.at
		}
		c.mu.Unlock()
		w.f()
	}
}
