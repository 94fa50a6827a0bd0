package xcomponent

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/xcomponent/xcomponent/store"
)

// restoreBatch is how many records the reading goroutine of a restore hands over at a time.
const restoreBatch = 512

// restore registers the live instances of a freshly added component from the store and
// returns how many it read. A store that streams them (store.LiveStreamer) is read on another
// goroutine while this one registers what has arrived, so that reading and decoding the rows
// and building the sets and indexes use the two cores; other stores are read with LoadLive.
// On an error nothing of the component stays registered.
func (e *Engine) restore(ctx context.Context, cr *compRuntime) (int, error) {
	ls, ok := e.store.(store.LiveStreamer)
	if !ok {
		recs, err := e.store.LoadLive(ctx, cr.def.Name)
		if err != nil {
			return 0, err
		}
		batch := make([]*store.Instance, len(recs))
		for i := range recs {
			batch[i] = &recs[i]
		}
		e.registerRestored(cr, batch)
		return len(recs), nil
	}
	defer raiseGCPercent()()
	batches := make(chan []*store.Instance, 16)
	var streamErr error
	go func() {
		// Ends when the stream does: this goroutine's only send is to a channel that the
		// loop below drains until it is closed.
		defer close(batches)
		batch := make([]*store.Instance, 0, restoreBatch)
		streamErr = ls.StreamLive(ctx, cr.def.Name, func(rec *store.Instance) error {
			batch = append(batch, rec)
			if len(batch) == restoreBatch {
				batches <- batch
				batch = make([]*store.Instance, 0, restoreBatch)
			}
			return nil
		})
		if streamErr == nil && len(batch) > 0 {
			batches <- batch
		}
	}()
	n := 0
	for batch := range batches {
		e.registerRestored(cr, batch)
		n += len(batch)
	}
	// streamErr was written before batches was closed.
	if streamErr != nil {
		e.unregisterComponent(cr)
		return 0, streamErr
	}
	return n, nil
}

// restoreGCPercent is the collector's GOGC during a streamed restore. Nearly all that a
// restore allocates stays live, so that at the default (100) the collector runs once per
// doubling of the heap and marks the growing set of restored instances each time: at a
// million instances, more CPU than the restore itself (CPU profile, docs/benchmarks.md
// "restore"). At 1000 it runs about three times during a restore of a million. A memory
// limit (GOMEMLIMIT, debug.SetMemoryLimit) still applies.
const restoreGCPercent = 1000

// raiseGCPercent sets GOGC to restoreGCPercent, unless it is already higher or off, and
// returns what puts the previous value back. GOGC is the process's: the previous value is put
// back only if no one changed it meanwhile (another engine's restore finishing first, the
// application), and a restore that finds it raised leaves it alone.
func raiseGCPercent() func() {
	prev := debug.SetGCPercent(restoreGCPercent)
	if prev < 0 || prev >= restoreGCPercent {
		debug.SetGCPercent(prev)
		return func() {}
	}
	return func() {
		if cur := debug.SetGCPercent(prev); cur != restoreGCPercent {
			debug.SetGCPercent(cur)
		}
	}
}

// registerRestored registers the records of a restore (register, with each lock taken once
// per batch rather than once per record) and notes the entry point among them.
func (e *Engine) registerRestored(cr *compRuntime, recs []*store.Instance) {
	insts := make([]*instance, len(recs))
	for i, rec := range recs {
		mr := cr.machines[rec.Machine]
		var err error
		switch {
		case mr == nil:
			err = fmt.Errorf("machine %s not found in component %s", rec.Machine, cr.def.Name)
		case mr.def.State(rec.State) == nil:
			err = fmt.Errorf("state %s not found in machine %s", rec.State, rec.Machine)
		}
		if err != nil {
			e.log.Warn("restore: instance skipped", "component", cr.def.Name, "instance", rec.ID, "err", err)
			continue
		}
		if !isLive(rec) && !rec.IsEntryPoint {
			continue
		}
		inst := &instance{isEntryPoint: rec.IsEntryPoint, mr: mr}
		// Idle, and not yet visible to any other goroutine: compact, as register does.
		inst.setIdleRecord(rec, e.compactIdle)
		insts[i] = inst
	}
	entry := false
	e.mu.Lock()
	for i, inst := range insts {
		if inst == nil {
			continue
		}
		entry = entry || cr.countsAsEntry(recs[i])
		if e.instances[recs[i].ID] != nil { // registered meanwhile (loaded on demand)
			insts[i] = nil
			continue
		}
		e.instances[recs[i].ID] = inst
	}
	e.mu.Unlock()
	var locked *machineRuntime
	for i, inst := range insts {
		if inst == nil {
			continue
		}
		rec := recs[i]
		if !isLive(rec) {
			continue
		}
		if inst.mr != locked {
			if locked != nil {
				locked.mu.Unlock()
			}
			locked = inst.mr
			locked.mu.Lock()
		}
		locked.addLocked(inst, rec)
		locked.count++
	}
	if locked != nil {
		locked.mu.Unlock()
	}
	var timers []restoredTimers
	for i, inst := range insts {
		if inst != nil && len(recs[i].Timers) > 0 && isLive(recs[i]) {
			timers = append(timers, restoredTimers{inst, recs[i].CreatedAt, recs[i].Timers})
		}
	}
	e.timers.restoreTimers(timers)
	if entry {
		cr.createMu.Lock()
		cr.entryExists = true
		cr.createMu.Unlock()
	}
}

// unregisterComponent forgets the instances of a component whose restore failed.
func (e *Engine) unregisterComponent(cr *compRuntime) {
	var gone []*instance
	e.mu.Lock()
	for id, inst := range e.instances {
		if inst.mr.comp == cr {
			delete(e.instances, id)
			gone = append(gone, inst)
		}
	}
	e.mu.Unlock()
	for _, inst := range gone {
		e.timers.set(inst, nil)
	}
}
