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
// goroutine, which also builds each instance while its record is in cache (compact,
// prepareRestored), while this one registers what has arrived (registerRestored), so that
// the work is shared by the two cores; other stores are read with LoadLive. On an error
// nothing of the component stays registered.
func (e *Engine) restore(ctx context.Context, cr *compRuntime) (int, error) {
	ls, ok := e.store.(store.LiveStreamer)
	if !ok {
		recs, err := e.store.LoadLive(ctx, cr.def.Name)
		if err != nil {
			return 0, err
		}
		batch := make([]restoredRec, len(recs))
		for i := range recs {
			batch[i] = e.prepareRestored(cr, &recs[i])
		}
		e.registerRestored(cr, batch, nil)
		return len(recs), nil
	}
	defer raiseGCPercent()()
	hint := e.presizeRestore(ctx, cr)
	batches := make(chan []restoredRec, 16)
	// spare takes back the batches registered, for the reading goroutine to fill again.
	spare := make(chan []restoredRec, 16)
	// free takes back the records registerRestored did not keep, for the stream to decode
	// further rows into (store.LiveRecycler). Neither is ever waited on.
	var free chan []*store.Instance
	stream := ls.StreamLive
	if lr, ok := e.store.(store.LiveRecycler); ok {
		free = make(chan []*store.Instance, 4)
		stream = func(ctx context.Context, comp string, fn func(*store.Instance) error) error {
			return lr.StreamLiveReusing(ctx, comp, free, fn)
		}
	}
	newBatch := func() []restoredRec {
		select {
		case b := <-spare:
			return b[:0]
		default:
			return make([]restoredRec, 0, restoreBatch)
		}
	}
	var streamErr error
	go func() {
		// Ends when the stream does: this goroutine's only send is to a channel that the
		// loop below drains until it is closed.
		defer close(batches)
		batch := newBatch()
		streamErr = stream(ctx, cr.def.Name, func(rec *store.Instance) error {
			batch = append(batch, e.prepareRestored(cr, rec))
			if len(batch) == restoreBatch {
				batches <- batch
				batch = newBatch()
			}
			return nil
		})
		if streamErr == nil && len(batch) > 0 {
			batches <- batch
		}
	}()
	n := 0
	var unused []*store.Instance
	for batch := range batches {
		n += len(batch)
		if free != nil {
			unused = make([]*store.Instance, 0, len(batch))
		}
		unused = e.registerRestored(cr, batch, unused)
		if n == len(batch) && hint > 0 {
			cr.presizeIndexes(hint, n)
		}
		clear(batch)
		select {
		case spare <- batch:
		default:
		}
		if len(unused) > 0 {
			select {
			case free <- unused:
			default: // the stream has enough at hand: left to the collector
			}
		}
	}
	// streamErr was written before batches was closed.
	if streamErr != nil {
		e.unregisterComponent(cr)
		return 0, streamErr
	}
	return n, nil
}

// minPresize is the smallest estimate of a restore's size that its maps are sized for in
// advance: below it, growing them costs little.
const minPresize = 4096

// presizeRestore sizes the engine's instance map for the component's live instances when
// the store estimates their number (store.LiveEstimator), and returns the estimate (0: none).
// At a million instances, growing the map as they come took a tenth of a restore's CPU.
func (e *Engine) presizeRestore(ctx context.Context, cr *compRuntime) int {
	le, ok := e.store.(store.LiveEstimator)
	if !ok {
		return 0
	}
	hint, err := le.EstimateLive(ctx, cr.def.Name)
	if err != nil {
		e.log.Debug("restore: no estimate of the live instances", "component", cr.def.Name, "err", err)
		return 0
	}
	if hint < minPresize {
		return 0
	}
	e.mu.Lock()
	// A new map holds the instances already registered: worth it only while they are fewer
	// than those to come.
	if len(e.instances) <= hint {
		e.instances = growMap(e.instances, len(e.instances)+hint)
	}
	e.mu.Unlock()
	return hint
}

// presizeIndexes sizes, after the first n records of a restore of about hint instances, the
// routing indexes whose values look unique (as many values as instances so far), for their
// machine's share of hint. Indexes of properties with fewer distinct values stay as they are.
func (cr *compRuntime) presizeIndexes(hint, n int) {
	for _, mr := range cr.machines {
		mr.mu.Lock()
		if mr.count >= 256 {
			want := hint / n * mr.count
			for _, vi := range mr.index {
				if len(vi.strings) >= mr.count*9/10 {
					vi.strings = growMap(vi.strings, want)
				}
				if len(vi.numbers) >= mr.count*9/10 {
					vi.numbers = growMap(vi.numbers, want)
				}
			}
		}
		mr.mu.Unlock()
	}
}

// growMap returns m, or a copy of it with room for n entries when it has fewer.
func growMap[K comparable, V any](m map[K]V, n int) map[K]V {
	if len(m) >= n {
		return m
	}
	out := make(map[K]V, n)
	for k, v := range m {
		out[k] = v
	}
	return out
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

// restoredRec is a record of a restore and the instance built for it.
type restoredRec struct {
	rec  *store.Instance
	inst *instance // nil when the record is skipped
	full bool      // inst keeps rec itself (not compact)
}

// prepareRestored checks a record of a restore and builds its instance, compact unless the
// store keeps the records (as register does); the instance is not registered yet.
func (e *Engine) prepareRestored(cr *compRuntime, rec *store.Instance) restoredRec {
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
		return restoredRec{rec: rec}
	}
	if !isLive(rec) && !rec.IsEntryPoint {
		return restoredRec{rec: rec}
	}
	inst := &instance{isEntryPoint: rec.IsEntryPoint, mr: mr}
	// Idle, and not yet visible to any other goroutine.
	inst.setIdleRecord(rec, e.compactIdle)
	return restoredRec{rec: rec, inst: inst, full: inst.rec.Load() == rec}
}

// registerRestored registers the instances of a restore (register, with each lock taken once
// per batch rather than once per record) and notes the entry point among them. It appends to
// unused the records that nothing references any more — those of the instances kept compact,
// and those skipped — and returns it.
func (e *Engine) registerRestored(cr *compRuntime, batch []restoredRec, unused []*store.Instance) []*store.Instance {
	entry := false
	e.mu.Lock()
	for i := range batch {
		r := &batch[i]
		if r.inst == nil {
			continue
		}
		entry = entry || cr.countsAsEntry(r.rec)
		if e.instances[r.rec.ID] != nil { // registered meanwhile (loaded on demand)
			r.inst = nil
			continue
		}
		e.instances[r.rec.ID] = r.inst
	}
	e.mu.Unlock()
	var locked *machineRuntime
	for _, r := range batch {
		if r.inst == nil || !isLive(r.rec) {
			continue
		}
		if r.inst.mr != locked {
			if locked != nil {
				locked.mu.Unlock()
			}
			locked = r.inst.mr
			locked.mu.Lock()
		}
		locked.addLocked(r.inst, r.rec)
		locked.count++
	}
	if locked != nil {
		locked.mu.Unlock()
	}
	var timers []restoredTimers
	for _, r := range batch {
		if r.inst != nil && len(r.rec.Timers) > 0 && isLive(r.rec) {
			timers = append(timers, restoredTimers{r.inst, r.rec.CreatedAt, r.rec.Timers})
		}
	}
	e.timers.restoreTimers(timers)
	if entry {
		cr.createMu.Lock()
		cr.entryExists = true
		cr.createMu.Unlock()
	}
	if unused == nil {
		return nil
	}
	for _, r := range batch {
		if r.inst == nil || !r.full {
			unused = append(unused, r.rec)
		}
	}
	return unused
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
