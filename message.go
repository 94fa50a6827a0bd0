package xcomponent

import (
	"encoding/json"
	"fmt"

	"github.com/xcomponent/xcomponent/store"
)

// Message is an outbox entry, and what travels to other processes in distributed mode.
type Message struct {
	ID         string         `json:"id"`
	Kind       string         `json:"kind"`
	Component  string         `json:"component,omitempty"` // target component ("" = wherever the instance is)
	Machine    string         `json:"machine,omitempty"`
	State      string         `json:"state,omitempty"`
	InstanceID string         `json:"instanceId,omitempty"`
	Event      Event          `json:"event"`
	Data       map[string]any `json:"data,omitempty"`
	Rules      []Rule         `json:"rules,omitempty"`
	// Origin says which effect produced it (hook, cascade, parent, cross_component …), for
	// the runtime events that report it.
	Origin           Source `json:"origin,omitempty"`
	ParentID         string `json:"parentId,omitempty"`
	ParentMachine    string `json:"parentMachine,omitempty"`
	SourceComponent  string `json:"sourceComponent,omitempty"`
	SourceInstanceID string `json:"sourceInstanceId,omitempty"`
}

// Message kinds: what a committed transition still has to deliver.
const (
	msgSend   = "send"   // an event to one instance
	msgCreate = "create" // a new instance
	// msgBroadcast routes an event to the live instances of a machine: by Rules when given,
	// else by the matching rules of the machine's transitions on the event, else to all of
	// them (in State when given). Broadcasts, cascades and cross-component events use it.
	msgBroadcast = "broadcast"
)

// Kinds of Message.
const (
	// MessageSend is an event to one instance (InstanceID, in Component when set).
	MessageSend = msgSend
	// MessageCreate asks for a new instance of Machine (default: the entry machine) in
	// Component, with Data.
	MessageCreate = msgCreate
	// MessageBroadcast routes Event to the live instances of Component / Machine (in State when
	// set): by Rules when given, else by the rules of the machine's transitions on the event,
	// else to all of them. Cross-component events, cascades and broadcasts use it.
	MessageBroadcast = msgBroadcast
)

func decodeMessage(sm store.Message) (Message, error) {
	var m Message
	if err := json.Unmarshal(sm.Body, &m); err != nil {
		return Message{}, fmt.Errorf("decode outbox message %s: %w", sm.ID, err)
	}
	m.ID = sm.ID
	return m, nil
}

// DecodeMessage decodes an outbox row written by an engine.
func DecodeMessage(sm store.Message) (Message, error) { return decodeMessage(sm) }
