package httpapi

import (
	"encoding/json"

	xc "github.com/xcomponent/xcomponent"
)

// streamData is the JSON object of a runtime event on the live stream: its payload's fields
// (the names below are the stream's contract with the browser dashboard and other SSE
// clients) plus componentName, eventType, timestamp and, when the payload has none,
// instanceId.
func streamData(ev *xc.RuntimeEvent) map[string]any {
	out := payloadFields(ev.Data)
	out["componentName"] = ev.Component
	out["eventType"] = string(ev.Kind())
	if _, ok := out["timestamp"]; !ok {
		out["timestamp"] = ev.Timestamp
	}
	if _, ok := out["instanceId"]; !ok && ev.InstanceID != "" {
		out["instanceId"] = ev.InstanceID
	}
	return out
}

// FromRuntime is the payload of an engine event that a distributed backend received from a
// runtime (see package wiremap): the stream shows the event's fields plus runtimeId and
// runtimeName.
type FromRuntime struct {
	Event                  xc.RuntimeEventData
	RuntimeID, RuntimeName string
}

// Kind implements xcomponent.RuntimeEventData: the kind of the event received.
func (f FromRuntime) Kind() xc.RuntimeEventKind {
	if f.Event == nil {
		return ""
	}
	return f.Event.Kind()
}

// BackendEvent is the payload of the events a Backend adds to the engine's
// (runtime_connected, runtime_disconnected …): its kind and its stream fields.
type BackendEvent struct {
	Name   xc.RuntimeEventKind
	Fields map[string]any
}

// Kind implements xcomponent.RuntimeEventData.
func (e BackendEvent) Kind() xc.RuntimeEventKind { return e.Name }

// payloadFields maps each payload type to its stream fields. A payload of another type is
// carried as its own JSON object.
func payloadFields(data xc.RuntimeEventData) map[string]any {
	switch d := data.(type) {
	case FromRuntime:
		out := payloadFields(d.Event)
		out["runtimeId"], out["runtimeName"] = d.RuntimeID, d.RuntimeName
		return out
	case BackendEvent:
		out := make(map[string]any, len(d.Fields)+3)
		for k, v := range d.Fields {
			out[k] = v
		}
		return out
	case xc.StateChanged:
		return map[string]any{"instanceId": d.InstanceID, "machineName": d.MachineName,
			"previousState": d.PreviousState, "newState": d.NewState, "stateType": string(d.StateType),
			"event": streamEvent(&d.Event), "eventId": d.Event.ID, "context": d.Context, "version": d.Version,
			"pendingTimeouts": pendingOrEmpty(d.PendingTimeouts)}
	case xc.InstanceCreated:
		return map[string]any{"instanceId": d.InstanceID, "machineName": d.MachineName, "currentState": d.CurrentState,
			"context": d.Context, "parentInstanceId": d.ParentInstanceID, "isEntryPoint": d.IsEntryPoint}
	case xc.InstanceCompleted:
		return map[string]any{"instanceId": d.InstanceID, "machineName": d.MachineName, "finalState": d.FinalState,
			"status": string(d.Status), "context": d.Context}
	case xc.EventIgnored:
		return map[string]any{"instanceId": d.InstanceID, "machineName": d.MachineName, "event": streamEvent(&d.Event),
			"currentState": d.CurrentState, "reason": d.Reason}
	case xc.HookError:
		return map[string]any{"instanceId": d.InstanceID, "machineName": d.MachineName, "state": d.State, "error": d.Error}
	case xc.InstanceError:
		return map[string]any{"instanceId": d.InstanceID, "machineName": d.MachineName, "event": d.Event.Type, "error": d.Error}
	case xc.TimeoutFired:
		return map[string]any{"instanceId": d.InstanceID, "machineName": d.MachineName, "event": d.Event.Type,
			"fromState": d.FromState, "toState": d.ToState}
	case xc.BroadcastCompleted:
		return fanOutFields(d)
	case xc.CascadeCompleted:
		return fanOutFields(xc.BroadcastCompleted(d))
	case xc.CrossComponentSent:
		switch d.Delivery {
		case xc.CrossForwarded:
			return map[string]any{"targetComponent": d.TargetComponent, "targetMachine": d.TargetMachine,
				"event": streamEvent(&d.Event), "kind": d.MessageKind}
		case xc.CrossCreated:
			return map[string]any{"targetComponent": d.TargetComponent, "targetMachine": d.TargetMachine,
				"createdInstanceId": d.CreatedInstanceID}
		}
		return map[string]any{"machineName": d.TargetMachine, "event": streamEvent(&d.Event), "matched": d.Matched,
			"processed": d.Processed, "targetComponent": d.TargetComponent, "sourceComponent": d.SourceComponent}
	case nil:
		return map[string]any{}
	}
	out := map[string]any{}
	if b, err := json.Marshal(data); err == nil {
		_ = json.Unmarshal(b, &out)
	}
	return out
}

// fanOutFields: a broadcast or cascade; target and source components only for those sent by
// an instance (Engine.Broadcast has none).
func fanOutFields(d xc.BroadcastCompleted) map[string]any {
	out := map[string]any{"machineName": d.MachineName, "event": streamEvent(&d.Event), "matched": d.Matched, "processed": d.Processed}
	if d.TargetComponent != "" {
		out["targetComponent"] = d.TargetComponent
		out["sourceComponent"] = d.SourceComponent
	}
	return out
}

// streamEvent is an event as the stream shows it: type, payload ({} when none), id when set.
func streamEvent(ev *xc.Event) map[string]any {
	m := map[string]any{"type": ev.Type, "payload": ev.Payload}
	if ev.Payload == nil {
		m["payload"] = map[string]any{}
	}
	if ev.ID != "" {
		m["id"] = ev.ID
	}
	return m
}

func pendingOrEmpty(ts []xc.PendingTimeout) []xc.PendingTimeout {
	if ts == nil {
		return []xc.PendingTimeout{}
	}
	return ts
}
