package faults_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/clock"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/distributed/distributedtest"
	"github.com/xcomponent/xcomponent/internal/faults"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/postgres"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/store/sqlite"
)

// jumpClock is the system clock plus an offset that the test changes: a wall-clock jump (NTP
// step, VM resumed, operator error). Timers run on the monotonic clock, like time.AfterFunc.
type jumpClock struct{ offset atomic.Int64 }

func (c *jumpClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *jumpClock) AfterFunc(d time.Duration, f func()) clock.Timer { return time.AfterFunc(d, f) }

func (c *jumpClock) jump(d time.Duration) { c.offset.Add(int64(d)) }

// TestClockJump: an engine on a durable store (SQLite, PostgreSQL) with timers pending, its
// wall clock jumping:
//   - forward 2 h past one-hour timeouts: they fire promptly (the store's due-timer claims
//     run on the wall clock; the in-memory queue's own wake-up is an hour away on the
//     monotonic clock), each once, not before its deadline;
//   - back 2 h: timers armed before the jump keep their deadline on the wall clock, so they
//     are not fired early (nor the fired ones again) while shorter timers armed after the
//     jump fire normally; a jump forward past their deadline fires them, once each.
//
// Every instance ends consistent with its log, every arming fired exactly once (the ledger's
// key: the instance's WAKE). Time to recover: from the forward jump to the last timeout fired.
func TestClockJump(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection: -short")
	}
	t.Parallel()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var spec string
			var st store.Store
			ctx := context.Background()
			switch name {
			case "sqlite":
				path := filepath.Join(t.TempDir(), "xc.db")
				s, err := sqlite.Open(ctx, path)
				if err != nil {
					t.Fatal(err)
				}
				st, spec = s, "sqlite:"+path
			default:
				dsn := pgtest.NewDatabase(t)
				s, err := postgres.Open(ctx, dsn)
				if err != nil {
					t.Fatal(err)
				}
				st, spec = s, dsn
			}
			testClockJump(t, name, spec, st)
		})
	}
}

func testClockJump(t *testing.T, name, spec string, st store.Store) {
	ctx := context.Background()
	jc := &jumpClock{}
	eng := xc.New(xc.Options{Store: st, Clock: jc, Logger: distributedtest.Logger(t)})
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = eng.Close(ctx)
		}
	})
	def, err := component.LoadFile(componentFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Load(ctx, def); err != nil {
		t.Fatal(err)
	}
	led := faults.NewLedger()
	dueAt := map[string]int64{}
	keys := map[string]string{} // instance → the ledger key of its arming
	arm := func(machine string, n int) []string {
		t.Helper()
		var ids []string
		for range n {
			in, err := eng.Create(ctx, xc.CreateRequest{Component: comp, Machine: machine})
			if err != nil {
				t.Fatal(err)
			}
			if len(in.PendingTimeouts) != 1 {
				t.Fatalf("%s %s: pending timeouts %+v", machine, in.ID, in.PendingTimeouts)
			}
			ids = append(ids, in.ID)
			dueAt[in.ID] = in.PendingTimeouts[0].DueAt
			keys[in.ID] = in.ID + "-" + in.PendingTimeouts[0].Event
			led.Sent("", keys[in.ID])
		}
		return ids
	}
	state := func(id string) string {
		in, err := eng.Get(ctx, id)
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		return in.CurrentState
	}
	waitDone := func(what string, ids []string) {
		t.Helper()
		if err := faults.Poll(waitFor, func() (bool, error) {
			for _, id := range ids {
				if state(id) != "Done" {
					return false, nil
				}
			}
			return true, nil
		}); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for _, id := range ids {
			in, _ := eng.Get(ctx, id)
			led.Ack(keys[id], id, in.Version)
		}
	}

	// Forward.
	early := arm("Waiter", 8)
	jumped := time.Now()
	jc.jump(2 * time.Hour)
	waitDone("one-hour timeouts after a 2 h jump forward", early)
	forward := time.Since(jumped)

	// Backward: armed before the jump, due an hour after it on the clock of the time.
	late := arm("Waiter", 8)
	jc.jump(-2 * time.Hour)
	pings := arm("Pinger", 4) // 1.5 s, armed after the jump: fire normally
	waitDone("short timers armed after a 2 h jump back", pings)
	// The claims ran meanwhile (every second) on the new clock: nothing early, nothing again.
	for _, id := range late {
		if s := state(id); s != "Waiting" {
			t.Errorf("waiter %s armed before a jump back is %s: fired before its deadline on the wall clock", id, s)
		}
	}
	jumped = time.Now()
	jc.jump(3 * time.Hour)
	waitDone("timeouts after a jump forward past them", late)
	forward = max(forward, time.Since(jumped))
	if err := eng.Close(ctx); err != nil {
		t.Fatal(err)
	}
	closed = true

	s, err := faults.ReadSpec(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	v := faults.Judge(led, s, func(e faults.Event) string {
		if e.Seq == 0 {
			return ""
		}
		return e.Instance + "-" + e.Type
	})
	faults.Check(t, v)
	for id, due := range dueAt {
		for _, e := range s.Events[id] {
			if e.Seq > 0 && e.PersistedAt < due {
				t.Errorf("instance %s: %s fired at %d, before its deadline %d", id, e.Type, e.PersistedAt, due)
			}
		}
	}
	row := faults.RowOf(faults.ScenarioClockJump, "engine, "+map[string]string{"sqlite": "SQLite", "postgres": "PostgreSQL"}[name], v, s)
	row.Recovery, row.RecoveryFrom = forward, "jump forward → the overdue timeouts fired, worst of 2"
	row.Notes = fmt.Sprintf("+2 h over 8 one-hour timeouts; −2 h with 8 armed (not fired early) and 4 short ones armed after it (fired normally); +3 h; %d armings, each fired once, none before its deadline", v.Sent)
	faults.Record(t, row)
}
