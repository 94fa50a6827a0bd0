package xcomponent

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

// Runtime event types (semantics.md, "Runtime events").
const (
	EvInstanceCreated    = "instance_created"
	EvStateChange        = "state_change"
	EvInstanceCompleted  = "instance_completed"
	EvEventIgnored       = "event_ignored"
	EvHookError          = "hook_error"
	EvInstanceError      = "instance_error"
	EvTimeoutFired       = "timeout_fired"
	EvBroadcastCompleted = "broadcast_completed"
	EvCascadeCompleted   = "cascade_completed"
	EvCrossComponentSent = "cross_component_sent"
)

// RuntimeEvent is something the engine did, for subscribers (library users, the dashboard's
// live feed, the broker). Data has the fields listed in semantics.md for its Type.
type RuntimeEvent struct {
	Type       string         `json:"type"`
	Component  string         `json:"componentName"`
	InstanceID string         `json:"instanceId,omitempty"`
	Timestamp  int64          `json:"timestamp"`
	Data       map[string]any `json:"data"`
}

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

func eventMap(ev *Event) map[string]any {
	m := map[string]any{"type": ev.Type, "payload": ev.Payload}
	if ev.Payload == nil {
		m["payload"] = map[string]any{}
	}
	if ev.ID != "" {
		m["id"] = ev.ID
	}
	return m
}

func (e *Engine) emitCreated(rec *store.Instance) {
	if !e.hasSubscribers() {
		return
	}
	e.emit(RuntimeEvent{Type: EvInstanceCreated, Component: rec.Component, InstanceID: rec.ID,
		Data: map[string]any{"instanceId": rec.ID, "machineName": rec.Machine, "currentState": rec.State,
			"context": rec.Data, "parentInstanceId": rec.ParentID, "isEntryPoint": rec.IsEntryPoint}})
}

func (e *Engine) emitTransition(prev, next *store.Instance, t *component.Transition, target *component.State, d *delivery) {
	if !e.hasSubscribers() {
		return
	}
	e.emit(RuntimeEvent{Type: EvStateChange, Component: next.Component, InstanceID: next.ID, Timestamp: next.UpdatedAt,
		Data: map[string]any{"instanceId": next.ID, "componentName": next.Component, "machineName": next.Machine,
			"previousState": prev.State, "newState": next.State, "stateType": string(target.Type),
			"event": eventMap(&d.ev), "eventId": d.ev.ID, "context": next.Data, "version": next.Version,
			"pendingTimeouts": View(next, false, next.UpdatedAt).PendingTimeouts, "timestamp": next.UpdatedAt}})
	if next.Status != store.StatusActive {
		e.emit(RuntimeEvent{Type: EvInstanceCompleted, Component: next.Component, InstanceID: next.ID, Timestamp: next.UpdatedAt,
			Data: map[string]any{"instanceId": next.ID, "machineName": next.Machine, "finalState": next.State,
				"status": string(next.Status), "context": next.Data}})
	}
}

// sortTargets orders routed targets by instance id (UUIDv7: creation order) so that fan-outs
// are deterministic.
func sortTargets(ts []*instance) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].ID() < ts[j].ID() })
}

func sortInstances(is []Instance) {
	sort.Slice(is, func(i, j int) bool {
		if is[i].CreatedAt != is[j].CreatedAt {
			return is[i].CreatedAt < is[j].CreatedAt
		}
		return is[i].ID < is[j].ID
	})
}
