package xcomponent

import (
	"sync"

	"github.com/xcomponent/xcomponent/store"
)

// An idle instance — created or restored and waiting for its first event — does not keep its
// record as a store.Instance with a Go map of its context: a map of up to 8 entries costs
// 336 B whatever its number of fields, the record 192 B. It keeps a coldRecord instead: the
// fields that cannot be derived from its machine, and its context as the values of a key set
// shared by the machine's instances (keys interned per machine). The record is rebuilt on
// demand (record()); the first transition stores a full record again, which the following
// transitions share field by field as before, so the transition hot path is unchanged.
//
// Compaction is exact: a record is only compacted when rebuilding it gives back the same
// fields (component and machine those of its runtime, a state of its machine), and the
// context values themselves are shared, not copied. It is skipped when the store keeps the
// committed records itself (store.RecordKeeper, the memory store): a compact copy beside the
// store's would cost more, not less.

// coldRecord is the compact form of an idle instance's committed record; immutable.
type coldRecord struct {
	id                   string
	state                string // the state's name in the machine definition (shared)
	status               store.Status
	createdAt, updatedAt int64
	version              int64
	timers               []store.Timer
	parent               *coldParent // nil when the instance has no parent
	keys                 *dataKeys   // nil when the context is nil
	vals                 []any       // the context's values, in the order of keys.names
	entryPoint           bool
}

// coldParent is the parent of a child instance (most instances have none).
type coldParent struct{ id, machine string }

// dataKeys is a set of context keys, shared by the instances of a machine whose contexts have
// these keys.
type dataKeys struct{ names []string }

// keySets interns the key sets of one machine's contexts.
type keySets struct {
	mu   sync.Mutex
	sets []*dataKeys
}

// maxKeySets bounds the key sets interned per machine: a machine whose contexts come in
// more shapes keeps the further ones per instance (still compact, keys not shared).
const maxKeySets = 64

// keysOf returns the interned key set equal to data's keys, interning it when new.
func (ks *keySets) keysOf(data map[string]any) *dataKeys {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	for _, s := range ks.sets {
		if s.matches(data) {
			return s
		}
	}
	s := &dataKeys{names: make([]string, 0, len(data))}
	for k := range data {
		s.names = append(s.names, k)
	}
	if len(ks.sets) < maxKeySets {
		ks.sets = append(ks.sets, s)
	}
	return s
}

func (s *dataKeys) matches(data map[string]any) bool {
	if len(s.names) != len(data) {
		return false
	}
	for _, k := range s.names {
		if _, ok := data[k]; !ok {
			return false
		}
	}
	return true
}

// compactRecord returns the compact form of rec, or nil when rec cannot be rebuilt exactly
// from it and mr.
func compactRecord(mr *machineRuntime, rec *store.Instance) *coldRecord {
	st := mr.def.State(rec.State)
	if st == nil || st.Name != rec.State || rec.Component != mr.comp.def.Name || rec.Machine != mr.def.Name {
		return nil
	}
	c := &coldRecord{
		id: rec.ID, state: st.Name, status: rec.Status, createdAt: rec.CreatedAt, updatedAt: rec.UpdatedAt,
		version: rec.Version, timers: rec.Timers, entryPoint: rec.IsEntryPoint,
	}
	if rec.ParentID != "" || rec.ParentMachine != "" {
		c.parent = &coldParent{id: rec.ParentID, machine: rec.ParentMachine}
	}
	if rec.Data != nil {
		c.keys = mr.keySets.keysOf(rec.Data)
		if len(c.keys.names) > 0 {
			c.vals = make([]any, len(c.keys.names))
			for i, k := range c.keys.names {
				c.vals[i] = rec.Data[k]
			}
		}
	}
	return c
}

// record rebuilds the full record.
func (c *coldRecord) record(mr *machineRuntime) *store.Instance {
	rec := &store.Instance{
		ID: c.id, Component: mr.comp.def.Name, Machine: mr.def.Name, State: c.state, Status: c.status,
		IsEntryPoint: c.entryPoint, CreatedAt: c.createdAt, UpdatedAt: c.updatedAt, Version: c.version,
		Timers: c.timers,
	}
	if c.parent != nil {
		rec.ParentID, rec.ParentMachine = c.parent.id, c.parent.machine
	}
	if c.keys != nil {
		rec.Data = make(map[string]any, len(c.keys.names))
		for i, k := range c.keys.names {
			rec.Data[k] = c.vals[i]
		}
	}
	return rec
}
