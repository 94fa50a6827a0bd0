package xcomponent_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/clock"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/postgres"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/store/sqlite"
)

// openStore opens a fresh store of kind name ("memory", or one of sharedBackends), closed when
// t ends.
func openStore(t *testing.T, name string) store.Store {
	t.Helper()
	if name == "memory" {
		st := store.NewMemory()
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	for _, be := range sharedBackends {
		if be.name == name {
			return be.open(t)()
		}
	}
	t.Fatalf("no store %q", name)
	return nil
}

// sharedBackends are the stores several processes can share. Each returns a function that
// opens one more store (one more "process") on the same fresh database.
var sharedBackends = []struct {
	name string
	open func(t *testing.T) func() store.Store
}{
	{"postgres", func(t *testing.T) func() store.Store {
		dsn := pgtest.NewDatabase(t)
		return func() store.Store {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := postgres.Open(ctx, dsn, postgres.WithLogger(quietLog()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
	}},
	{"sqlite", func(t *testing.T) func() store.Store {
		path := filepath.Join(t.TempDir(), "shared.db")
		return func() store.Store {
			s, err := sqlite.Open(context.Background(), path, sqlite.WithLogger(quietLog()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
	}},
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

const timersSrc = `
name: Timed
stateMachines:
	- name: Waiter
		initialState: Waiting
		states:
			- name: Waiting
			- name: Done
				type: final
		transitions:
			- {from: Waiting, to: Done, event: WAKE, type: timeout, timeoutMs: 5000}
	- name: Ticker
		initialState: Ticking
		states:
			- name: Ticking
			- name: Stopped
				type: final
		transitions:
			- {from: Ticking, to: Ticking, event: TICK, type: auto, timeoutMs: 15}
			- {from: Ticking, to: Stopped, event: STOP}
`

// TestTimerTakeover: engine A arms timers and stops before they are due (its process is
// gone); engine B, which never loaded those instances and receives no event for them, fires
// each timer once, on the shared database's claim.
func TestTimerTakeover(t *testing.T) {
	for _, be := range sharedBackends {
		t.Run(be.name, func(t *testing.T) {
			open := be.open(t)
			ctx := context.Background()
			fake := clock.NewFake(t0)
			comp := parse(t, timersSrc)
			b := xc.New(xc.Options{Store: open(), Clock: fake, Logger: quietLog()})
			t.Cleanup(func() { _ = b.Close(context.Background()) })
			if err := b.Load(ctx, comp); err != nil {
				t.Fatal(err)
			}
			fired, cancel := b.Subscribe(1024)
			defer cancel()

			a := xc.New(xc.Options{Store: open(), Clock: fake, Logger: quietLog(), TimerPoll: -1})
			if err := a.Load(ctx, comp); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for range 5 {
				inst, err := a.Create(ctx, xc.CreateRequest{Component: "Timed", Machine: "Waiter"})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, inst.ID)
			}
			// A goes away before any deadline: its timers never fire in A.
			if err := a.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if n := b.InstanceCount(); n != 0 {
				t.Fatalf("B knows %d instances before the takeover, want 0", n)
			}

			// Not yet: due at +5s, taken over once 500ms late, polled every second.
			fake.Advance(5 * time.Second)
			for _, id := range ids {
				if got := stateOf(t, b.Store(), id); got != "Waiting" {
					t.Fatalf("%s is %s at the deadline, before the takeover delay", id, got)
				}
			}
			fake.Advance(time.Second) // +6s: B's poll claims and fires
			if err := b.WaitIdle(ctx); err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				if got := stateOf(t, b.Store(), id); got != "Done" {
					t.Errorf("%s is %s after the takeover, want Done", id, got)
				}
				wakes := countEvents(t, b.Store(), id, "WAKE")
				if wakes != 1 {
					t.Errorf("%s: %d WAKE events, want 1", id, wakes)
				}
			}
			n := 0
			for len(fired) > 0 {
				if ev := <-fired; ev.Kind() == xc.EvTimeoutFired {
					n++
				}
			}
			if n != len(ids) {
				t.Errorf("B reported %d timeout_fired, want %d", n, len(ids))
			}
			// Later polls find nothing more to fire.
			fake.Advance(10 * time.Second)
			if err := b.WaitIdle(ctx); err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				if wakes := countEvents(t, b.Store(), id, "WAKE"); wakes != 1 {
					t.Errorf("%s: %d WAKE events after more polls, want 1", id, wakes)
				}
			}
		})
	}
}

// TestTimerTakeoverOfAStaleInstance: B loaded an instance, then A moved it to another state
// (a new arming, the old one cancelled) and went away. B's copy is stale: its own queue holds
// the cancelled arming. B's claim brings the instance's current record, fires the new arming
// once, and the cancelled one never fires.
func TestTimerTakeoverOfAStaleInstance(t *testing.T) {
	for _, be := range sharedBackends {
		t.Run(be.name, func(t *testing.T) {
			open := be.open(t)
			ctx := context.Background()
			fake := clock.NewFake(t0)
			comp := parse(t, `
name: Stale
stateMachines:
	- name: Job
		initialState: Queued
		states:
			- name: Queued
			- name: Running
			- name: Expired
				type: final
			- name: Done
				type: final
		transitions:
			- {from: Queued, to: Running, event: START}
			- {from: Queued, to: Expired, event: EXPIRE, type: timeout, timeoutMs: 60000}
			- {from: Running, to: Done, event: FINISH, type: timeout, timeoutMs: 2000}
`)
			a := xc.New(xc.Options{Store: open(), Clock: fake, Logger: quietLog(), TimerPoll: -1})
			if err := a.Load(ctx, comp); err != nil {
				t.Fatal(err)
			}
			inst, err := a.Create(ctx, xc.CreateRequest{Component: "Stale", Machine: "Job"})
			if err != nil {
				t.Fatal(err)
			}
			b := xc.New(xc.Options{Store: open(), Clock: fake, Logger: quietLog()})
			t.Cleanup(func() { _ = b.Close(context.Background()) })
			if err := b.Load(ctx, comp); err != nil {
				t.Fatal(err)
			}
			if live := b.Live("Stale", "Job"); len(live) != 1 || live[0].CurrentState != "Queued" {
				t.Fatalf("B's copy: %+v", live)
			}
			if _, err := a.Send(ctx, inst.ID, xc.Event{Type: "START"}); err != nil {
				t.Fatal(err)
			}
			if err := a.Close(ctx); err != nil {
				t.Fatal(err)
			}
			fake.Advance(4 * time.Second) // FINISH due at +2s: claimed by B's poll
			if err := b.WaitIdle(ctx); err != nil {
				t.Fatal(err)
			}
			if got := stateOf(t, b.Store(), inst.ID); got != "Done" {
				t.Fatalf("after the takeover: %s, want Done", got)
			}
			if live := b.Live("Stale", "Job"); len(live) != 0 {
				t.Errorf("B still has the completed instance live: %+v", live)
			}
			fake.Advance(2 * time.Minute) // the cancelled EXPIRE arming was due at +60s
			if err := b.WaitIdle(ctx); err != nil {
				t.Fatal(err)
			}
			h, err := b.Store().History(ctx, inst.ID)
			if err != nil {
				t.Fatal(err)
			}
			var types []string
			for _, ev := range h {
				types = append(types, ev.Type)
			}
			if strings.Join(types, ",") != "INSTANCE_CREATED,START,FINISH" {
				t.Errorf("history %v, want INSTANCE_CREATED,START,FINISH", types)
			}
			if b.PendingTimers() != 0 {
				t.Errorf("B still has %d pending timers", b.PendingTimers())
			}
		})
	}
}

// TestTimersNeverFireTwice: two live engines on one database both hold the same instances
// (B loaded them at start) and both claim due timers every 20ms, on the real clock, so that their
// queues and pollers race for every deadline. Each arming fires once: a one-shot timeout
// gives one event, and a 15ms periodic tick gives a linear chain (each TICK caused by the
// event before it; a tick fired twice would show two events with one cause).
func TestTimersNeverFireTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("real clock: -short")
	}
	src := strings.Replace(timersSrc, "timeoutMs: 5000", "timeoutMs: 1000", 1)
	for _, be := range sharedBackends {
		t.Run(be.name, func(t *testing.T) {
			open := be.open(t)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a bound against a hang; slow under CI load
			defer cancel()
			comp := parse(t, src)
			opts := xc.Options{Logger: quietLog(), TimerPoll: 20 * time.Millisecond, TimerTakeover: time.Millisecond}
			opts.Store = open()
			a := xc.New(opts)
			t.Cleanup(func() { _ = a.Close(context.Background()) })
			if err := a.Load(ctx, comp); err != nil {
				t.Fatal(err)
			}
			var waiters, tickers []string
			for range 20 {
				inst, err := a.Create(ctx, xc.CreateRequest{Component: "Timed", Machine: "Waiter"})
				if err != nil {
					t.Fatal(err)
				}
				waiters = append(waiters, inst.ID)
			}
			for range 4 {
				inst, err := a.Create(ctx, xc.CreateRequest{Component: "Timed", Machine: "Ticker"})
				if err != nil {
					t.Fatal(err)
				}
				tickers = append(tickers, inst.ID)
			}
			opts.Store = open()
			b := xc.New(opts)
			t.Cleanup(func() { _ = b.Close(context.Background()) })
			if err := b.Load(ctx, comp); err != nil {
				t.Fatal(err)
			}
			// Normally B loaded them all (not on a slow machine if waiters fired already: the
			// pollers race for them all the same).
			t.Logf("B loaded %d of %d instances", b.InstanceCount(), len(waiters)+len(tickers))
			// Wait (on the database, with a deadline) for the waiters to fire and the tickers
			// to tick a while.
			for _, id := range waiters {
				waitFor(ctx, t, func() bool { return stateOf(t, a.Store(), id) == "Done" }, "waiter %s done", id)
			}
			for _, id := range tickers {
				waitFor(ctx, t, func() bool {
					in, err := a.Store().Instance(ctx, id)
					return err == nil && in.Version >= 30
				}, "ticker %s at 30 ticks", id)
			}
			for i, id := range tickers {
				via := a
				if i%2 == 1 {
					via = b
				}
				if _, err := via.Send(ctx, id, xc.Event{Type: "STOP"}); err != nil {
					t.Fatalf("stop %s: %v", id, err)
				}
			}
			for _, e := range []*xc.Engine{a, b} {
				if err := e.WaitIdle(ctx); err != nil {
					t.Fatal(err)
				}
			}
			for _, id := range waiters {
				if n := countEvents(t, a.Store(), id, "WAKE"); n != 1 {
					t.Errorf("waiter %s: %d WAKE events, want 1", id, n)
				}
			}
			for _, id := range tickers {
				h, err := a.Store().History(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				ticks := 0
				for i := 1; i < len(h); i++ {
					if h[i].Type != "TICK" {
						continue
					}
					ticks++
					if h[i].CausationID != h[i-1].ID {
						t.Errorf("ticker %s: TICK %d (seq %d) caused by %s, want the event before it %s: an arming fired twice",
							id, ticks, h[i].Seq, h[i].CausationID, h[i-1].ID)
						break
					}
				}
				if last := h[len(h)-1]; last.Type != "STOP" || ticks != len(h)-2 {
					t.Errorf("ticker %s: %d events, %d ticks, last %s", id, len(h), ticks, last.Type)
				}
			}
		})
	}
}

// TestEntryPointOncePerDatabase: engines loading one component at once on a fresh database
// create one entry-point instance between them, and every engine has it; a create of an
// explicit singleton is refused whichever engine is asked.
func TestEntryPointOncePerDatabase(t *testing.T) {
	for _, be := range sharedBackends {
		t.Run(be.name, func(t *testing.T) {
			open := be.open(t)
			ctx := context.Background()
			for round := range 6 {
				mode := "singleton"
				if round%2 == 1 {
					mode = "multiple\nautoCreateEntryPoint: true"
				}
				name := fmt.Sprintf("Entry%d", round)
				comp := parse(t, fmt.Sprintf(`
name: %s
entryMachine: Main
entryMachineMode: %s
stateMachines:
	- name: Main
		initialState: Idle
		states:
			- name: Idle
`, name, mode))
				const engines = 3
				engs := make([]*xc.Engine, engines)
				errs := make([]error, engines)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range engines {
					engs[i] = xc.New(xc.Options{Store: open(), Logger: quietLog()})
					e := engs[i]
					t.Cleanup(func() { _ = e.Close(context.Background()) })
					wg.Go(func() {
						<-start
						errs[i] = e.Load(ctx, comp)
					})
				}
				close(start)
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Fatalf("%s (%s): engine %d load: %v", name, mode, i, err)
					}
				}
				stored, _, err := engs[0].Store().Search(ctx, store.Query{Component: name})
				if err != nil {
					t.Fatal(err)
				}
				if len(stored) != 1 {
					t.Fatalf("%s (%s): %d instances in the database after %d engines started, want 1", name, mode, len(stored), engines)
				}
				for i, e := range engs {
					live := e.Live(name, "Main")
					if len(live) != 1 || live[0].ID != stored[0].ID {
						t.Errorf("%s (%s): engine %d has %v live, want the entry point %s", name, mode, i, live, stored[0].ID)
					}
				}
				_, err = engs[engines-1].Create(ctx, xc.CreateRequest{Component: name, Machine: "Main"})
				if mode == "singleton" && !errors.Is(err, xc.ErrSingleton) {
					t.Errorf("%s: create of a singleton: %v, want ErrSingleton", name, err)
				}
				if mode != "singleton" && err != nil {
					t.Errorf("%s (multiple): create: %v", name, err)
				}
			}
		})
	}
}

// TestSingletonCreateRace: engines that both think no singleton exists create it at once:
// the database keeps one, the other engine answers ErrSingleton.
func TestSingletonCreateRace(t *testing.T) {
	for _, be := range sharedBackends {
		t.Run(be.name, func(t *testing.T) {
			open := be.open(t)
			ctx := context.Background()
			comp := parse(t, `
name: Single
entryMachine: Main
entryMachineMode: singleton
autoCreateEntryPoint: false
stateMachines:
	- name: Main
		initialState: Idle
		states:
			- name: Idle
`)
			const engines = 4
			engs := make([]*xc.Engine, engines)
			for i := range engs {
				engs[i] = xc.New(xc.Options{Store: open(), Logger: quietLog()})
				e := engs[i]
				t.Cleanup(func() { _ = e.Close(context.Background()) })
				if err := e.Load(ctx, comp); err != nil {
					t.Fatal(err)
				}
			}
			errs := make([]error, engines)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i, e := range engs {
				wg.Go(func() {
					<-start
					_, errs[i] = e.Create(ctx, xc.CreateRequest{Component: "Single"})
				})
			}
			close(start)
			wg.Wait()
			won := 0
			for i, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, xc.ErrSingleton):
					t.Errorf("engine %d: %v, want nil or ErrSingleton", i, err)
				}
			}
			stored, _, _ := engs[0].Store().Search(ctx, store.Query{Component: "Single"})
			if won != 1 || len(stored) != 1 {
				t.Errorf("%d creates succeeded, %d instances stored: want 1 and 1", won, len(stored))
			}
		})
	}
}

func stateOf(t *testing.T, s store.Store, id string) string {
	t.Helper()
	in, err := s.Instance(context.Background(), id)
	if err != nil {
		t.Fatalf("instance %s: %v", id, err)
	}
	return in.State
}

func countEvents(t *testing.T, s store.Store, id, typ string) int {
	t.Helper()
	h, err := s.History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range h {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds or ctx ends (then the test fails with what).
func waitFor(ctx context.Context, t *testing.T, cond func() bool, what string, args ...any) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for "+what, args...)
		case <-tick.C:
		}
	}
}

// steppedClock is a fake clock whose wall time can be stepped back (NTP, a resumed VM) while
// its timers keep running forward, as time.AfterFunc's do on the monotonic clock.
type steppedClock struct {
	*clock.Fake
	mu     sync.Mutex
	offset time.Duration
}

func (c *steppedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Fake.Now().Add(c.offset)
}

func (c *steppedClock) step(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// stepDuringClaim steps the clock back while the first claim that finds something is on its
// way back from the database.
type stepDuringClaim struct {
	store.Store
	clock *steppedClock
	once  sync.Once
}

func (s *stepDuringClaim) ClaimDueTimers(ctx context.Context, c store.TimerClaim) ([]store.Instance, error) {
	recs, err := s.Store.(store.TimerClaimer).ClaimDueTimers(ctx, c)
	if len(recs) > 0 {
		s.once.Do(func() { s.clock.step(-time.Hour) })
	}
	return recs, err
}

// TestTimerClaimClockSteppedBack: the wall clock steps back an hour while a claim is in
// flight. The claim was made with the time before the step, but the timers it brings are not
// due on the clock as it is now: none fires early. They fire once, at their deadline.
func TestTimerClaimClockSteppedBack(t *testing.T) {
	for _, be := range sharedBackends {
		t.Run(be.name, func(t *testing.T) {
			open := be.open(t)
			ctx := context.Background()
			clk := &steppedClock{Fake: clock.NewFake(t0)}
			comp := parse(t, timersSrc)

			// B runs before A creates the instances: it knows them only through its claims.
			st := &stepDuringClaim{Store: open(), clock: clk}
			b := xc.New(xc.Options{Store: st, Clock: clk, Logger: quietLog()})
			t.Cleanup(func() { _ = b.Close(context.Background()) })
			if err := b.Load(ctx, comp); err != nil {
				t.Fatal(err)
			}
			a := xc.New(xc.Options{Store: open(), Clock: clk, Logger: quietLog(), TimerPoll: -1})
			if err := a.Load(ctx, comp); err != nil {
				t.Fatal(err)
			}
			dueAt := map[string]int64{}
			for range 3 {
				inst, err := a.Create(ctx, xc.CreateRequest{Component: "Timed", Machine: "Waiter"})
				if err != nil {
					t.Fatal(err)
				}
				dueAt[inst.ID] = inst.PendingTimeouts[0].DueAt
			}
			if err := a.Close(ctx); err != nil { // A is gone: B takes its timers over
				t.Fatal(err)
			}

			clk.Advance(6 * time.Second) // B's poll claims at +6 s; the clock is then at +6 s − 1 h
			if err := b.WaitIdle(ctx); err != nil {
				t.Fatal(err)
			}
			for id := range dueAt {
				if got := stateOf(t, st, id); got != "Waiting" {
					t.Fatalf("%s is %s right after the clock stepped back an hour: fired before its deadline", id, got)
				}
			}

			clk.Advance(time.Hour) // the wall clock is past the deadlines again
			if err := b.WaitIdle(ctx); err != nil {
				t.Fatal(err)
			}
			for id, due := range dueAt {
				h, err := st.History(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				wakes := 0
				for _, ev := range h {
					if ev.Type == "WAKE" {
						wakes++
						if ev.PersistedAt < due {
							t.Errorf("%s: WAKE at %d, before its deadline %d", id, ev.PersistedAt, due)
						}
					}
				}
				if wakes != 1 {
					t.Errorf("%s: %d WAKE events, want 1", id, wakes)
				}
			}
		})
	}
}
