package storetest

import (
	"context"
	"reflect"
	"sort"
	"testing"

	"github.com/xcomponent/xcomponent/store"
)

// testCountStates runs CheckCountStates on stores that count (store.Counter).
func testCountStates(t *testing.T, s store.Store) {
	if _, ok := s.(store.Counter); !ok {
		t.Skipf("%T does not count (no store.Counter)", s)
	}
	CheckCountStates(t, s)
}

// CheckCountStates checks a store.Counter: instances counted per machine, state and status,
// of one component only, also after a transition.
func CheckCountStates(t *testing.T, s store.Store) {
	t.Helper()
	c, ok := s.(store.Counter)
	if !ok {
		t.Fatalf("%T does not implement store.Counter", s)
	}
	ctx := context.Background()
	comp := unique("count")
	mk := func(at int64, machine, state string, status store.Status, component string) store.Instance {
		in := newInstance(component, machine, state, map[string]any{"at": at}, base+at)
		in.Status = status
		mustCreate(t, s, in)
		return in
	}
	mk(1, "M", "A", store.StatusActive, comp)
	mk(2, "M", "A", store.StatusActive, comp)
	moving := mk(3, "M", "A", store.StatusActive, comp)
	mk(4, "M", "Done", store.StatusCompleted, comp)
	mk(5, "M", "Bad", store.StatusError, comp)
	mk(6, "N", "A", store.StatusActive, comp)
	mk(7, "M", "A", store.StatusActive, unique("other"))
	cm, _ := step(moving, "GO", "B", nil, base+8)
	mustCommit(t, s, cm)

	got, err := c.CountStates(ctx, comp)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(got, func(i, j int) bool {
		if got[i].Machine != got[j].Machine {
			return got[i].Machine < got[j].Machine
		}
		return got[i].State < got[j].State
	})
	want := []store.StatusCount{
		{Machine: "M", State: "A", Status: store.StatusActive, Count: 2},
		{Machine: "M", State: "B", Status: store.StatusActive, Count: 1},
		{Machine: "M", State: "Bad", Status: store.StatusError, Count: 1},
		{Machine: "M", State: "Done", Status: store.StatusCompleted, Count: 1},
		{Machine: "N", State: "A", Status: store.StatusActive, Count: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CountStates = %+v, want %+v", got, want)
	}
	if got, err := c.CountStates(ctx, unique("none")); err != nil || len(got) != 0 {
		t.Errorf("CountStates of an unknown component = %v, %v", got, err)
	}
}
