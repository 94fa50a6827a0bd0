package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/google/uuid"

	"github.com/xcomponent/xcomponent/store"
)

// Fixtures and checks shared by the tests of the suite.

const base int64 = 1_700_000_000_000 // a fixed ms epoch

func newID() string { return uuid.NewString() }

// newInstance returns a fresh active instance record at version 0.
func newInstance(component, machine, state string, data map[string]any, at int64) store.Instance {
	return store.Instance{
		ID: newID(), Component: component, Machine: machine, State: state, Data: data,
		Status: store.StatusActive, CreatedAt: at, UpdatedAt: at,
	}
}

// create is the commit recording the creation of in.
func create(in store.Instance) *store.Commit {
	return &store.Commit{
		Events:    []store.Event{createdEvent(in)},
		Instances: []store.InstanceWrite{{Instance: recPtr(in), ExpectVersion: -1}},
	}
}

func createdEvent(in store.Instance) store.Event {
	return store.Event{
		ID: newID(), InstanceID: in.ID, Component: in.Component, Machine: in.Machine,
		Type: store.EventCreated, Payload: map[string]any{"initialContext": in.Data, "triggerEvent": "api"},
		ToState: in.State, Data: in.Data, Actor: "test", Source: "api", Seq: 0, PersistedAt: in.CreatedAt,
		CorrelationID: newID(),
	}
}

// step is the commit of one transition of in to state `to` with new data at time at, and the
// instance after it.
func step(in store.Instance, event, to string, data map[string]any, at int64) (*store.Commit, store.Instance) {
	next := in
	next.State = to
	next.Data = data
	next.UpdatedAt = at
	next.Version = in.Version + 1
	ev := store.Event{
		ID: newID(), InstanceID: in.ID, Component: in.Component, Machine: in.Machine, Type: event,
		Payload: map[string]any{}, FromState: in.State, ToState: to, Data: data, Actor: "test",
		Source: "api", Seq: next.Version, PersistedAt: at,
	}
	return &store.Commit{
		Events:    []store.Event{ev},
		Instances: []store.InstanceWrite{{Instance: recPtr(next), ExpectVersion: in.Version}},
	}, next
}

func mustCommit(t *testing.T, s store.Store, c *store.Commit) {
	t.Helper()
	if err := s.Commit(context.Background(), c); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func mustCreate(t *testing.T, s store.Store, in store.Instance) {
	t.Helper()
	mustCommit(t, s, create(in))
}

// recPtr returns a pointer to a copy of in: records given to Commit must not change afterwards.
func recPtr(in store.Instance) *store.Instance { return &in }

// norm maps v through a JSON round trip, so that numbers are float64 whatever their Go type,
// and nil maps and slices become empty ones.
func norm(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("norm: %v", err))
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("norm: %v", err))
	}
	switch out.(type) {
	case nil:
		if reflect.TypeOf(v) != nil && reflect.TypeOf(v).Kind() == reflect.Map {
			return map[string]any{}
		}
		if reflect.TypeOf(v) != nil && reflect.TypeOf(v).Kind() == reflect.Slice {
			return []any{}
		}
	}
	return out
}

// equalJSON reports whether a and b are equal after norm.
func equalJSON(a, b any) bool { return reflect.DeepEqual(norm(a), norm(b)) }

func checkInstance(t *testing.T, want, got store.Instance) {
	t.Helper()
	w, g := want, got
	w.Data, g.Data = nil, nil
	w.Timers, g.Timers = nil, nil
	if !reflect.DeepEqual(w, g) {
		t.Errorf("instance:\n got  %+v\n want %+v", g, w)
	}
	if !equalJSON(want.Data, got.Data) {
		t.Errorf("instance %s data: got %v, want %v", want.ID, norm(got.Data), norm(want.Data))
	}
	if len(want.Timers) != len(got.Timers) || (len(want.Timers) > 0 && !reflect.DeepEqual(want.Timers, got.Timers)) {
		t.Errorf("instance %s timers: got %+v, want %+v", want.ID, got.Timers, want.Timers)
	}
}

func checkEvents(t *testing.T, want, got []store.Event) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("events: got %d, want %d:\n got  %+v\n want %+v", len(got), len(want), got, want)
	}
	for i := range want {
		w, g := want[i], got[i]
		w.Payload, g.Payload, w.Data, g.Data = nil, nil, nil, nil
		if !reflect.DeepEqual(w, g) {
			t.Errorf("event %d:\n got  %+v\n want %+v", i, g, w)
		}
		if !equalJSON(want[i].Payload, got[i].Payload) {
			t.Errorf("event %d payload: got %v, want %v", i, norm(got[i].Payload), norm(want[i].Payload))
		}
		if !equalJSON(want[i].Data, got[i].Data) {
			t.Errorf("event %d data: got %v, want %v", i, norm(got[i].Data), norm(want[i].Data))
		}
	}
}

func ids(ins []store.Instance) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.ID
	}
	return out
}

func msgIDs(ms []store.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func unique(prefix string) string { return prefix + "-" + newID()[:8] }
