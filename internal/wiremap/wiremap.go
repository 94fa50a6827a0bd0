// Package wiremap converts between the engine's types (xcomponent.RuntimeEvent and its
// payloads, xcomponent.Instance, xcomponent.Event, xcomponent.Message) and the messages of the
// RabbitMQ protocol (package wire). It is the one place that knows both: the distributed
// runtime uses it to publish its runtime events, answer instance queries and send the outbox
// messages of other components as commands (MessageToWire, CrossFromWire), the distributed
// dashboard to turn what runtimes publish (ours and xcomponent-ai's) back into runtime events
// and instance views.
//
// Engine → wire → engine keeps every field the protocol carries. Messages from xcomponent-ai
// runtimes lack our additions (version, status, stateType, ids): they decode with those left
// at their zero value, which a consumer reads as "unknown" (see docs/design.md, "Live events").
package wiremap

import (
	"encoding/json"
	"fmt"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/wire"
)

// Origin is the runtime that publishes: the header of every fsm:events:* envelope.
type Origin struct {
	RuntimeID   string
	RuntimeName string
	// Component is the component name used when the runtime event has none.
	Component string
}

// Outgoing is a runtime event as the protocol carries it.
type Outgoing struct {
	// Channel is the fsm:events:* channel (wire.Channel*).
	Channel string
	// Envelope is a *wire.StateChange, *wire.InstanceCreated, *wire.InstanceCompleted or
	// *wire.TimeoutTriggered, to be encoded with wire.Encode.
	Envelope any
	// CausationID is the id of the event that caused it ("" when none): the AMQP causationId
	// header.
	CausationID string
}

// ToWire maps a runtime event to its fsm:events:* envelope. now (ms epoch) stamps an event
// without a timestamp. ok is false for the kinds the protocol does not carry (event_ignored,
// hook_error, broadcast_completed …).
func ToWire(ev xc.RuntimeEvent, o Origin, now int64) (out Outgoing, ok bool) {
	h := wire.Envelope[struct{}]{RuntimeID: o.RuntimeID, ComponentName: ev.Component, Timestamp: ev.Timestamp, RuntimeName: o.RuntimeName}
	if h.ComponentName == "" {
		h.ComponentName = o.Component
	}
	if h.Timestamp == 0 {
		h.Timestamp = now
	}
	switch d := ev.Data.(type) {
	case xc.StateChanged:
		env := &wire.StateChange{Data: wire.StateChangeData{
			InstanceID: d.InstanceID, MachineName: d.MachineName, PreviousState: d.PreviousState, NewState: d.NewState,
			Event: EventToWire(d.Event, h.Timestamp), Context: contextOrEmpty(d.Context),
			PendingTimeouts: PendingTimeoutsToWire(d.PendingTimeouts),
			StateType:       string(d.StateType), Status: string(d.Status), Version: d.Version,
		}}
		header(env, h, wire.EventStateChange)
		env.CausationID, env.CorrelationID = d.Event.ID, d.Event.CorrelationID
		return Outgoing{Channel: wire.ChannelStateChange, Envelope: env, CausationID: d.Event.ID}, true
	case xc.InstanceCreated:
		env := &wire.InstanceCreated{Data: wire.InstanceCreatedData{
			InstanceID: d.InstanceID, MachineName: d.MachineName, CurrentState: d.CurrentState,
			Context: contextOrEmpty(d.Context), Status: statusOr(d.Status), Version: d.Version,
			ParentID: d.ParentInstanceID, IsEntryPoint: d.IsEntryPoint,
		}}
		header(env, h, wire.EventInstanceCreated)
		return Outgoing{Channel: wire.ChannelInstanceCreated, Envelope: env}, true
	case xc.InstanceCompleted:
		env := &wire.InstanceCompleted{Data: wire.InstanceCompletedData{
			InstanceID: d.InstanceID, MachineName: d.MachineName, FinalState: d.FinalState,
			Context: contextOrEmpty(d.Context), Status: string(d.Status), Version: d.Version,
		}}
		header(env, h, wire.EventInstanceCompleted)
		return Outgoing{Channel: wire.ChannelInstanceCompleted, Envelope: env}, true
	case xc.TimeoutFired:
		env := &wire.TimeoutTriggered{Data: wire.TimeoutTriggeredData{
			InstanceID: d.InstanceID, MachineName: d.MachineName, Event: EventToWire(d.Event, h.Timestamp),
			FromState: d.FromState, ToState: d.ToState, Version: d.Version,
		}}
		header(env, h, wire.EventTimeoutTriggered)
		env.CausationID, env.CorrelationID = d.Event.ID, d.Event.CorrelationID
		return Outgoing{Channel: wire.ChannelTimeoutTriggered, Envelope: env, CausationID: d.Event.ID}, true
	}
	return Outgoing{}, false
}

// header copies the envelope header h into env.
func header[D any](env *wire.Envelope[D], h wire.Envelope[struct{}], eventType string) {
	env.RuntimeID, env.ComponentName, env.Timestamp, env.RuntimeName = h.RuntimeID, h.ComponentName, h.Timestamp, h.RuntimeName
	env.EventType = eventType
}

// Incoming is a runtime event received from a runtime.
type Incoming struct {
	Event xc.RuntimeEvent
	// RuntimeID and RuntimeName say which runtime published it (RuntimeName is "" for
	// xcomponent-ai runtimes).
	RuntimeID, RuntimeName string
	// Trace holds our runtimes' correlation and causation ids (empty from xcomponent-ai).
	Trace wire.Trace
}

// Decode turns the body of an fsm:events:* message received on channel into a runtime event.
// It accepts the messages of xcomponent-ai runtimes (no version, status, ids).
func Decode(channel string, body []byte) (Incoming, error) {
	switch channel {
	case wire.ChannelStateChange:
		env, err := wire.Decode[wire.StateChange](body)
		if err != nil {
			return Incoming{}, err
		}
		return FromStateChange(env), checkInstance(channel, env.Data.InstanceID)
	case wire.ChannelInstanceCreated:
		env, err := wire.Decode[wire.InstanceCreated](body)
		if err != nil {
			return Incoming{}, err
		}
		return FromInstanceCreated(env), checkInstance(channel, env.Data.InstanceID)
	case wire.ChannelInstanceCompleted:
		env, err := wire.Decode[wire.InstanceCompleted](body)
		if err != nil {
			return Incoming{}, err
		}
		return FromInstanceCompleted(env), checkInstance(channel, env.Data.InstanceID)
	case wire.ChannelTimeoutTriggered:
		env, err := wire.Decode[wire.TimeoutTriggered](body)
		if err != nil {
			return Incoming{}, err
		}
		return FromTimeoutTriggered(env), checkInstance(channel, env.Data.InstanceID)
	}
	return Incoming{}, fmt.Errorf("wiremap: %s is not an fsm:events:* channel", channel)
}

func checkInstance(channel, id string) error {
	if id == "" {
		return fmt.Errorf("wiremap: %s message without data.instanceId", channel)
	}
	return nil
}

func incoming[D any](env *wire.Envelope[D], data xc.RuntimeEventData, instanceID string) Incoming {
	return Incoming{
		Event:     xc.RuntimeEvent{Component: env.ComponentName, InstanceID: instanceID, Timestamp: env.Timestamp, Data: data},
		RuntimeID: env.RuntimeID, RuntimeName: env.RuntimeName, Trace: env.Trace,
	}
}

// FromStateChange maps a state_change envelope to a StateChanged runtime event.
func FromStateChange(env wire.StateChange) Incoming {
	d := env.Data
	ev := EventFromWire(d.Event)
	if ev.ID == "" {
		ev.ID = env.CausationID
	}
	if ev.CorrelationID == "" {
		ev.CorrelationID = env.CorrelationID
	}
	return incoming(&env, xc.StateChanged{
		InstanceID: d.InstanceID, MachineName: d.MachineName, PreviousState: d.PreviousState, NewState: d.NewState,
		StateType: component.StateType(d.StateType), Event: ev, Context: contextOrEmpty(d.Context),
		PendingTimeouts: PendingTimeoutsFromWire(d.PendingTimeouts, env.Timestamp),
		Status:          store.Status(d.Status), Version: d.Version,
	}, d.InstanceID)
}

// FromInstanceCreated maps an instance_created envelope to an InstanceCreated runtime event.
func FromInstanceCreated(env wire.InstanceCreated) Incoming {
	d := env.Data
	return incoming(&env, xc.InstanceCreated{
		InstanceID: d.InstanceID, MachineName: d.MachineName, CurrentState: d.CurrentState,
		Context: contextOrEmpty(d.Context), Status: store.Status(statusOr(store.Status(d.Status))), Version: d.Version,
		IsEntryPoint: d.IsEntryPoint, ParentInstanceID: d.ParentID,
	}, d.InstanceID)
}

// FromInstanceCompleted maps an instance_completed envelope to an InstanceCompleted runtime
// event. Without a status (xcomponent-ai), the instance is taken as completed.
func FromInstanceCompleted(env wire.InstanceCompleted) Incoming {
	d := env.Data
	status := store.Status(d.Status)
	if status == "" {
		status = store.StatusCompleted
	}
	return incoming(&env, xc.InstanceCompleted{
		InstanceID: d.InstanceID, MachineName: d.MachineName, FinalState: d.FinalState,
		Status: status, Context: contextOrEmpty(d.Context), Version: d.Version,
	}, d.InstanceID)
}

// FromTimeoutTriggered maps a timeout_triggered envelope to a TimeoutFired runtime event.
func FromTimeoutTriggered(env wire.TimeoutTriggered) Incoming {
	d := env.Data
	ev := EventFromWire(d.Event)
	if ev.ID == "" {
		ev.ID = env.CausationID
	}
	if ev.CorrelationID == "" {
		ev.CorrelationID = env.CorrelationID
	}
	return incoming(&env, xc.TimeoutFired{
		InstanceID: d.InstanceID, MachineName: d.MachineName, Event: ev,
		FromState: d.FromState, ToState: d.ToState, Version: d.Version,
	}, d.InstanceID)
}

// EventToWire is an event as it travels: its type, payload ({} when empty: xcomponent-ai
// reads event.payload unconditionally), id and timestamp ts, and our additions (correlation
// and causation ids, actor, source), so that a dashboard shows who sent it whether it reads
// the engine or the broker.
func EventToWire(ev xc.Event, ts int64) wire.Event {
	return wire.Event{Type: ev.Type, Payload: contextOrEmpty(ev.Payload), Timestamp: ts, ID: ev.ID,
		CorrelationID: ev.CorrelationID, CausationID: ev.CausationID, Actor: ev.Actor, Source: string(ev.Source)}
}

// EventFromWire is the engine's event of a wire event (its timestamp is dropped).
func EventFromWire(ev wire.Event) xc.Event {
	return xc.Event{Type: ev.Type, Payload: ev.Payload, ID: ev.ID, CorrelationID: ev.CorrelationID,
		CausationID: ev.CausationID, Actor: ev.Actor, Source: xc.Source(ev.Source)}
}

// Snapshot is an instance as fsm:responses:query lists it.
func Snapshot(in xc.Instance) wire.InstanceSnapshot {
	return wire.InstanceSnapshot{ID: in.ID, MachineName: in.MachineName, CurrentState: in.CurrentState,
		Context: contextOrEmpty(in.Context), PendingTimeouts: PendingTimeoutsToWire(in.PendingTimeouts),
		Status: string(in.Status), Version: in.Version}
}

// InstanceView is the instance view of one instance of a query response from a runtime of
// component. now (ms epoch) recomputes the timers' remainingMs. Without a status
// (xcomponent-ai lists only active instances), the instance is active; CreatedAt and
// UpdatedAt are unknown (0).
func InstanceView(componentName string, s wire.InstanceSnapshot, now int64) xc.Instance {
	status := store.Status(s.Status)
	if status == "" {
		status = store.StatusActive
	}
	return xc.Instance{ID: s.ID, ComponentName: componentName, MachineName: s.MachineName, CurrentState: s.CurrentState,
		Context: contextOrEmpty(s.Context), Status: status, Version: s.Version,
		PendingTimeouts: PendingTimeoutsFromWire(s.PendingTimeouts, now)}
}

// PendingTimeoutsToWire is the wire shape of armed timers (never nil).
func PendingTimeoutsToWire(ts []xc.PendingTimeout) []wire.PendingTimeout {
	out := make([]wire.PendingTimeout, 0, len(ts))
	for _, t := range ts {
		out = append(out, wire.PendingTimeout{"event": t.Event, "targetState": t.TargetState, "dueAt": t.DueAt,
			"remainingMs": t.RemainingMs, "totalMs": t.TotalMs, "kind": t.Kind})
	}
	return out
}

// PendingTimeoutsFromWire reads armed timers ({event, targetState, dueAt, remainingMs,
// totalMs, kind}, any of them may be missing; never nil). When dueAt is known, remainingMs is
// recomputed as of now (ms epoch).
func PendingTimeoutsFromWire(ts []wire.PendingTimeout, now int64) []xc.PendingTimeout {
	out := make([]xc.PendingTimeout, 0, len(ts))
	for _, m := range ts {
		t := xc.PendingTimeout{Event: str(m["event"]), TargetState: str(m["targetState"]), DueAt: num(m["dueAt"]),
			RemainingMs: num(m["remainingMs"]), TotalMs: num(m["totalMs"]), Kind: str(m["kind"])}
		if t.DueAt > 0 && now > 0 {
			t.RemainingMs = max(t.DueAt-now, 0)
		}
		out = append(out, t)
	}
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// num reads a JSON number (float64 or json.Number once decoded, an integer when built in Go).
func num(v any) int64 {
	switch n := v.(type) {
	case float64:
		return int64(n)
	case int64:
		return n
	case int:
		return int64(n)
	case json.Number:
		i, _ := n.Int64()
		return i
	}
	return 0
}

func contextOrEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func statusOr(s store.Status) string {
	if s == "" {
		return string(store.StatusActive)
	}
	return string(s)
}
