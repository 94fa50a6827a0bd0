package xcomponent

import (
	"context"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/clock"

	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

const compactComponent = `
name: Compact
entryMachine: M
stateMachines:
  - name: M
    initialState: A
    states: [{name: A}, {name: B}, {name: Z, type: final}]
    transitions:
      - {from: A, to: B, event: T}
      - {from: B, to: A, event: T}
      - {from: A, to: Z, event: TO, type: timeout, timeoutMs: 3600000}
      - {from: B, to: Z, event: STOP}
`

func compactMachine(t testing.TB) *machineRuntime {
	t.Helper()
	comp, err := component.Parse([]byte(compactComponent), "compact.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return newCompRuntime(comp, 0).machines["M"]
}

// A compact record gives back exactly the record it was made from, sharing the context's
// values; records that could not be rebuilt exactly are not compacted.
func TestCompactRecordRoundTrip(t *testing.T) {
	mr := compactMachine(t)
	nested := map[string]any{"ref": "a", "list": []any{1.0, "x"}}
	base := store.Instance{ID: "0b8f3c9e-4f7a-4a53-9b1e-2f2d6c1e0a11", Component: "Compact", Machine: "M", State: "A",
		Status: store.StatusActive, CreatedAt: 1, UpdatedAt: 2, Version: 3}
	recs := map[string]func(r *store.Instance){
		"nil context":   func(r *store.Instance) {},
		"empty context": func(r *store.Instance) { r.Data = map[string]any{} },
		"context": func(r *store.Instance) {
			r.Data = map[string]any{"accountId": "acc-1", "balance": 12.5, "open": true, "none": nil, "nested": nested}
		},
		"same keys, other values": func(r *store.Instance) {
			r.Data = map[string]any{"accountId": "acc-2", "balance": 0.0, "open": false, "none": nil, "nested": nested}
		},
		"child": func(r *store.Instance) { r.ParentID, r.ParentMachine = "p-1", "Parent" },
		"entry point, timers, state B": func(r *store.Instance) {
			r.IsEntryPoint, r.State = true, "B"
			r.Timers = []store.Timer{{Event: "TO", TargetState: "Z", DueAt: 10, TotalMs: 5, Kind: "timeout", Transition: 2, ArmedAt: 5}}
		},
		"completed": func(r *store.Instance) { r.State, r.Status = "Z", store.StatusCompleted },
	}
	var keys *dataKeys
	for name, set := range recs {
		rec := base
		set(&rec)
		c := compactRecord(mr, &rec)
		if c == nil {
			t.Fatalf("%s: not compacted", name)
		}
		got := c.record(mr)
		if !reflect.DeepEqual(got, &rec) {
			t.Errorf("%s: rebuilt %+v, want %+v", name, *got, rec)
		}
		if (got.Data == nil) != (rec.Data == nil) {
			t.Errorf("%s: nil context %v rebuilt as nil %v", name, rec.Data == nil, got.Data == nil)
		}
		if len(rec.Data) == 5 {
			if keys != nil && c.keys != keys {
				t.Errorf("%s: key set not shared with the other record of the same keys", name)
			}
			keys = c.keys
			if reflect.ValueOf(got.Data["nested"]).UnsafePointer() != reflect.ValueOf(nested).UnsafePointer() {
				t.Errorf("%s: context values copied, not shared", name)
			}
		}
	}
	for name, set := range map[string]func(r *store.Instance){
		"other component": func(r *store.Instance) { r.Component = "Other" },
		"other machine":   func(r *store.Instance) { r.Machine = "N" },
		"unknown state":   func(r *store.Instance) { r.State = "Q" },
	} {
		rec := base
		set(&rec)
		if c := compactRecord(mr, &rec); c != nil {
			t.Errorf("%s: compacted, would be rebuilt as %+v", name, *c.record(mr))
		}
	}
}

// The key sets interned per machine are bounded: further shapes stay compact, unshared.
func TestCompactKeySetsBounded(t *testing.T) {
	mr := compactMachine(t)
	for i := 0; i < maxKeySets+10; i++ {
		data := map[string]any{string(rune('a'+i%26)) + string(rune('a'+i/26)): i}
		rec := &store.Instance{ID: "x", Component: "Compact", Machine: "M", State: "A", Status: store.StatusActive, Data: data}
		c := compactRecord(mr, rec)
		if !reflect.DeepEqual(c.record(mr).Data, data) {
			t.Fatalf("shape %d: rebuilt %v, want %v", i, c.record(mr).Data, data)
		}
	}
	if n := len(mr.keySets.sets); n != maxKeySets {
		t.Errorf("%d key sets interned, want %d", n, maxKeySets)
	}
}

// noKeep is the memory store presented as a store that does not keep its records.
type noKeep struct{ *store.Memory }

func (noKeep) KeepsRecords() bool { return false }

// An idle instance is compact when the store does not keep the records, full when it does;
// reading it leaves it compact, its first transition makes it full, and what the engine
// shows of it is the same either way.
func TestIdleInstancesCompact(t *testing.T) {
	ctx := context.Background()
	var views [2][]Instance
	for i, keeps := range []bool{false, true} {
		var st store.Store = noKeep{store.NewMemory()}
		if keeps {
			st = store.NewMemory()
		}
		eng := New(Options{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Clock: clock.NewFake(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))})
		defer eng.Close(ctx)
		comp, err := component.Parse([]byte(compactComponent), "compact.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Load(ctx, comp); err != nil {
			t.Fatal(err)
		}
		in, err := eng.Create(ctx, CreateRequest{Component: "Compact", Machine: "M", Data: map[string]any{"n": 1.0, "s": "x"}})
		if err != nil {
			t.Fatal(err)
		}
		inst := eng.lookup(in.ID)
		if compact := inst.rec.Load() == nil; compact == keeps {
			t.Fatalf("store keeps records %v: instance compact %v", keeps, compact)
		}
		if n := eng.PendingTimers(); n != 1 {
			t.Errorf("pending timers %d, want 1", n)
		}
		got, err := eng.Get(ctx, in.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, in) {
			t.Errorf("Get %+v, want the created %+v", got, in)
		}
		if compact := inst.rec.Load() == nil; compact == keeps {
			t.Errorf("store keeps records %v: compact %v after a read", keeps, compact)
		}
		res, err := eng.Send(ctx, in.ID, Event{Type: "T", Payload: map[string]any{"s": "y"}})
		if err != nil {
			t.Fatal(err)
		}
		if inst.rec.Load() == nil || inst.cold.Load() != nil {
			t.Errorf("store keeps records %v: not a full record after a transition", keeps)
		}
		if res.Instance.CurrentState != "B" || res.Instance.Context["s"] != "y" || res.Instance.Context["n"] != 1.0 {
			t.Errorf("after T: %+v", res.Instance)
		}
		views[i] = eng.Live("", "")
		for j := range views[i] {
			views[i][j].ID, views[i][j].CreatedAt, views[i][j].UpdatedAt = "", 0, 0
			views[i][j].PendingTimeouts = nil
		}
	}
	if !reflect.DeepEqual(views[0], views[1]) {
		t.Errorf("live instances differ: compact %+v, full %+v", views[0], views[1])
	}
}
