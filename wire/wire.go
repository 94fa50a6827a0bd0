// Package wire holds the JSON messages of the distributed mode's RabbitMQ protocol
// (docs/wire.md), shared with xcomponent-ai so that a TS dashboard can watch our runtimes and
// our dashboard can watch TS runtimes.
//
// Every channel of the protocol has a Go type here with the exact camelCase JSON names of the
// TS implementation. Our additions (command and correlation ids, runtime name, status,
// version …) are optional fields tagged omitempty: TS peers ignore them, and messages from TS
// peers, which never carry them, decode fine. Unknown fields are ignored when decoding, so
// newer peers can add fields too.
//
// The distributed runtime uses these types on both sides of the bus (package bus): the
// engine's outbox messages (xcomponent.Message) and runtime events are turned into
// CreateInstance, TriggerEvent, CrossComponentEvent and the event envelopes (StateChange …),
// encoded with Encode and published on the channel named by the Channel* constants;
// received bodies are decoded with Decode into the type of the channel they came from.
// RoutingKey gives the AMQP routing key of a channel on the Exchange.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Exchange is the topic exchange every channel is published on (durable, not auto-delete,
// no arguments).
const Exchange = "xcomponent.events"

// Channel names (wire.md). The AMQP routing key is RoutingKey(channel).
const (
	ChannelAnnounce            = "fsm:registry:announce"
	ChannelHeartbeat           = "fsm:registry:heartbeat"
	ChannelShutdown            = "fsm:registry:shutdown"
	ChannelDiscover            = "fsm:registry:discover"
	ChannelQueryInstances      = "fsm:commands:query_instances"
	ChannelQueryResponse       = "fsm:responses:query"
	ChannelStateChange         = "fsm:events:state_change"
	ChannelInstanceCreated     = "fsm:events:instance_created"
	ChannelInstanceCompleted   = "fsm:events:instance_completed"
	ChannelTimeoutTriggered    = "fsm:events:timeout_triggered"
	ChannelTriggerEvent        = "fsm:commands:trigger_event"
	ChannelCreateInstance      = "fsm:commands:create_instance"
	ChannelCrossComponentEvent = "fsm:commands:cross_component_event"

	// ChannelCommandReply is our addition: a runtime's answer to a command that carried a
	// commandId (CommandReply). Dashboards bind it to learn whether a create or trigger was
	// applied, refused (with the reason) or dead-lettered. TS peers neither send nor read it.
	ChannelCommandReply = "fsm:responses:command"

	// ChannelTerminateInstance and ChannelRetryHook are our additions: the operator actions
	// (docs/semantics.md, "Operator actions") as commands (OperatorCommand), answered on
	// ChannelCommandReply like the others. Publishers send them to the instance's partition
	// (bus.PublishCommand with one of these as the command kind) so that they are applied in
	// order with the instance's events; published on the channel itself, the ingress queue
	// routes them there. xcomponent-ai runtimes know neither.
	ChannelTerminateInstance = "fsm:commands:terminate_instance"
	ChannelRetryHook         = "fsm:commands:retry_hook"
)

// Channels lists every channel of wire.md's table.
func Channels() []string {
	return []string{
		ChannelAnnounce, ChannelHeartbeat, ChannelShutdown, ChannelDiscover,
		ChannelQueryInstances, ChannelQueryResponse,
		ChannelStateChange, ChannelInstanceCreated, ChannelInstanceCompleted, ChannelTimeoutTriggered,
		ChannelTriggerEvent, ChannelCreateInstance, ChannelCrossComponentEvent,
	}
}

// OurChannels lists the channels we add to wire.md's table.
func OurChannels() []string {
	return []string{ChannelCommandReply, ChannelTerminateInstance, ChannelRetryHook}
}

// RoutingKey is the AMQP routing key of a channel: ":" replaced by "."
// (fsm:commands:trigger_event → fsm.commands.trigger_event).
func RoutingKey(channel string) string { return strings.ReplaceAll(channel, ":", ".") }

// ChannelOf is the inverse of RoutingKey for the protocol's channel names (which contain no
// "."): "." replaced by ":".
func ChannelOf(routingKey string) string { return strings.ReplaceAll(routingKey, ".", ":") }

// Values of the discriminating "type" and "eventType" fields.
const (
	TypeDiscover       = "discover"
	TypeQueryInstances = "query_all_instances"
	TypeInstances      = "instances"

	EventStateChange       = "state_change"
	EventInstanceCreated   = "instance_created"
	EventInstanceCompleted = "instance_completed"
	EventTimeoutTriggered  = "timeout_triggered"
)

// Millis is t as a wire timestamp: milliseconds since the Unix epoch.
func Millis(t time.Time) int64 { return t.UnixMilli() }

// Now is the current time as a wire timestamp.
func Now() int64 { return time.Now().UnixMilli() }

// Time converts a wire timestamp back to a time.Time.
func Time(ms int64) time.Time { return time.UnixMilli(ms) }

// Encode is json.Marshal, for symmetry with Decode.
func Encode(v any) ([]byte, error) { return json.Marshal(v) }

// Decode decodes a message body into T. Unknown fields are ignored and missing fields are left
// at their zero value, so messages from TS peers (without our additions) decode.
func Decode[T any](body []byte) (T, error) {
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		var zero T
		return zero, fmt.Errorf("wire: decode %T: %w", v, err)
	}
	return v, nil
}

// DecodeExact is Decode keeping every number of the untyped parts of the message (contexts,
// payloads, matching rule values) exactly as sent, as a json.Number. Runtimes decode commands
// with it, so that the engine refuses an integer beyond 2^53 (xcomponent.CheckData) instead
// of storing it rounded: a float64 cannot tell 9007199254740993 from 9007199254740992.
func DecodeExact[T any](body []byte) (T, error) {
	var v T
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	err := dec.Decode(&v)
	if err == nil {
		// As json.Unmarshal (Decode): nothing but white space after the value.
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errors.New("unexpected data after the top-level value")
		}
	}
	if err != nil {
		var zero T
		return zero, fmt.Errorf("wire: decode %T: %w", v, err)
	}
	return v, nil
}

// Trace holds our optional additions that tie a message to what caused it. TS peers neither
// send nor read them.
type Trace struct {
	// CommandID identifies a command (also the AMQP message_id); replies and the events it
	// caused refer to it.
	CommandID string `json:"commandId,omitempty"`
	// CorrelationID is the id of the external request or root event of the chain.
	CorrelationID string `json:"correlationId,omitempty"`
	// CausationID is the id of the event or command whose processing produced this message.
	CausationID string `json:"causationId,omitempty"`
}

// Event is an event as it travels: {type, payload, timestamp?}. Payload is always sent ({}
// when empty): xcomponent-ai peers read it without checking.
type Event struct {
	Type    string         `json:"type"`
	Payload map[string]any `json:"payload"`
	// Timestamp (ms epoch) is optional.
	Timestamp int64 `json:"timestamp,omitempty"`

	// Our additions.
	ID            string `json:"id,omitempty"`
	CorrelationID string `json:"correlationId,omitempty"`
	CausationID   string `json:"causationId,omitempty"`
	Actor         string `json:"actor,omitempty"`
	Source        string `json:"source,omitempty"`
}

// MarshalJSON encodes a nil Payload as {}.
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event // without this method
	if e.Payload == nil {
		e.Payload = map[string]any{}
	}
	return json.Marshal(plain(e))
}

// Announce is the body of fsm:registry:announce: a runtime presents itself and its component.
// Sent at start, after reconnect, and on every discover and query_instances.
type Announce struct {
	RuntimeID     string `json:"runtimeId"`
	ComponentName string `json:"componentName"`
	// Component is the full component definition with the YAML's camelCase keys
	// (stateMachines, initialState, states[].type, transitions, contextSchema …), unknown keys
	// kept: it is carried verbatim.
	Component json.RawMessage `json:"component"`
	// Host names the runtime in the runtimes list of xcomponent-ai's dashboard, which keys
	// runtimes by it: ours send the runtime name (as xcomponent-ai's runtimes do), so that two
	// replicas on one machine are told apart. Hostname is the machine's.
	Host      string `json:"host"`
	Port      int    `json:"port"`
	Timestamp int64  `json:"timestamp"`

	// Our additions.
	Hostname    string `json:"hostname,omitempty"`
	RuntimeName string `json:"runtimeName,omitempty"`
	Version     string `json:"version,omitempty"`
	Status      string `json:"status,omitempty"`
	// Partitions is the number of command partitions of the component (Config.Partitions):
	// a publisher batching commands (bus.Batcher) groups them by partition.
	Partitions int `json:"partitions,omitempty"`
}

// Heartbeat is the body of fsm:registry:heartbeat.
type Heartbeat struct {
	RuntimeID     string `json:"runtimeId"`
	ComponentName string `json:"componentName"`
	Timestamp     int64  `json:"timestamp"`

	// Our additions.
	RuntimeName string `json:"runtimeName,omitempty"`
	Version     string `json:"version,omitempty"`
	Status      string `json:"status,omitempty"`
}

// Shutdown is the body of fsm:registry:shutdown, sent on graceful stop; same shape as
// Heartbeat.
type Shutdown Heartbeat

// Discover is the body of fsm:registry:discover (dashboard → runtimes); runtimes re-announce.
type Discover struct {
	Type      string `json:"type"` // TypeDiscover
	Timestamp int64  `json:"timestamp"`
	Trace
}

// QueryInstances is the body of fsm:commands:query_instances (dashboard → runtimes); runtimes
// re-announce, then answer on fsm:responses:query.
type QueryInstances struct {
	Type      string `json:"type"` // TypeQueryInstances
	Timestamp int64  `json:"timestamp"`
	Trace
}

// QueryResponse is the body of fsm:responses:query: a runtime's instances. Ours list the
// component's active instances and those finished recently (Status tells them apart; bounds in
// docs/design.md, "Live events"); xcomponent-ai's list active ones only, without Status.
type QueryResponse struct {
	Type          string             `json:"type"` // TypeInstances
	RuntimeID     string             `json:"runtimeId"`
	ComponentName string             `json:"componentName"`
	Instances     []InstanceSnapshot `json:"instances"`
	Timestamp     int64              `json:"timestamp"`

	// Our additions.
	RuntimeName string `json:"runtimeName,omitempty"`
	Trace
}

// PendingTimeout describes a timer armed on an instance. Its shape is TS's and is carried as
// is; our runtimes fill it with at least "event" and "dueAt".
type PendingTimeout = map[string]any

// InstanceSnapshot is one instance in a QueryResponse.
type InstanceSnapshot struct {
	ID              string           `json:"id"`
	MachineName     string           `json:"machineName"`
	CurrentState    string           `json:"currentState"`
	Context         map[string]any   `json:"context"`
	PendingTimeouts []PendingTimeout `json:"pendingTimeouts"`

	// Our additions.
	Status  string `json:"status,omitempty"`
	Version int64  `json:"version,omitempty"`
}

// Envelope is the body of the fsm:events:* channels: who sent it, what kind of event, and the
// event's data (StateChangeData, InstanceCreatedData …). Decode into Envelope[json.RawMessage]
// to look at EventType before decoding Data.
type Envelope[D any] struct {
	RuntimeID     string `json:"runtimeId"`
	ComponentName string `json:"componentName"`
	EventType     string `json:"eventType"`
	Timestamp     int64  `json:"timestamp"`
	Data          D      `json:"data"`

	// Our additions.
	RuntimeName string `json:"runtimeName,omitempty"`
	Trace
}

// StateChangeData is the data of fsm:events:state_change.
type StateChangeData struct {
	InstanceID      string           `json:"instanceId"`
	MachineName     string           `json:"machineName"`
	PreviousState   string           `json:"previousState"`
	NewState        string           `json:"newState"`
	Event           Event            `json:"event"`
	Context         map[string]any   `json:"context"`
	PendingTimeouts []PendingTimeout `json:"pendingTimeouts"`

	// Our additions. Version (the instance's version after the change) is on every
	// fsm:events:* message of our runtimes, so that a consumer can detect the messages it
	// missed (docs/design.md, "Live events"); xcomponent-ai's runtimes do not send it (0).
	StateType string `json:"stateType,omitempty"`
	Status    string `json:"status,omitempty"`
	Version   int64  `json:"version"`
}

// InstanceCreatedData is the data of fsm:events:instance_created.
type InstanceCreatedData struct {
	InstanceID   string         `json:"instanceId"`
	MachineName  string         `json:"machineName"`
	CurrentState string         `json:"currentState"`
	Context      map[string]any `json:"context"`

	// Our additions.
	Status           string `json:"status,omitempty"`
	Version          int64  `json:"version"`
	IsEntryPoint     bool   `json:"isEntryPoint,omitempty"`
	ParentID         string `json:"parentId,omitempty"`
	SourceComponent  string `json:"sourceComponent,omitempty"`
	SourceInstanceID string `json:"sourceInstanceId,omitempty"`
}

// InstanceCompletedData is the data of fsm:events:instance_completed.
type InstanceCompletedData struct {
	InstanceID  string         `json:"instanceId"`
	MachineName string         `json:"machineName"`
	FinalState  string         `json:"finalState"`
	Context     map[string]any `json:"context"`

	// Our additions.
	Status  string `json:"status,omitempty"`
	Version int64  `json:"version"`
}

// TimeoutTriggeredData is the data of fsm:events:timeout_triggered (TS declares it but never
// sends it).
type TimeoutTriggeredData struct {
	InstanceID  string `json:"instanceId"`
	MachineName string `json:"machineName"`
	Event       Event  `json:"event"`
	FromState   string `json:"fromState"`
	ToState     string `json:"toState"`

	// Our addition.
	Version int64 `json:"version"`
}

// The bodies of the fsm:events:* channels.
type (
	StateChange       = Envelope[StateChangeData]
	InstanceCreated   = Envelope[InstanceCreatedData]
	InstanceCompleted = Envelope[InstanceCompletedData]
	TimeoutTriggered  = Envelope[TimeoutTriggeredData]
)

// TriggerEvent is the body of fsm:commands:trigger_event: deliver Event to an instance. When
// ComponentName is empty, the runtime holding the instance acts.
type TriggerEvent struct {
	ComponentName string `json:"componentName,omitempty"`
	InstanceID    string `json:"instanceId"`
	Event         Event  `json:"event"`
	Timestamp     int64  `json:"timestamp,omitempty"`

	// Our additions.
	RuntimeName string `json:"runtimeName,omitempty"`
	Trace
}

// CreateInstance is the body of fsm:commands:create_instance. An empty MachineName means the
// component's entry machine.
type CreateInstance struct {
	ComponentName    string         `json:"componentName"`
	MachineName      string         `json:"machineName,omitempty"`
	Context          map[string]any `json:"context"`
	Event            *Event         `json:"event,omitempty"`
	SourceComponent  string         `json:"sourceComponent,omitempty"`
	SourceInstanceID string         `json:"sourceInstanceId,omitempty"`
	Timestamp        int64          `json:"timestamp"`

	// Our additions.
	RuntimeName string `json:"runtimeName,omitempty"`
	// InstanceID, when set, is the id the new instance must get (idempotent creation).
	InstanceID string `json:"instanceId,omitempty"`
	ParentID   string `json:"parentId,omitempty"`
	Trace
}

// MatchingRule selects the instances a cross-component event goes to:
// data[InstanceProperty] Operator Value.
type MatchingRule struct {
	EventProperty    string `json:"eventProperty"`
	InstanceProperty string `json:"instanceProperty"`
	Operator         string `json:"operator"`
	Value            any    `json:"value"`
}

// CrossComponentEvent is the body of fsm:commands:cross_component_event: the receiver
// delivers Event (with _sourceComponent) to the live instances of TargetComponent /
// TargetMachine whose data satisfy every rule.
type CrossComponentEvent struct {
	TargetComponent  string         `json:"targetComponent"`
	TargetMachine    string         `json:"targetMachine"`
	Event            Event          `json:"event"`
	MatchingRules    []MatchingRule `json:"matchingRules"`
	SourceComponent  string         `json:"sourceComponent"`
	SourceInstanceID string         `json:"sourceInstanceId"`
	Timestamp        int64          `json:"timestamp"`
	// MatchContext is sent by some xcomponent-ai versions instead of MatchingRules: every
	// key must equal the instance's context value. Read only, never sent by us.
	MatchContext map[string]any `json:"matchContext,omitempty"`

	// Our additions.
	RuntimeName string `json:"runtimeName,omitempty"`
	// TargetState limits the delivery to instances in that state (a cascade's targetState).
	TargetState string `json:"targetState,omitempty"`
	// Origin says which effect produced the event (cross_component, cascade, hook).
	Origin string `json:"origin,omitempty"`
	Trace
}

// OperatorCommand is the body of fsm:commands:terminate_instance and fsm:commands:retry_hook
// (our additions): an operator's action on one instance, recorded in its audit trail with
// Actor and Reason. When ComponentName is empty, the runtime holding the instance acts.
type OperatorCommand struct {
	ComponentName string `json:"componentName,omitempty"`
	InstanceID    string `json:"instanceId"`
	Actor         string `json:"actor,omitempty"`
	Reason        string `json:"reason,omitempty"`
	Timestamp     int64  `json:"timestamp,omitempty"`
	RuntimeName   string `json:"runtimeName,omitempty"`
	Trace
}

// Statuses of a CommandReply.
const (
	ReplyApplied      = "applied"       // the command's effect is committed
	ReplyDuplicate    = "duplicate"     // its id was applied before: nothing done again
	ReplyRefused      = "refused"       // a business refusal (not accepted, guard, unknown instance, singleton …)
	ReplyDeadLettered = "dead-lettered" // malformed or undeliverable: in a dead-letter queue
)

// TypeCommandReply is the "type" of a CommandReply.
const TypeCommandReply = "command_result"

// CommandReply is the body of fsm:responses:command (our addition): what became of a command
// that carried a commandId. Instance is the instance after the command (the created one for
// create_instance) when it was applied or was a duplicate of an applied one.
type CommandReply struct {
	Type          string `json:"type"` // TypeCommandReply
	CommandID     string `json:"commandId"`
	CorrelationID string `json:"correlationId,omitempty"`
	// Command is the channel of the command (ChannelCreateInstance, ChannelTriggerEvent,
	// ChannelTerminateInstance, ChannelRetryHook).
	Command       string `json:"command"`
	RuntimeID     string `json:"runtimeId"`
	RuntimeName   string `json:"runtimeName,omitempty"`
	ComponentName string `json:"componentName"`
	Status        string `json:"status"` // Reply* constants
	// Error is the reason of a refusal or dead-lettering, for people.
	Error string `json:"error,omitempty"`
	// Code classifies a refusal for HTTP mapping: "not_found", "not_accepted", "invalid",
	// "conflict" (singleton, completed instance), "unavailable"; for retry_hook,
	// "hook_failed": the retry is recorded (Instance is set) but the hook failed again.
	Code string `json:"code,omitempty"`
	// PreviousState is the state before a trigger_event that was applied.
	PreviousState string            `json:"previousState,omitempty"`
	Instance      *InstanceSnapshot `json:"instance,omitempty"`
	Timestamp     int64             `json:"timestamp"`
	// Attempt echoes the command's xc-attempt header (ours): which publication of the
	// command id this answers.
	Attempt string `json:"attempt,omitempty"`
}
