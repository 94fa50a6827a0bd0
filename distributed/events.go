package distributed

import (
	"context"

	"github.com/google/uuid"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/wire"
)

// publishEvents publishes the engine's runtime events on their fan-out channels, in order,
// until events is closed or ctx ends.
func (r *runtime) publishEvents(ctx context.Context, events <-chan xc.RuntimeEvent) {
	for ev := range events {
		channel, body, ok := r.envelope(ev)
		if !ok {
			continue
		}
		meta := bus.Meta{MessageID: uuid.NewString()}
		if id, _ := ev.Data["eventId"].(string); id != "" {
			meta.Headers = map[string]string{"causationId": id}
		}
		if err := r.bus.Publish(ctx, channel, body, meta); err != nil {
			// The store holds the transition; only the live notification is lost.
			r.log.Warn("runtime event not published", "channel", channel, "instance", ev.InstanceID, "err", err)
		}
	}
}

// logDropped logs the runtime events the publisher missed since the last call (its buffer
// was full: the broker was too slow or unreachable for too long).
func (r *runtime) logDropped() {
	n := r.eng.DroppedEvents()
	if prev := r.dropped.Swap(n); n > prev {
		r.log.Warn("runtime events dropped: not published on the broker (the store has them)", "dropped", n-prev, "total", n)
	}
}

// envelope turns a runtime event into its wire channel and body; ok is false for the events
// the protocol does not carry.
func (r *runtime) envelope(ev xc.RuntimeEvent) (channel string, body []byte, ok bool) {
	d := ev.Data
	var err error
	switch ev.Type {
	case xc.EvStateChange:
		env := wire.StateChange{Data: wire.StateChangeData{
			InstanceID: str(d, "instanceId"), MachineName: str(d, "machineName"),
			PreviousState: str(d, "previousState"), NewState: str(d, "newState"),
			Event: wireEvent(d["event"], ev.Timestamp), Context: ctxMap(d["context"]),
			PendingTimeouts: pendingTimeouts(d["pendingTimeouts"]), Version: i64(d, "version"),
		}}
		r.fill(&env, ev, wire.EventStateChange)
		env.CausationID = str(d, "eventId")
		channel = wire.ChannelStateChange
		body, err = wire.Encode(env)
	case xc.EvInstanceCreated:
		env := wire.InstanceCreated{Data: wire.InstanceCreatedData{
			InstanceID: str(d, "instanceId"), MachineName: str(d, "machineName"),
			CurrentState: str(d, "currentState"), Context: ctxMap(d["context"]),
			Status: "active", ParentID: str(d, "parentInstanceId"),
		}}
		r.fill(&env, ev, wire.EventInstanceCreated)
		channel = wire.ChannelInstanceCreated
		body, err = wire.Encode(env)
	case xc.EvInstanceCompleted:
		env := wire.InstanceCompleted{Data: wire.InstanceCompletedData{
			InstanceID: str(d, "instanceId"), MachineName: str(d, "machineName"),
			FinalState: str(d, "finalState"), Context: ctxMap(d["context"]), Status: str(d, "status"),
		}}
		r.fill(&env, ev, wire.EventInstanceCompleted)
		channel = wire.ChannelInstanceCompleted
		body, err = wire.Encode(env)
	case xc.EvTimeoutFired:
		env := wire.TimeoutTriggered{Data: wire.TimeoutTriggeredData{
			InstanceID: str(d, "instanceId"), MachineName: str(d, "machineName"),
			Event: wireEvent(d["event"], ev.Timestamp), FromState: str(d, "fromState"), ToState: str(d, "toState"),
		}}
		r.fill(&env, ev, wire.EventTimeoutTriggered)
		channel = wire.ChannelTimeoutTriggered
		body, err = wire.Encode(env)
	default:
		return "", nil, false
	}
	if err != nil {
		r.log.Warn("runtime event not encodable, not published", "type", ev.Type, "instance", ev.InstanceID, "err", err)
		return "", nil, false
	}
	return channel, body, true
}

func (r *runtime) fill(env any, ev xc.RuntimeEvent, eventType string) {
	ts := ev.Timestamp
	if ts == 0 {
		ts = wire.Now()
	}
	comp := ev.Component
	if comp == "" {
		comp = r.comp.Name
	}
	switch e := env.(type) {
	case *wire.StateChange:
		e.RuntimeID, e.ComponentName, e.EventType, e.Timestamp, e.RuntimeName = r.id, comp, eventType, ts, r.cfg.RuntimeName
	case *wire.InstanceCreated:
		e.RuntimeID, e.ComponentName, e.EventType, e.Timestamp, e.RuntimeName = r.id, comp, eventType, ts, r.cfg.RuntimeName
	case *wire.InstanceCompleted:
		e.RuntimeID, e.ComponentName, e.EventType, e.Timestamp, e.RuntimeName = r.id, comp, eventType, ts, r.cfg.RuntimeName
	case *wire.TimeoutTriggered:
		e.RuntimeID, e.ComponentName, e.EventType, e.Timestamp, e.RuntimeName = r.id, comp, eventType, ts, r.cfg.RuntimeName
	}
}

func str(d map[string]any, k string) string {
	s, _ := d[k].(string)
	return s
}

func i64(d map[string]any, k string) int64 {
	switch v := d[k].(type) {
	case int64:
		return v
	case int:
		return int64(v)
	case float64:
		return int64(v)
	}
	return 0
}

func ctxMap(v any) map[string]any {
	if m, ok := v.(map[string]any); ok && m != nil {
		return m
	}
	return map[string]any{}
}

// wireEvent converts the engine's event map ({type, payload, id}) or a bare event type.
func wireEvent(v any, ts int64) wire.Event {
	switch e := v.(type) {
	case string:
		return wire.Event{Type: e, Payload: map[string]any{}, Timestamp: ts}
	case map[string]any:
		out := wire.Event{Type: str(e, "type"), Payload: ctxMap(e["payload"]), ID: str(e, "id"), Timestamp: ts}
		return out
	}
	return wire.Event{Payload: map[string]any{}, Timestamp: ts}
}

// pendingTimeouts converts the engine's pending timeouts to their wire shape (never nil).
func pendingTimeouts(v any) []wire.PendingTimeout {
	out := []wire.PendingTimeout{}
	switch ts := v.(type) {
	case []xc.PendingTimeout:
		for _, t := range ts {
			out = append(out, wire.PendingTimeout{"event": t.Event, "targetState": t.TargetState, "dueAt": t.DueAt,
				"remainingMs": t.RemainingMs, "totalMs": t.TotalMs, "kind": t.Kind})
		}
	case []map[string]any:
		out = append(out, ts...)
	}
	return out
}
