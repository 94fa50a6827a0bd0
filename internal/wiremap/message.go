package wiremap

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/wire"
)

// ErrNothingToSend: a routed message with a rule that can never hold (the event has no value
// at its eventProperty); it reaches no instance anywhere.
var ErrNothingToSend = errors.New("a matching rule has no event value")

// MessageToWire is the command of an engine's outbox message for the runtime that hosts its
// target component: its channel (wire.Channel*) and the command (a wire.CreateInstance,
// wire.CrossComponentEvent or wire.TriggerEvent, to be encoded with wire.Encode). runtimeName
// is the sender's; now stamps the command.
func MessageToWire(m xc.Message, runtimeName string, now int64) (string, any, error) {
	trace := wire.Trace{CommandID: m.ID, CorrelationID: m.Event.CorrelationID, CausationID: m.Event.CausationID}
	switch m.Kind {
	case xc.MessageCreate:
		return wire.ChannelCreateInstance, wire.CreateInstance{ComponentName: m.Component, MachineName: m.Machine,
			Context:         contextOrEmpty(m.Data),
			Event:           &wire.Event{Type: m.Event.Type, Payload: map[string]any{}, Timestamp: now},
			SourceComponent: m.SourceComponent, SourceInstanceID: m.SourceInstanceID, Timestamp: now,
			RuntimeName: runtimeName, ParentID: m.ParentID, Trace: trace}, nil
	case xc.MessageBroadcast:
		rules := make([]wire.MatchingRule, 0, len(m.Rules))
		for _, rule := range m.Rules {
			if rule.Missing {
				return "", nil, fmt.Errorf("%w: %s", ErrNothingToSend, rule.EventProperty)
			}
			rules = append(rules, wire.MatchingRule{EventProperty: rule.EventProperty, InstanceProperty: rule.InstanceProperty,
				Operator: string(rule.Operator), Value: rule.Value})
		}
		return wire.ChannelCrossComponentEvent, wire.CrossComponentEvent{TargetComponent: m.Component, TargetMachine: m.Machine,
			Event: messageEvent(m, now), MatchingRules: rules, SourceComponent: m.SourceComponent,
			SourceInstanceID: m.SourceInstanceID, Timestamp: now, RuntimeName: runtimeName, TargetState: m.State,
			Origin: string(m.Origin), Trace: trace}, nil
	case xc.MessageSend:
		return wire.ChannelTriggerEvent, wire.TriggerEvent{ComponentName: m.Component, InstanceID: m.InstanceID,
			Event: messageEvent(m, now), Timestamp: now, RuntimeName: runtimeName, Trace: trace}, nil
	}
	return "", nil, fmt.Errorf("unknown message kind %q", m.Kind)
}

// messageEvent is the event of a routed or sent message as it travels: its id is the
// message's (the receiver derives each target's from it).
func messageEvent(m xc.Message, now int64) wire.Event {
	return wire.Event{Type: m.Event.Type, Payload: contextOrEmpty(m.Event.Payload), Timestamp: now, ID: m.ID,
		CorrelationID: m.Event.CorrelationID, CausationID: m.Event.CausationID, Actor: m.Event.Actor,
		Source: string(m.Event.Source)}
}

// CrossIDs are the ids of a received cross-component event, fixed by the receiver: the
// message id (the same on every delivery), and the correlation and causation ids (from the
// command, its event or the transport's headers), in the form the store keeps.
type CrossIDs struct {
	ID, CorrelationID, CausationID string
}

// CrossFromWire is the engine's routed message of a cross-component event received for
// component comp (xcomponent.Engine.Route delivers it). It accepts xcomponent-ai's variants:
// matchContext instead of matchingRules (every key equal), a rule without value (read from
// the event payload at eventProperty) or without operator (===), no targetMachine (the entry
// machine). The sender's component is added to the payload as _sourceComponent.
func CrossFromWire(cmd wire.CrossComponentEvent, comp string, ids CrossIDs) xc.Message {
	payload := make(map[string]any, len(cmd.Event.Payload)+1)
	for k, v := range cmd.Event.Payload {
		payload[k] = v
	}
	if cmd.SourceComponent != "" {
		payload["_sourceComponent"] = cmd.SourceComponent
	}
	var rules []xc.Rule
	for _, rule := range cmd.MatchingRules {
		value := rule.Value
		if value == nil && rule.EventProperty != "" {
			if v, ok := store.LookupPath(cmd.Event.Payload, rule.EventProperty); ok {
				value = v
			}
		}
		rules = append(rules, xc.Rule{EventProperty: rule.EventProperty, InstanceProperty: firstNonEmpty(rule.InstanceProperty, rule.EventProperty),
			Operator: component.Operator(rule.Operator), Value: value})
	}
	if len(rules) == 0 {
		keys := make([]string, 0, len(cmd.MatchContext))
		for k := range cmd.MatchContext {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			rules = append(rules, xc.Rule{EventProperty: k, InstanceProperty: k, Operator: component.OpEq, Value: cmd.MatchContext[k]})
		}
	}
	origin := xc.Source(cmd.Origin)
	if origin == "" {
		origin = xc.SourceCrossComponent
	}
	return xc.Message{
		ID: ids.ID, Kind: xc.MessageBroadcast, Component: comp, Machine: cmd.TargetMachine, State: cmd.TargetState,
		Event: xc.Event{Type: cmd.Event.Type, Payload: payload, CorrelationID: ids.CorrelationID, CausationID: ids.CausationID,
			Actor:  firstNonEmpty(cmd.SourceComponent, cmd.RuntimeName, string(xc.SourceBroker)),
			Source: origin, SourceComponent: cmd.SourceComponent},
		Rules: rules, Origin: origin, SourceComponent: cmd.SourceComponent, SourceInstanceID: cmd.SourceInstanceID,
	}
}

// firstNonEmpty returns the first value that is not blank, trimmed.
func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}
