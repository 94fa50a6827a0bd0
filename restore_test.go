package xcomponent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/clock"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/xcomponenttest"
)

const restoreAccounts = `
name: Accounts
entryMachine: Account
entryMachineMode: multiple
stateMachines:
  - name: Account
    initialState: Open
    states: [{name: Open, type: entry}, {name: Frozen}, {name: Closed, type: final}]
    transitions:
      - {from: Open, to: Frozen, event: FREEZE}
      - {from: Open, to: Closed, event: CLOSE}
      - {from: Frozen, to: Open, event: THAW, type: timeout, timeoutMs: 3600000}
      - from: Open
        to: Open
        event: CREDIT
        matchingRules: [{eventProperty: accountId, instanceProperty: accountId}]
      - from: Frozen
        to: Frozen
        event: CREDIT
        matchingRules: [{eventProperty: accountId, instanceProperty: accountId}]
`

// restoreData is the context of the i-th account: a routed accountId, and values of every
// JSON kind, some (escapes, non-ASCII, nesting) outside the restore's fast JSON reader.
func restoreData(i int) map[string]any {
	d := map[string]any{
		"accountId": fmt.Sprintf("acc-%d", i), "balance": float64(i) * 1.5, "open": i%2 == 0,
		"owner": "Jane Doe", "note": nil, "tags": []any{"a", float64(i), true},
		"limits": map[string]any{"daily": 1e6, "currency": "EUR"},
	}
	switch i % 5 {
	case 1:
		d["owner"] = `Zoë "Q" O'Brien\` + "\n"
	case 2:
		d["owner"] = "李雷 ✓"
	case 3:
		d["big"] = -1.25e-300
	}
	return d
}

// TestRestoreEveryInstance restores instances written through the engine, on every store,
// and checks each one: its record (state, context, version, timers), that routing finds it
// by its accountId, and that its pending timeout fires; closed ones stay out.
func TestRestoreEveryInstance(t *testing.T) {
	const n = 600
	ctx := context.Background()
	comp := parse(t, restoreAccounts)
	for _, name := range []string{"memory", "sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			st := openStore(t, name)
			fake := clock.NewFake(t0)
			w := xcomponenttest.NewManual(xc.Options{Store: st, Logger: quietLog(), Clock: fake})
			if err := w.Load(ctx, comp); err != nil {
				t.Fatal(err)
			}
			ids := make([]string, n)
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for g := range 8 {
				wg.Go(func() {
					for i := g; i < n; i += 8 {
						in, err := w.Create(ctx, xc.CreateRequest{Component: "Accounts", Machine: "Account", Data: restoreData(i)})
						if err != nil {
							errs <- err
							return
						}
						ids[i] = in.ID
						switch i % 3 {
						case 1:
							_, err = w.Send(ctx, in.ID, xc.Event{Type: "FREEZE"})
						case 2:
							if i%2 == 0 {
								_, err = w.Send(ctx, in.ID, xc.Event{Type: "CLOSE"})
							}
						}
						if err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if err := w.Settle(ctx); err != nil {
				t.Fatal(err)
			}
			want := make(map[string]xc.Instance, n)
			for _, id := range ids {
				v, err := w.Get(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				v.Context = jsonRoundTrip(t, v.Context) // what a SQL store gives back
				want[id] = v
			}
			if err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}

			r := xcomponenttest.NewManual(xc.Options{Store: st, Logger: quietLog(), Clock: fake})
			t.Cleanup(func() { _ = r.Close(ctx) })
			if err := r.Load(ctx, comp); err != nil {
				t.Fatal(err)
			}
			live := 0
			for i, id := range ids {
				w := want[id]
				if w.Status != store.StatusActive {
					if got, err := r.Get(ctx, id); err != nil || got.Status != w.Status {
						t.Fatalf("closed instance %d: %+v, %v", i, got, err)
					}
					continue
				}
				live++
				got, err := r.Get(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if name != "memory" {
					got.Context = jsonRoundTrip(t, got.Context)
				}
				if !reflect.DeepEqual(got, w) {
					t.Fatalf("instance %d restored as\n%+v\nwant\n%+v", i, got, w)
				}
				if wantTimers := i%3 == 1; (len(got.PendingTimeouts) == 1) != wantTimers {
					t.Fatalf("instance %d: timers %+v", i, got.PendingTimeouts)
				}
			}
			if got := r.InstanceCount(); got != live {
				t.Fatalf("%d live instances restored, want %d", got, live)
			}
			if got := r.PendingTimers(); got != n/3 {
				t.Fatalf("%d timers armed, want %d", got, n/3)
			}
			// Routing finds every live instance by its accountId, and only it.
			for i, id := range ids {
				if want[id].Status != store.StatusActive {
					continue
				}
				res, err := r.Broadcast(ctx, xc.BroadcastRequest{Component: "Accounts", Machine: "Account",
					Event: xc.Event{Type: "CREDIT", Payload: map[string]any{"accountId": fmt.Sprintf("acc-%d", i)}}})
				if err != nil || res.Matched != 1 || res.Processed != 1 {
					t.Fatalf("credit of instance %d: %+v, %v", i, res, err)
				}
			}
			// Every pending timeout fires once its deadline passes.
			if err := r.AdvanceTo(ctx, t0.Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
			for i, id := range ids {
				w := want[id]
				if w.Status != store.StatusActive {
					continue
				}
				got, err := r.Get(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if got.CurrentState != "Open" || got.Version != w.Version+1+int64(i%3%2) || len(got.PendingTimeouts) != 0 {
					t.Fatalf("instance %d after credit and timeout: %s v%d timers %v (was %s v%d)", i,
						got.CurrentState, got.Version, got.PendingTimeouts, w.CurrentState, w.Version)
				}
			}
		})
	}
}

func jsonRoundTrip(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// reverseStreamer streams a memory store's live instances in the reverse of LoadLive's order:
// StreamLive promises no order, and a SQL store's rows come in whatever order the database
// reads them.
type reverseStreamer struct{ *store.Memory }

func (r reverseStreamer) StreamLive(ctx context.Context, component string, fn func(*store.Instance) error) error {
	recs, err := r.LoadLive(ctx, component)
	if err != nil {
		return err
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if err := fn(&recs[i]); err != nil {
			return err
		}
	}
	return nil
}

// TestRestoredTimersFireInCreationOrder: restored timeouts due at the same millisecond fire in
// the order of their instances' creation (created_at, then id: LoadLive's order), as they were
// armed before the restart, whatever order the store streams the rows in.
func TestRestoredTimersFireInCreationOrder(t *testing.T) {
	const n = 40
	ctx := context.Background()
	comp := parse(t, restoreAccounts)
	for _, name := range []string{"memory-reversed", "sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			var st store.Store
			if name == "memory-reversed" {
				st = reverseStreamer{store.NewMemory()}
				t.Cleanup(func() { _ = st.Close() })
			} else {
				st = openStore(t, name)
			}
			fake := clock.NewFake(t0)
			w := xcomponenttest.NewManual(xc.Options{Store: st, Logger: quietLog(), Clock: fake})
			if err := w.Load(ctx, comp); err != nil {
				t.Fatal(err)
			}
			ids := make([]string, n)
			for i := range n {
				in, err := w.Create(ctx, xc.CreateRequest{Component: "Accounts", Machine: "Account", Data: restoreData(i)})
				if err != nil {
					t.Fatal(err)
				}
				ids[i] = in.ID
				if i%2 == 1 { // pairs created in the same millisecond: the id breaks the tie
					fake.Advance(time.Millisecond)
				}
			}
			// Frozen in the reverse order, at one instant: every THAW is due at the same
			// millisecond, and the rows were updated last to first.
			for i := n - 1; i >= 0; i-- {
				if _, err := w.Send(ctx, ids[i], xc.Event{Type: "FREEZE"}); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Settle(ctx); err != nil {
				t.Fatal(err)
			}
			want, err := st.LoadLive(ctx, "Accounts")
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}

			var fired []string
			r := xcomponenttest.NewManual(xc.Options{Store: st, Logger: quietLog(), Clock: fake}, xcomponenttest.Options{
				Listen: func(ev xc.RuntimeEvent) {
					if tf, ok := ev.Data.(xc.TimeoutFired); ok {
						fired = append(fired, tf.InstanceID)
					}
				}})
			t.Cleanup(func() { _ = r.Close(ctx) })
			if err := r.Load(ctx, comp); err != nil {
				t.Fatal(err)
			}
			if err := r.AdvanceTo(ctx, fake.Now().Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
			if len(fired) != n || len(want) != n {
				t.Fatalf("%d timeouts fired, %d live before, want %d", len(fired), len(want), n)
			}
			for i := range want {
				if fired[i] != want[i].ID {
					t.Fatalf("timeout %d fired for %s, want %s (creation order)\nfired %v", i, fired[i], want[i].ID, fired)
				}
			}
		})
	}
}

// estimating is a streaming store that estimates its live instances at hint
// (store.LiveEstimator), right or wrong.
type estimating struct {
	reverseStreamer
	hint int
}

func (e estimating) EstimateLive(context.Context, string) (int, error) { return e.hint, nil }

// TestRestorePresized: a restore sized from the store's estimate (the instance map, and the
// routing index whose values are unique) restores and routes every instance, whether the
// estimate is right, too high or too low.
func TestRestorePresized(t *testing.T) {
	const n = 5000
	ctx := context.Background()
	comp := parse(t, restoreAccounts)
	for _, hint := range []int{n, 100 * n, 4096} {
		t.Run(fmt.Sprint(hint), func(t *testing.T) {
			mem := store.NewMemory()
			w := xc.New(xc.Options{Store: mem, Logger: quietLog()})
			if err := w.Load(ctx, comp); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if _, err := w.Create(ctx, xc.CreateRequest{Component: "Accounts", Machine: "Account", Data: restoreData(i)}); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}
			r := xc.New(xc.Options{Store: estimating{reverseStreamer{mem}, hint}, Logger: quietLog()})
			t.Cleanup(func() { _ = r.Close(ctx) })
			if err := r.Load(ctx, comp); err != nil {
				t.Fatal(err)
			}
			if got := r.InstanceCount(); got != n {
				t.Fatalf("%d instances restored, want %d", got, n)
			}
			for i := range n {
				res, err := r.Broadcast(ctx, xc.BroadcastRequest{Component: "Accounts", Machine: "Account",
					Event: xc.Event{Type: "CREDIT", Payload: map[string]any{"accountId": fmt.Sprintf("acc-%d", i)}}})
				if err != nil || res.Matched != 1 || res.Processed != 1 {
					t.Fatalf("credit of instance %d: %+v, %v", i, res, err)
				}
			}
		})
	}
}
