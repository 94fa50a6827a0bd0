package xcomponent

import (
	"container/heap"
	"errors"
	"sync"
	"time"

	"github.com/xcomponent/xcomponent/clock"
	"github.com/xcomponent/xcomponent/store"
)

// timerQueue holds every armed timer of the engine in a min-heap by deadline, with one clock
// timer set for the earliest: idle timers cost no CPU. Each instance's entries are known, so
// that a transition replaces them exactly: the heap holds only pending armings.
type timerQueue struct {
	e     *Engine
	batch int

	mu      sync.Mutex
	h       timerHeap
	byInst  map[*instance][]*timerEntry
	next    clock.Timer
	nextDue int64 // deadline next is set for; 0 when none
	stopped bool
	seq     uint64
}

type timerEntry struct {
	due int64
	// seq is the arming order: timers due at the same time fire in the order they were
	// armed. Restored armings (restoreTimers) have seq 0, before any armed since, and among
	// themselves the order of their instances' creation (created, then the instance id), then
	// their place in the instance's list (ord): the rows of a restore arrive in no particular
	// order, and this is the order they were armed in before the restart.
	seq     uint64
	created int64
	ord     int
	index   int // position in the heap
	inst    *instance
	timer   store.Timer
}

type timerHeap []*timerEntry

func (h timerHeap) Len() int { return len(h) }

func (h timerHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if a.due != b.due {
		return a.due < b.due
	}
	if a.seq != b.seq || a.seq != 0 {
		return a.seq < b.seq
	}
	if a.created != b.created {
		return a.created < b.created
	}
	if a.inst != b.inst {
		return a.inst.ID() < b.inst.ID()
	}
	return a.ord < b.ord
}

func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *timerHeap) Push(x any) {
	te := x.(*timerEntry)
	te.index = len(*h)
	*h = append(*h, te)
}

func (h *timerHeap) Pop() any {
	old := *h
	n := len(old)
	x := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return x
}

func (q *timerQueue) init(e *Engine, batch int) {
	q.e = e
	q.batch = batch
	if q.batch <= 0 {
		q.batch = 1000
	}
	q.byInst = make(map[*instance][]*timerEntry)
}

// set makes the queue hold exactly the pending timers ts of inst: armings it already holds
// stay (keeping their order), others are removed, new ones are added. Cheap when the
// instance has no timer before or after.
func (q *timerQueue) set(inst *instance, ts []store.Timer) {
	if len(ts) == 0 && !inst.timersArmed.Load() {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return
	}
	old := q.byInst[inst]
	var kept []*timerEntry
	for _, te := range old {
		if hasTimer(ts, &te.timer) {
			kept = append(kept, te)
		} else {
			heap.Remove(&q.h, te.index)
		}
	}
	for _, t := range ts {
		if t.Spent || armed(kept, &t) {
			continue
		}
		q.seq++
		te := &timerEntry{due: t.DueAt, seq: q.seq, inst: inst, timer: t}
		heap.Push(&q.h, te)
		kept = append(kept, te)
	}
	if len(kept) == 0 {
		delete(q.byInst, inst)
		inst.timersArmed.Store(false)
	} else {
		q.byInst[inst] = kept
		inst.timersArmed.Store(true)
	}
	q.scheduleLocked()
}

// restoredTimers are the pending timers of a restored instance.
type restoredTimers struct {
	inst    *instance
	created int64 // the instance's creation time
	timers  []store.Timer
}

// restoreTimers arms the timers of freshly restored instances, which hold none yet, with the
// queue's lock taken once: seq 0 and the instances' creation order (timerEntry).
func (q *timerQueue) restoreTimers(rs []restoredTimers) {
	if len(rs) == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return
	}
	for _, r := range rs {
		if q.byInst[r.inst] != nil {
			continue // armed meanwhile: by a transition, which knows better
		}
		var es []*timerEntry
		for i, t := range r.timers {
			if t.Spent || armed(es, &t) {
				continue
			}
			te := &timerEntry{due: t.DueAt, created: r.created, ord: i, inst: r.inst, timer: t}
			heap.Push(&q.h, te)
			es = append(es, te)
		}
		if len(es) > 0 {
			q.byInst[r.inst] = es
			r.inst.timersArmed.Store(true)
		}
	}
	q.scheduleLocked()
}

func armed(es []*timerEntry, t *store.Timer) bool {
	for _, te := range es {
		if te.timer.Transition == t.Transition && te.timer.DueAt == t.DueAt {
			return true
		}
	}
	return false
}

// popLocked takes the earliest entry out of the heap and out of its instance's list.
func (q *timerQueue) popLocked() *timerEntry {
	te := heap.Pop(&q.h).(*timerEntry)
	es := q.byInst[te.inst]
	for i, x := range es {
		if x == te {
			es = append(es[:i], es[i+1:]...)
			break
		}
	}
	if len(es) == 0 {
		delete(q.byInst, te.inst)
		te.inst.timersArmed.Store(false)
	} else {
		q.byInst[te.inst] = es
	}
	return te
}

// timerRetryMs is how long a timer whose firing could not be committed waits before the next
// attempt.
const timerRetryMs = 1000

// retry puts back an arming whose firing failed, due again at `at` (its own deadline stays).
func (q *timerQueue) retry(inst *instance, t store.Timer, at int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped || armed(q.byInst[inst], &t) {
		return
	}
	q.seq++
	te := &timerEntry{due: at, seq: q.seq, inst: inst, timer: t}
	heap.Push(&q.h, te)
	q.byInst[inst] = append(q.byInst[inst], te)
	inst.timersArmed.Store(true)
	q.scheduleLocked()
}

// scheduleLocked sets the clock timer for the earliest deadline (normal mode only).
func (q *timerQueue) scheduleLocked() {
	if q.e.manual || q.stopped || len(q.h) == 0 {
		return
	}
	due := q.h[0].due
	if q.next != nil && q.nextDue <= due {
		return
	}
	if q.next != nil {
		q.next.Stop()
	}
	d := time.Duration(due-q.e.nowMs()) * time.Millisecond
	q.nextDue = due
	q.next = q.e.clock.AfterFunc(d, q.onClock)
}

// onClock runs when the earliest deadline is reached: it fires due timers in bounded batches,
// waiting for each batch before the next, then sets the clock for what is left.
func (q *timerQueue) onClock() {
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return
	}
	q.next = nil
	q.nextDue = 0
	q.e.wg.Add(1)
	q.mu.Unlock()
	defer q.e.wg.Done()
	for q.fireDue() > 0 {
	}
	q.mu.Lock()
	q.scheduleLocked()
	q.mu.Unlock()
}

// fireDue fires up to one batch of due timers and returns how many it popped. In normal mode
// it waits until the batch is processed.
func (q *timerQueue) fireDue() int {
	now := q.e.nowMs()
	q.mu.Lock()
	var due []*timerEntry
	for len(q.h) > 0 && q.h[0].due <= now && len(due) < q.batch {
		due = append(due, q.popLocked())
	}
	q.mu.Unlock()
	if len(due) == 0 {
		return 0
	}
	var wg sync.WaitGroup
	for _, te := range due {
		if live, timers := te.inst.timerState(); !live || !hasTimer(timers, &te.timer) {
			continue
		}
		q.fire(te.inst, te.timer, now, nil, &wg)
	}
	if !q.e.manual {
		wg.Wait()
	}
	return len(due)
}

// fire queues the firing of arming t of inst; wg is done once it is processed. fresh, when
// set, is the instance's record as a claim read it from the store (see timerPoller).
func (q *timerQueue) fire(inst *instance, timer store.Timer, now int64, fresh *store.Instance, wg *sync.WaitGroup) {
	ev := timerEvent(inst.ID(), &timer)
	lag := now - timer.DueAt
	wg.Add(1)
	q.e.enqueue(&delivery{inst: inst, ev: ev, timer: &timer, fresh: fresh, done: func(res Result, err error) {
		defer wg.Done()
		if errors.Is(err, errTimerGone) {
			return // fired or cancelled meanwhile (by this process or another): not a firing
		}
		if q.e.observer != nil {
			q.e.observer.TimerFired(float64(lag) / 1000)
		}
		if errors.Is(err, ErrStore) {
			// Nothing was applied: the arming is still pending. Try again in a while
			// rather than hammering a store that is down.
			q.retry(inst, timer, q.e.nowMs()+timerRetryMs)
			return
		}
		if err != nil {
			return
		}
		q.e.emit(RuntimeEvent{Component: res.Instance.ComponentName, InstanceID: res.Instance.ID,
			Data: TimeoutFired{InstanceID: res.Instance.ID, MachineName: res.Instance.MachineName,
				Event: ev, FromState: res.PreviousState, ToState: res.NewState, Version: res.Instance.Version}})
	}})
}

func (q *timerQueue) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stopped = true
	if q.next != nil {
		q.next.Stop()
		q.next = nil
	}
}

// nextDeadline returns the earliest armed deadline that is still valid.
func (q *timerQueue) nextDeadline() (int64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.h) > 0 {
		te := q.h[0]
		if live, timers := te.inst.timerState(); live && hasTimer(timers, &te.timer) {
			return te.due, true
		}
		q.popLocked()
	}
	return 0, false
}

// nextDeadline returns the earliest pending timer deadline (xcomponenttest drives a virtual
// clock with it).
func (e *Engine) nextDeadline() (time.Time, bool) {
	ms, ok := e.timers.nextDeadline()
	if !ok {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

// PendingTimers counts the armed timers of live instances.
func (e *Engine) PendingTimers() int {
	e.mu.RLock()
	insts := make([]*instance, 0, len(e.instances))
	for _, inst := range e.instances {
		insts = append(insts, inst)
	}
	e.mu.RUnlock()
	n := 0
	for _, inst := range insts {
		if live, timers := inst.timerState(); live {
			for _, t := range timers {
				if !t.Spent {
					n++
				}
			}
		}
	}
	return n
}

// DueTimers counts the pending timers of the live instances whose deadline is at or before
// now (due: not fired yet), and among them those due for longer than late (overdue). Only
// the instances this engine holds are counted.
func (e *Engine) DueTimers(now time.Time, late time.Duration) (due, overdue int) {
	e.mu.RLock()
	insts := make([]*instance, 0, len(e.instances))
	for _, inst := range e.instances {
		insts = append(insts, inst)
	}
	e.mu.RUnlock()
	nowMs, lateMs := now.UnixMilli(), now.Add(-late).UnixMilli()
	for _, inst := range insts {
		live, timers := inst.timerState()
		if !live {
			continue
		}
		for _, t := range timers {
			if t.Spent || t.DueAt > nowMs {
				continue
			}
			due++
			if t.DueAt <= lateMs {
				overdue++
			}
		}
	}
	return due, overdue
}
