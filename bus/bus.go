// Package bus is the message bus of the distributed mode: what runtimes and dashboards need
// from RabbitMQ, behind a small interface with an in-process implementation (NewMemory) for
// tests and single-process use, and a RabbitMQ one (package bus/rabbitmq).
//
// Messages are published on channels (the protocol's names, e.g. "fsm:commands:trigger_event",
// see package wire) and received two ways:
//
//   - Subscribe: fan-out. Every subscription gets its own copy of every message published on
//     the channel after Subscribe returned. Runtimes subscribe to discover/query_instances and
//     dashboards to the registry and fsm:events:* channels. SubscribeWith names the
//     subscription's queue, which then keeps the copies published while the connection is
//     being re-established (a dashboard's command replies).
//   - Consume: a named work queue shared by competing consumers, bound to some channels.
//     Each message goes to exactly one consumer and is acknowledged only after the handler
//     returned nil (at-least-once). A handler error sends it to the queue's dead-letter queue
//     (DeadLetterQueue) with the error as its reason (HeaderDeadLetterReason). A consumer that
//     stops before acknowledging leaves the message to another consumer, marked Redelivered.
//     Work queues keep their messages while nobody consumes. ConsumeWith adds a single active
//     consumer, expiry and a length bound, and concurrent handling keyed by an order key.
//
// Commands of component C travel on partition channels (see partition.go): a fixed number of
// partition queues per component, each with a single active consumer, so that the commands
// of one instance are applied in order by one runtime at a time.
//
// Publish returns once the broker confirmed the message. The distributed runtime publishes
// the engine's outbox (xcomponent.Message, runtime events) with Publish and marks an outbox row
// sent only after Publish returned nil; while the broker is unreachable Publish blocks until
// it is back or ctx ends, so the outbox keeps what could not be sent.
//
// Delivery is at-least-once: handlers dedupe with Meta.MessageID.
package bus

import (
	"context"
	"errors"
	"strings"
	"time"
)

// ErrClosed is returned by the methods of a closed Bus.
var ErrClosed = errors.New("bus: closed")

// Meta are the AMQP properties that travel with a message besides its body.
type Meta struct {
	// MessageID is the command or event id (AMQP message_id).
	MessageID string
	// CorrelationID is the id of the request or chain the message belongs to (correlation_id).
	CorrelationID string
	// Headers carry causation and trace context (e.g. "causationId", "traceparent"). Only
	// string values travel: other header values set by the broker are left out.
	Headers map[string]string
}

// AsyncPublisher is implemented by buses that pipeline publications: PublishAsync sends the
// message and returns without waiting for the broker's confirm, with a function that waits
// for it (nil: confirmed). Calls made one after the other from one goroutine reach the broker
// in that order. A publisher of an ordered stream (runtime events) keeps many messages in
// flight this way instead of one confirm round trip per message.
type AsyncPublisher interface {
	PublishAsync(ctx context.Context, channel string, body []byte, meta Meta) (wait func(context.Context) error, err error)
}

// TransientPublisher is implemented by buses that can publish a message the broker need not
// keep nor confirm (RabbitMQ: delivery_mode 1, no publisher confirm): PublishTransient
// returns once the message is sent, and a message sent just before a connection loss may be
// lost without an error. Messages sent one after the other from one goroutine reach the
// broker in that order. The runtime events (fsm:events:*) go this way: a consumer detects a
// gap by the instance's version and re-reads the instance (docs/design.md, "Live events").
type TransientPublisher interface {
	PublishTransient(ctx context.Context, channel string, body []byte, meta Meta) error
}

// HeaderDeadLetterReason is the header of a dead letter that says why it was dead-lettered:
// the handler's error, or the broker's reason ("expired", "maxlen", "rejected").
const HeaderDeadLetterReason = "xc-dead-letter-reason"

// ConsumeOptions configure a work queue and its consumption (ConsumeWith). Every consumer of
// a queue must pass the same queue options (the broker refuses a declaration that differs).
type ConsumeOptions struct {
	// Bindings are the channels whose messages the queue receives.
	Bindings []string
	// SingleActive makes one consumer at a time receive the queue's messages; when it goes
	// away, the next one takes over (with its unacknowledged messages, marked Redelivered).
	SingleActive bool
	// MessageTTL, when > 0, dead-letters a message that waited longer (reason "expired").
	MessageTTL time.Duration
	// MaxLength, when > 0, bounds the queue: beyond it the oldest messages are dead-lettered
	// (reason "maxlen").
	MaxLength int
	// DeadLetterQueue is where refused and expired messages go (default DeadLetterQueue(queue)).
	DeadLetterQueue string
	// Prefetch, when > 0, overrides the bus's number of unacknowledged messages per consumer.
	Prefetch int
	// StrictArguments refuses to consume a queue that exists with other arguments (the
	// broker's PRECONDITION_FAILED is returned). Without it the queue is used with its own
	// arguments after a warning, so that a new version starts on the queues of an older one.
	StrictArguments bool
	// OrderKey, when set, lets the handler run concurrently for messages of different keys,
	// one at a time and in delivery order for messages of one key (an instance id). Each
	// message is acknowledged when its own handler returns.
	OrderKey func(Message) string
}

// SubscribeOptions configure a fan-out subscription (SubscribeWith).
type SubscribeOptions struct {
	// Queue, when set, names the subscription's own queue (unique to the subscriber: one
	// queue per subscription and process). Unlike the anonymous queue of Subscribe, which
	// dies with the connection, it outlives a connection loss: the copies published until
	// the subscription is re-established wait in it, and the copies handled but not yet
	// acknowledged come again (Redelivered). Subscription.Close deletes it.
	Queue string
	// Expires, with Queue, makes the broker delete the queue once it has had no consumer for
	// that long (the subscription of a process that died without closing it); 0: never.
	Expires time.Duration
	// MaxLength, with Queue, bounds the copies it keeps (the oldest are dropped); 0: no bound.
	MaxLength int
}

// Message is a received message.
type Message struct {
	// Channel is the channel it was published on.
	Channel string
	Body    []byte
	Meta
	// Redelivered says it was delivered before to a consumer that did not acknowledge it.
	Redelivered bool
}

// Handler handles one message. ctx ends when the subscription or the bus is closed; a
// handler must then return promptly. For Consume, nil acknowledges the message and an error
// dead-letters it (unless the subscription is closing: then the message is left for another
// consumer). For Subscribe, an error drops the copy. Handlers of one subscription are called
// one at a time (but see ConsumeOptions.OrderKey). A handler must not Close its own subscription or the bus.
type Handler func(ctx context.Context, m Message) error

// Subscription is a live Subscribe or Consume.
type Subscription interface {
	// Close stops the deliveries, cancels the handler's ctx and waits for a running handler to
	// return. Idempotent.
	Close() error
}

// Bus is a message bus.
type Bus interface {
	// Publish sends body on channel and returns once the broker confirmed it. While the
	// broker is unreachable it waits until it is back, ctx ends (ctx.Err()) or the bus is
	// closed (ErrClosed).
	Publish(ctx context.Context, channel string, body []byte, meta Meta) error
	// Subscribe delivers a copy of every message later published on channel to h. It returns
	// once the subscription is live; ctx bounds that wait only.
	Subscribe(ctx context.Context, channel string, h Handler) (Subscription, error)
	// SubscribeWith is Subscribe with options. Subscribe(ctx, c, h) is
	// SubscribeWith(ctx, c, SubscribeOptions{}, h).
	SubscribeWith(ctx context.Context, channel string, opts SubscribeOptions, h Handler) (Subscription, error)
	// Consume declares the durable work queue (and its dead-letter queue) if needed, binds it
	// to the channels in bindings, and delivers its messages to h, competing with the other
	// consumers of the queue. Consuming DeadLetterQueue(q) reads q's dead letters (a handler
	// error then drops the message).
	Consume(ctx context.Context, queue string, bindings []string, h Handler) (Subscription, error)
	// ConsumeWith is Consume with options. Consume(ctx, q, b, h) is
	// ConsumeWith(ctx, q, ConsumeOptions{Bindings: b}, h).
	ConsumeWith(ctx context.Context, queue string, opts ConsumeOptions, h Handler) (Subscription, error)
	// QueueExists says whether a queue was declared (and not deleted) on the broker.
	QueueExists(ctx context.Context, queue string) (bool, error)
	// Connected says whether the broker is reachable now.
	Connected() bool
	// Close ends every subscription (waiting for running handlers) and unblocks waiting
	// Publish calls with ErrClosed. Idempotent.
	Close() error
}

// QueueRetirer is implemented by buses that can retire a work queue an earlier version
// declared (bus/rabbitmq).
type QueueRetirer interface {
	// RetireQueue unbinds queue from the channels in bindings (so that nothing more arrives
	// in it), hands each message still in it to h (acknowledged when h returns nil, rejected
	// to the queue's dead-letter exchange otherwise), and deletes it once empty. It does
	// nothing for a queue that does not exist, and leaves one that has consumers (retired
	// false: an older runtime still reads it; it is retried at the next start).
	RetireQueue(ctx context.Context, queue string, bindings []string, h Handler) (moved int, retired bool, err error)
}

// DeadLetterSuffix ends the name of every dead-letter queue.
const DeadLetterSuffix = ".dlq"

// DeadLetterQueue is the name of the dead-letter queue of work queue q.
func DeadLetterQueue(q string) string { return q + DeadLetterSuffix }

// IsDeadLetterQueue says whether q names a dead-letter queue.
func IsDeadLetterQueue(q string) bool { return strings.HasSuffix(q, DeadLetterSuffix) }

// CommandQueue is the prefix of the names of a component's command queues,
// "xcomponent.<component>.commands"; DeadLetterQueue(CommandQueue(c)) receives the commands of
// c that could not be applied (poison, expired, queue full).
func CommandQueue(component string) string { return "xcomponent." + component + ".commands" }
