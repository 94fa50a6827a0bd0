package xcomponent

import (
	"sync"
	"sync/atomic"

	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

// subscribers fans runtime events out to channels without ever blocking the engine: a
// subscriber whose buffer is full misses the event (and it is counted).
type subscribers struct {
	mu      sync.RWMutex
	next    int
	chans   map[int]chan RuntimeEvent
	count   atomic.Int32
	dropped atomic.Int64
}

// Subscribe returns a channel of runtime events with room for buffer events, and a function
// that ends the subscription. A subscriber that does not keep up misses events; it never
// slows the engine down.
func (e *Engine) Subscribe(buffer int) (<-chan RuntimeEvent, func()) {
	if buffer <= 0 {
		buffer = 256
	}
	s := &e.subs
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.chans == nil {
		s.chans = make(map[int]chan RuntimeEvent)
	}
	id := s.next
	s.next++
	ch := make(chan RuntimeEvent, buffer)
	s.chans[id] = ch
	s.count.Add(1)
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if c, ok := s.chans[id]; ok {
				delete(s.chans, id)
				s.count.Add(-1)
				close(c)
			}
		})
	}
}

// DroppedEvents counts runtime events that slow subscribers missed.
func (e *Engine) DroppedEvents() int64 { return e.subs.dropped.Load() }

func (s *subscribers) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, c := range s.chans {
		close(c)
		delete(s.chans, id)
	}
	s.count.Store(0)
}

func (e *Engine) hasSubscribers() bool { return e.listener != nil || e.subs.count.Load() > 0 }

func (e *Engine) emit(ev RuntimeEvent) {
	if !e.hasSubscribers() {
		return
	}
	if ev.Timestamp == 0 {
		ev.Timestamp = e.nowMs()
	}
	if e.listener != nil {
		e.listener(ev)
	}
	s := &e.subs
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, c := range s.chans {
		select {
		case c <- ev:
		default:
			s.dropped.Add(1)
		}
	}
}

func (e *Engine) emitCreated(rec *store.Instance) {
	if !e.hasSubscribers() {
		return
	}
	e.emit(RuntimeEvent{Component: rec.Component, InstanceID: rec.ID, Data: InstanceCreated{
		InstanceID: rec.ID, MachineName: rec.Machine, CurrentState: rec.State, Context: rec.Data,
		Status: rec.Status, Version: rec.Version, IsEntryPoint: rec.IsEntryPoint, ParentInstanceID: rec.ParentID}})
}

func (e *Engine) emitTransition(prev, next *store.Instance, t *component.Transition, target *component.State, d *delivery) {
	if !e.hasSubscribers() {
		return
	}
	e.emit(RuntimeEvent{Component: next.Component, InstanceID: next.ID, Timestamp: next.UpdatedAt, Data: StateChanged{
		InstanceID: next.ID, MachineName: next.Machine, PreviousState: prev.State, NewState: next.State,
		StateType: target.Type, Event: d.ev, Context: next.Data, Status: next.Status, Version: next.Version,
		PendingTimeouts: pendingTimeouts(next, next.UpdatedAt)}})
	if next.Status != store.StatusActive {
		e.emit(RuntimeEvent{Component: next.Component, InstanceID: next.ID, Timestamp: next.UpdatedAt, Data: InstanceCompleted{
			InstanceID: next.ID, MachineName: next.Machine, FinalState: next.State, Status: next.Status,
			Context: next.Data, Version: next.Version}})
	}
}

// emitFanOut reports a routed message (broadcast, cascade, cross-component event) delivered to
// all its targets in component comp.
func (e *Engine) emitFanOut(comp string, m Message, matched, processed int) {
	if !e.hasSubscribers() {
		return
	}
	fan := BroadcastCompleted{MachineName: m.Machine, Event: m.Event, Matched: matched,
		Processed: processed, TargetComponent: comp, SourceComponent: m.SourceComponent}
	var data RuntimeEventData = fan
	switch m.Origin {
	case SourceCascade:
		data = CascadeCompleted(fan)
	case SourceCrossComponent:
		data = CrossComponentSent{Delivery: CrossDelivered, TargetComponent: comp, TargetMachine: m.Machine,
			SourceComponent: m.SourceComponent, Event: m.Event, Matched: matched, Processed: processed}
	}
	e.emit(RuntimeEvent{Component: comp, InstanceID: m.SourceInstanceID, Data: data})
}
