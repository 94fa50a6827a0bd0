// Package rabbitmq is the RabbitMQ implementation of bus.Bus (amqp091-go), with the topology
// of docs/wire.md:
//
//   - every channel is published on the topic exchange "xcomponent.events" (durable, not
//     auto-delete, no arguments) with routing key wire.RoutingKey(channel), publisher
//     confirms, delivery_mode 2 (persistent), content_type application/json, message_id,
//     correlation_id and string headers (PublishTransient: delivery_mode 1, no confirm);
//   - Subscribe binds a server-named, exclusive, auto-delete queue per subscription (so
//     messages published while a subscription is being re-established after a connection
//     loss are not seen by it; dashboards re-query with discover), whose copies are
//     acknowledged a burst at a time (fanoutAckBatch); SubscribeWith with a queue name
//     declares that queue instead, non-durable, neither exclusive nor auto-delete (it
//     outlives the connection: what is published meanwhile waits for the re-established
//     subscription), with x-expires and x-max-length from the options, consumed
//     non-exclusively, and deleted by Subscription.Close;
//   - Consume/ConsumeWith declare a durable quorum queue with the caller's name (the
//     partitions of bus.PartitionQueue, bus.IngressQueue), with the options' single active
//     consumer, message TTL and max length, dead-lettered through the direct exchange
//     "xcomponent.dlx" to a quorum dead-letter queue (bus.DeadLetterQueue(name) by default,
//     bound with its own name as routing key); manual ack after the handler succeeded; a
//     handler error re-publishes the message to the dead-letter queue with the error as
//     bus.HeaderDeadLetterReason (with confirms), then acks it; expired and overflowing
//     messages are dead-lettered by the broker (the x-death reason becomes that header);
//     Options.Prefetch (or ConsumeOptions.Prefetch) unacknowledged messages per consumer,
//     handled concurrently per ConsumeOptions.OrderKey.
//
// The Bus keeps itself connected: on connection loss it reconnects with capped exponential
// backoff, re-declares the topology and re-establishes every subscription before reporting
// Connected again (so a runtime re-announces once its subscriptions are live). Publish waits
// while disconnected. Each state change is logged once, with the password masked.
package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/internal/redact"
	"github.com/xcomponent/xcomponent/wire"
)

// DeadLetterExchange routes the messages that work-queue handlers refused to their queue's
// dead-letter queue (routing key: the work queue's name).
const DeadLetterExchange = "xcomponent.dlx"

// ErrNacked is returned by Publish when the broker refused a message.
var ErrNacked = errors.New("rabbitmq: message not confirmed by the broker")

// Options configure a Bus.
type Options struct {
	// URL is the broker URL, e.g. amqp://guest:guest@localhost:5672/.
	URL string
	// Name is the connection name shown by the broker (default "xcomponent").
	Name string
	// Logger receives one line per connection state change (default slog.Default()).
	Logger *slog.Logger
	// Prefetch is the number of unacknowledged messages per consumer (default 16).
	Prefetch int
	// MinBackoff and MaxBackoff bound the reconnection delay, which doubles from MinBackoff
	// up to MaxBackoff (defaults 200ms and 15s).
	MinBackoff, MaxBackoff time.Duration
	// OnStateChange, when set, is called with every change of Connected (health endpoints,
	// metrics, tests), from the connection goroutine; it must be quick.
	OnStateChange func(connected bool)
}

// Bus is a bus.Bus over RabbitMQ.
type Bus struct {
	opts      Options
	log       *slog.Logger
	masked    string
	connected atomic.Bool

	// attachMu serialises establishing subscriptions: (re)connection versus Subscribe/Consume
	// versus Subscription.Close.
	attachMu sync.Mutex

	mu      sync.Mutex
	closed  bool
	conn    *amqp.Connection // nil while disconnected
	pub     *amqp.Channel
	changed chan struct{} // closed and replaced on every state change
	subs    map[*sub]struct{}
	// mismatched: queues found with other arguments (logged once each).
	mismatched map[string]bool

	// transient is the channel of PublishTransient, without publisher confirms, opened on
	// first use on the current connection (transientConn).
	transientMu   sync.Mutex
	transient     *amqp.Channel
	transientConn *amqp.Connection

	done chan struct{}
	wg   sync.WaitGroup
}

var (
	_ bus.Bus                = (*Bus)(nil)
	_ bus.AsyncPublisher     = (*Bus)(nil)
	_ bus.TransientPublisher = (*Bus)(nil)
	_ bus.QueueRetirer       = (*Bus)(nil)
)

// New returns a Bus that connects to opts.URL in the background and stays connected until
// Close. It fails only for an invalid URL; use WaitConnected to wait for the broker.
func New(opts Options) (*Bus, error) {
	if _, err := amqp.ParseURI(opts.URL); err != nil {
		return nil, fmt.Errorf("rabbitmq: %w", err)
	}
	if opts.Name == "" {
		opts.Name = "xcomponent"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Prefetch <= 0 {
		opts.Prefetch = 16
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 200 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(15*time.Second, opts.MinBackoff)
	}
	b := &Bus{
		opts:    opts,
		masked:  redact.URL(opts.URL),
		changed: make(chan struct{}),
		subs:    map[*sub]struct{}{},
		done:    make(chan struct{}),
	}
	b.log = opts.Logger.With("broker", b.masked)
	b.wg.Add(1)
	go b.run()
	return b, nil
}

// Connected implements bus.Bus.
func (b *Bus) Connected() bool { return b.connected.Load() }

// WaitConnected waits until the bus is connected, ctx ends or the bus is closed.
func (b *Bus) WaitConnected(ctx context.Context) error {
	for {
		b.mu.Lock()
		closed, conn, changed := b.closed, b.conn, b.changed
		b.mu.Unlock()
		switch {
		case closed:
			return bus.ErrClosed
		case conn != nil:
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// setState records a connection (conn != nil) or its loss, and wakes the waiters.
func (b *Bus) setState(conn *amqp.Connection, pub *amqp.Channel) {
	b.mu.Lock()
	b.conn, b.pub = conn, pub
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
	up := conn != nil
	if b.connected.Swap(up) != up && b.opts.OnStateChange != nil {
		b.opts.OnStateChange(up)
	}
}

// run keeps the bus connected until Close.
func (b *Bus) run() {
	defer b.wg.Done()
	backoff := b.opts.MinBackoff
	wasConnected := false
	for attempt := 1; ; attempt++ {
		conn, pub, err := b.connect()
		if err != nil {
			wait := backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, b.opts.MaxBackoff)
			b.log.Warn("broker unreachable, retrying", "attempt", attempt, "retryIn", wait.Round(time.Millisecond), "err", err)
			select {
			case <-time.After(wait):
				continue
			case <-b.done:
				return
			}
		}
		if wasConnected {
			b.log.Info("broker reconnected", "attempts", attempt)
		} else {
			b.log.Info("broker connected")
		}
		wasConnected, attempt, backoff = true, 0, b.opts.MinBackoff

		connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
		pubClosed := pub.NotifyClose(make(chan *amqp.Error, 1))
		var reason error
		select {
		case e := <-connClosed:
			reason = asErr(e, "connection closed")
		case e := <-pubClosed:
			reason = asErr(e, "publishing channel closed")
		case <-b.done:
		}
		b.setState(nil, nil)
		_ = conn.Close()
		if reason == nil { // Close
			b.log.Info("broker connection closed")
			return
		}
		b.log.Warn("broker connection lost", "err", reason)
	}
}

func asErr(e *amqp.Error, what string) error {
	if e == nil {
		return errors.New(what)
	}
	return e
}

// connect dials, declares the topology, opens the publishing channel and re-establishes
// every subscription; on success the bus is marked connected.
func (b *Bus) connect() (*amqp.Connection, *amqp.Channel, error) {
	cfg := amqp.Config{
		Heartbeat:  10 * time.Second,
		Locale:     "en_US",
		Properties: amqp.Table{"connection_name": b.opts.Name},
		Dial:       amqp.DefaultDial(10 * time.Second),
	}
	conn, err := amqp.DialConfig(b.opts.URL, cfg)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*amqp.Connection, *amqp.Channel, error) {
		_ = conn.Close()
		return nil, nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return fail(err)
	}
	if err := declareTopology(ch); err != nil {
		return fail(err)
	}
	_ = ch.Close()
	pub, err := conn.Channel()
	if err != nil {
		return fail(err)
	}
	if err := pub.Confirm(false); err != nil {
		return fail(fmt.Errorf("enable publisher confirms: %w", err))
	}

	b.attachMu.Lock()
	defer b.attachMu.Unlock()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return fail(bus.ErrClosed)
	}
	subs := make([]*sub, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		if err := s.attach(conn); err != nil {
			return fail(fmt.Errorf("re-subscribe %s: %w", s.describe(), err))
		}
	}
	b.setState(conn, pub)
	return conn, pub, nil
}

func declareTopology(ch *amqp.Channel) error {
	if err := ch.ExchangeDeclare(wire.Exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", wire.Exchange, err)
	}
	if err := ch.ExchangeDeclare(DeadLetterExchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", DeadLetterExchange, err)
	}
	return nil
}

// Publish implements bus.Bus.
func (b *Bus) Publish(ctx context.Context, channel string, body []byte, meta bus.Meta) error {
	return b.publish(ctx, wire.Exchange, wire.RoutingKey(channel), publishing(body, meta))
}

// PublishAsync implements bus.AsyncPublisher. While disconnected it waits for the broker
// like Publish (and then the message is confirmed when it returns). A message whose channel
// closes before its confirm may or may not have reached the broker: wait says so with an
// error.
func (b *Bus) PublishAsync(ctx context.Context, channel string, body []byte, meta bus.Meta) (func(context.Context) error, error) {
	msg := publishing(body, meta)
	key := wire.RoutingKey(channel)
	b.mu.Lock()
	closed, pub := b.closed, b.pub
	b.mu.Unlock()
	if closed {
		return nil, bus.ErrClosed
	}
	if pub != nil {
		dc, err := pub.PublishWithDeferredConfirmWithContext(ctx, wire.Exchange, key, false, false, msg)
		if err == nil {
			return func(ctx context.Context) error {
				ack, err := dc.WaitContext(ctx)
				switch {
				case err != nil:
					return err
				case !ack:
					return ErrNacked
				}
				return nil
			}, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if err := b.publish(ctx, wire.Exchange, key, msg); err != nil {
		return nil, err
	}
	return func(context.Context) error { return nil }, nil
}

// PublishTransient implements bus.TransientPublisher: the message goes out with
// delivery_mode 1 (transient) on a channel without publisher confirms, so the broker neither
// tracks nor confirms it; it returns once the message is handed to the connection. While
// disconnected it waits for the broker like Publish; a message written just before the
// connection dies is lost without an error.
func (b *Bus) PublishTransient(ctx context.Context, channel string, body []byte, meta bus.Meta) error {
	msg := publishing(body, meta)
	msg.DeliveryMode = amqp.Transient
	key := wire.RoutingKey(channel)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ch, changed, err := b.transientChannel()
		if err != nil {
			return err
		}
		if ch != nil {
			return ch.PublishWithContext(ctx, wire.Exchange, key, false, false, msg)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// transientChannel returns the channel of PublishTransient on the current connection (opening
// it if needed), or nil and the channel closed at the next state change while disconnected.
func (b *Bus) transientChannel() (*amqp.Channel, <-chan struct{}, error) {
	b.transientMu.Lock()
	defer b.transientMu.Unlock()
	b.mu.Lock()
	closed, conn, changed := b.closed, b.conn, b.changed
	b.mu.Unlock()
	switch {
	case closed:
		return nil, nil, bus.ErrClosed
	case conn == nil:
		return nil, changed, nil
	case b.transient != nil && b.transientConn == conn && !b.transient.IsClosed():
		return b.transient, nil, nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, nil, fmt.Errorf("rabbitmq: open a channel for transient messages: %w", err)
	}
	b.transient, b.transientConn = ch, conn
	return ch, nil, nil
}

func publishing(body []byte, meta bus.Meta) amqp.Publishing {
	msg := amqp.Publishing{
		ContentType:   "application/json",
		DeliveryMode:  amqp.Persistent,
		MessageId:     meta.MessageID,
		CorrelationId: meta.CorrelationID,
		Timestamp:     time.Now(),
		Body:          body,
	}
	if len(meta.Headers) > 0 {
		msg.Headers = amqp.Table{}
		for k, v := range meta.Headers {
			msg.Headers[k] = v
		}
	}
	return msg
}

// publish publishes msg on exchange with key and waits for the broker's confirm, waiting for
// a connection while there is none.
func (b *Bus) publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		b.mu.Lock()
		closed, pub, changed := b.closed, b.pub, b.changed
		b.mu.Unlock()
		if closed {
			return bus.ErrClosed
		}
		if pub != nil {
			dc, err := pub.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, msg)
			if err == nil {
				var ack bool
				ack, err = dc.WaitContext(ctx)
				if err != nil {
					return err
				}
				if ack {
					return nil
				}
				if !pub.IsClosed() {
					return ErrNacked
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The channel or connection went away: wait for the next state and retry.
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// QueueExists implements bus.Bus with a passive declaration on a channel of its own (the
// broker closes the channel when the queue does not exist).
func (b *Bus) QueueExists(ctx context.Context, queue string) (bool, error) {
	if err := b.WaitConnected(ctx); err != nil {
		return false, err
	}
	b.mu.Lock()
	conn := b.conn
	b.mu.Unlock()
	if conn == nil {
		return false, errors.New("rabbitmq: not connected")
	}
	ch, err := conn.Channel()
	if err != nil {
		return false, err
	}
	defer func() { _ = ch.Close() }()
	_, err = ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.NotFound {
		return false, nil
	}
	return err == nil, err
}

// RetireQueue implements bus.QueueRetirer with basic.get on a channel of its own: messages are
// taken one at a time, each acknowledged after h returned, so that a crash in the middle
// leaves the rest in the queue for the next start.
func (b *Bus) RetireQueue(ctx context.Context, queue string, bindings []string, h bus.Handler) (moved int, retired bool, err error) {
	if err := b.WaitConnected(ctx); err != nil {
		return 0, false, err
	}
	b.mu.Lock()
	conn := b.conn
	b.mu.Unlock()
	if conn == nil {
		return 0, false, errors.New("rabbitmq: not connected")
	}
	ch, err := conn.Channel()
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = ch.Close() }()
	notFound := func(err error) bool {
		var ae *amqp.Error
		return errors.As(err, &ae) && ae.Code == amqp.NotFound
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if notFound(err) {
		return 0, false, nil
	} else if err != nil {
		return 0, false, fmt.Errorf("inspect %s: %w", queue, err)
	}
	for _, c := range bindings {
		if err := ch.QueueUnbind(queue, wire.RoutingKey(c), wire.Exchange, nil); err != nil {
			return 0, false, fmt.Errorf("unbind %s from %s: %w", queue, c, err)
		}
	}
	if q.Consumers > 0 {
		return 0, false, nil
	}
	for ctx.Err() == nil {
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			return moved, false, fmt.Errorf("get from %s: %w", queue, err)
		}
		if !ok {
			break
		}
		var settle error
		if herr := h(ctx, toMessage(d)); herr != nil {
			if ctx.Err() != nil {
				_ = d.Nack(false, true)
				return moved, false, ctx.Err()
			}
			b.log.Warn("message of a retired queue refused, dead-lettered", "queue", queue, "messageId", d.MessageId, "err", herr)
			settle = d.Nack(false, false)
		} else {
			settle = d.Ack(false)
		}
		if err := settle; err != nil {
			return moved, false, fmt.Errorf("settle a message of %s: %w", queue, err)
		}
		moved++
	}
	if err := ctx.Err(); err != nil {
		return moved, false, err
	}
	// Deleted only when still empty and unused (a consumer that attached meanwhile keeps it).
	q, err = ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	switch {
	case notFound(err): // another runtime retired it meanwhile
		return moved, true, nil
	case err != nil:
		return moved, false, fmt.Errorf("inspect %s: %w", queue, err)
	case q.Messages > 0 || q.Consumers > 0:
		return moved, false, nil
	}
	if _, err := ch.QueueDelete(queue, false, false, false); err != nil && !notFound(err) {
		return moved, false, fmt.Errorf("delete %s: %w", queue, err)
	}
	return moved, true, nil
}

// Subscribe implements bus.Bus.
func (b *Bus) Subscribe(ctx context.Context, channel string, h bus.Handler) (bus.Subscription, error) {
	return b.SubscribeWith(ctx, channel, bus.SubscribeOptions{}, h)
}

// SubscribeWith implements bus.Bus.
func (b *Bus) SubscribeWith(ctx context.Context, channel string, opts bus.SubscribeOptions, h bus.Handler) (bus.Subscription, error) {
	return b.subscribe(ctx, &sub{channel: channel, sopts: opts, h: h})
}

// Consume implements bus.Bus.
func (b *Bus) Consume(ctx context.Context, queue string, bindings []string, h bus.Handler) (bus.Subscription, error) {
	return b.ConsumeWith(ctx, queue, bus.ConsumeOptions{Bindings: bindings}, h)
}

// ConsumeWith implements bus.Bus.
func (b *Bus) ConsumeWith(ctx context.Context, queue string, opts bus.ConsumeOptions, h bus.Handler) (bus.Subscription, error) {
	if queue == "" {
		return nil, errors.New("rabbitmq: Consume needs a queue name")
	}
	if opts.DeadLetterQueue == "" {
		opts.DeadLetterQueue = bus.DeadLetterQueue(queue)
	}
	return b.subscribe(ctx, &sub{queue: queue, bindings: opts.Bindings, opts: opts, h: h})
}

func (b *Bus) subscribe(ctx context.Context, s *sub) (bus.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.b = b
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.attached = make(chan attachment, 1)
	s.ready = make(chan struct{})
	s.stopped = make(chan struct{})

	b.attachMu.Lock()
	b.mu.Lock()
	closed, conn := b.closed, b.conn
	b.mu.Unlock()
	if closed {
		b.attachMu.Unlock()
		s.cancel()
		return nil, bus.ErrClosed
	}
	if conn != nil {
		if err := s.attach(conn); err != nil && !conn.IsClosed() {
			b.attachMu.Unlock()
			s.cancel()
			return nil, err
		}
		// On a connection that just died the reconnection will attach it.
	}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	b.wg.Add(1)
	go s.run()
	b.attachMu.Unlock()

	select {
	case <-s.ready:
		return s, nil
	case <-ctx.Done():
		_ = s.Close()
		return nil, ctx.Err()
	case <-b.done:
		_ = s.Close()
		return nil, bus.ErrClosed
	}
}

// Close implements bus.Bus.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	// The subscriptions close first, while the connection is up: a named subscription queue
	// is deleted then rather than left to its expiry.
	subs := make([]*sub, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		_ = s.Close()
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.done)
	close(b.changed)
	b.changed = make(chan struct{})
	subs = subs[:0]
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		_ = s.Close()
	}
	b.wg.Wait()
	return nil
}

// sub is a Subscribe (queue == "") or Consume.
type sub struct {
	b        *Bus
	channel  string // Subscribe
	sopts    bus.SubscribeOptions
	queue    string // Consume
	bindings []string
	opts     bus.ConsumeOptions
	h        bus.Handler

	ctx      context.Context
	cancel   context.CancelFunc
	attached chan attachment // the next live consumer, handed over by attach
	ready    chan struct{}   // closed after the first attach
	readyOne sync.Once
	stopped  chan struct{}
	once     sync.Once
}

type attachment struct {
	conn       *amqp.Connection
	ch         *amqp.Channel
	deliveries <-chan amqp.Delivery
}

func (s *sub) describe() string {
	if s.queue != "" {
		return "queue " + s.queue
	}
	if s.sopts.Queue != "" {
		return "channel " + s.channel + " (queue " + s.sopts.Queue + ")"
	}
	return "channel " + s.channel
}

// attach opens a channel on conn, declares and binds the queue and starts consuming; the
// caller holds attachMu.
func (s *sub) attach(conn *amqp.Connection) error {
	if s.ctx.Err() != nil {
		return nil
	}
	ch, d, err := s.declareAndConsume(conn)
	if err != nil {
		return err
	}
	select { // an attachment nobody took yet belongs to a dead connection
	case old := <-s.attached:
		_ = old.ch.Close()
	default:
	}
	s.attached <- attachment{conn: conn, ch: ch, deliveries: d}
	s.readyOne.Do(func() { close(s.ready) })
	return nil
}

// declareAndConsume declares the subscription's queue and starts consuming it on a channel
// of its own (declarations run on another channel: a refused one closes its channel).
func (s *sub) declareAndConsume(conn *amqp.Connection) (*amqp.Channel, <-chan amqp.Delivery, error) {
	if s.queue != "" {
		if err := s.declare(conn); err != nil {
			return nil, nil, err
		}
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*amqp.Channel, <-chan amqp.Delivery, error) {
		_ = ch.Close()
		return nil, nil, err
	}
	prefetch := s.prefetch()
	if s.queue == "" {
		prefetch = max(prefetch, fanoutPrefetch)
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return fail(err)
	}
	if s.queue == "" {
		// Anonymous: exclusive and auto-delete, it dies with the connection. Named: it
		// outlives the connection (expiring when abandoned), and its consumer is not
		// exclusive, so that a new one attaches even while the broker has not yet noticed
		// the death of the old connection.
		name, private := s.sopts.Queue, s.sopts.Queue == ""
		var args amqp.Table
		if !private {
			args = amqp.Table{}
			if s.sopts.Expires > 0 {
				args["x-expires"] = max(int64(1), s.sopts.Expires.Milliseconds())
			}
			if s.sopts.MaxLength > 0 {
				args["x-max-length"] = int64(s.sopts.MaxLength)
			}
		}
		q, err := ch.QueueDeclare(name, false, private, private, false, args)
		if err != nil {
			return fail(fmt.Errorf("declare %s: %w", firstNonEmpty(name, "subscription queue"), err))
		}
		if err := ch.QueueBind(q.Name, wire.RoutingKey(s.channel), wire.Exchange, false, nil); err != nil {
			return fail(err)
		}
		d, err := ch.Consume(q.Name, "", false, private, false, false, nil)
		if err != nil {
			return fail(err)
		}
		return ch, d, nil
	}
	d, err := ch.Consume(s.queue, "", false, false, false, false, nil)
	if err != nil {
		return fail(err)
	}
	return ch, d, nil
}

// declare declares the work queue (or dead-letter queue) of a Consume and binds it.
func (s *sub) declare(conn *amqp.Connection) error {
	d := &declarer{b: s.b, conn: conn}
	defer d.close()
	if bus.IsDeadLetterQueue(s.queue) {
		if err := d.deadLetterQueue(s.queue); err != nil {
			return err
		}
	} else if err := d.workQueue(s.queue, s.opts); err != nil {
		return err
	}
	for _, c := range s.bindings {
		ch, err := d.channel()
		if err != nil {
			return err
		}
		if err := ch.QueueBind(s.queue, wire.RoutingKey(c), wire.Exchange, false, nil); err != nil {
			return fmt.Errorf("bind %s to %s: %w", s.queue, c, err)
		}
	}
	return nil
}

// declarer declares queues on a channel of its own, opened again after the broker closed it
// for a refused declaration.
type declarer struct {
	b    *Bus
	conn *amqp.Connection
	ch   *amqp.Channel
}

func (d *declarer) channel() (*amqp.Channel, error) {
	if d.ch == nil || d.ch.IsClosed() {
		ch, err := d.conn.Channel()
		if err != nil {
			return nil, err
		}
		d.ch = ch
	}
	return d.ch, nil
}

func (d *declarer) close() {
	if d.ch != nil {
		_ = d.ch.Close()
	}
}

// queue declares the durable queue name with args. A queue that exists with other arguments
// (declared by an earlier version, or with other TTL or length settings: the broker answers
// PRECONDITION_FAILED) is used as it is, after a warning that names the queue, the argument
// and how to migrate, unless strict: an upgrade must not stop the runtimes at start.
func (d *declarer) queue(name string, args amqp.Table, strict bool) error {
	ch, err := d.channel()
	if err != nil {
		return err
	}
	_, err = ch.QueueDeclare(name, true, false, false, false, args)
	var ae *amqp.Error
	if err == nil || strict || !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		if err != nil {
			return fmt.Errorf("declare %s: %w", name, err)
		}
		return nil
	}
	ch, perr := d.channel()
	if perr == nil {
		_, perr = ch.QueueDeclarePassive(name, true, false, false, false, nil)
	}
	if perr != nil {
		return fmt.Errorf("declare %s: %w (passive declaration: %v)", name, err, perr)
	}
	if d.b.firstMismatch(name) {
		d.b.log.Warn("queue exists with other arguments than this version declares: using it with its own arguments",
			"queue", name, "broker", ae.Reason, "wanted", fmt.Sprint(map[string]any(args)),
			"migrate", "TTL and max length can be lowered at once with a policy (rabbitmqctl set_policy --apply-to queues NAME '^"+name+"$' '{\"message-ttl\":MS,\"max-length\":N}'); "+
				"to take the new arguments: stop the consumers of the queue, let it drain (rabbitmqctl list_queues name messages consumers), delete it (rabbitmqctl delete_queue "+name+") and start them again; see docs/reliability.md")
	}
	return nil
}

// firstMismatch says whether queue's argument mismatch is to be logged: once per queue and
// process, not on every reconnection.
func (b *Bus) firstMismatch(queue string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mismatched == nil {
		b.mismatched = map[string]bool{}
	}
	if b.mismatched[queue] {
		return false
	}
	b.mismatched[queue] = true
	return true
}

// deadLetterQueue declares the durable quorum dead-letter queue dlq, bound to the dead-letter
// exchange with its own name as routing key.
func (d *declarer) deadLetterQueue(dlq string) error {
	if err := d.queue(dlq, amqp.Table{"x-queue-type": "quorum"}, false); err != nil {
		return err
	}
	ch, err := d.channel()
	if err != nil {
		return err
	}
	if err := ch.QueueBind(dlq, dlq, DeadLetterExchange, false, nil); err != nil {
		return fmt.Errorf("bind %s: %w", dlq, err)
	}
	return nil
}

// workQueue declares the durable quorum queue name and its dead-letter queue.
func (d *declarer) workQueue(name string, opts bus.ConsumeOptions) error {
	dlq := opts.DeadLetterQueue
	if dlq == "" {
		dlq = bus.DeadLetterQueue(name)
	}
	if err := d.deadLetterQueue(dlq); err != nil {
		return err
	}
	args := amqp.Table{
		"x-queue-type":              "quorum",
		"x-dead-letter-exchange":    DeadLetterExchange,
		"x-dead-letter-routing-key": dlq,
	}
	if opts.SingleActive {
		args["x-single-active-consumer"] = true
	}
	if opts.MessageTTL > 0 {
		args["x-message-ttl"] = max(int64(1), opts.MessageTTL.Milliseconds())
	}
	if opts.MaxLength > 0 {
		args["x-max-length"] = int64(opts.MaxLength)
	}
	return d.queue(name, args, opts.StrictArguments)
}

// run serves the attachments one after the other until the subscription is closed.
func (s *sub) run() {
	defer s.b.wg.Done()
	defer close(s.stopped)
	for {
		select {
		case <-s.ctx.Done():
			s.drain()
			return
		case a := <-s.attached:
			s.serve(a)
		}
	}
}

// prefetch is the subscription's number of unacknowledged messages per consumer (before the
// fan-out minimum).
func (s *sub) prefetch() int {
	if s.opts.Prefetch > 0 {
		return s.opts.Prefetch
	}
	return s.b.opts.Prefetch
}

// drain closes an attachment made concurrently with Close.
func (s *sub) drain() {
	for {
		select {
		case a := <-s.attached:
			_ = a.ch.Close()
		default:
			return
		}
	}
}

func (s *sub) serve(a attachment) {
	// ctx ends with the subscription or with this attachment: a handler still running for a
	// message of a dead channel stops (its message is redelivered).
	ctx, cancel := context.WithCancel(s.ctx)
	var workers sync.WaitGroup
	var (
		mu     sync.Mutex
		queued map[string][]work // by order key: waiting behind a running handler
	)
	var (
		ack   *acker
		slots chan struct{} // one per message being handled or queued (batches: per message in it)
	)
	if s.opts.OrderKey != nil {
		queued = map[string][]work{}
		ack = newAcker(a.ch)
		slots = make(chan struct{}, max(s.prefetch(), 2*bus.DefaultBatchMessages))
	}
	defer func() {
		cancel()
		workers.Wait()
		// Handled deliveries whose coalesced acknowledgement waits for an earlier one left
		// unacknowledged (closing: a partition handed over): acknowledge them now, or the
		// next consumer would get them again (duplicates, extra work).
		ack.flush()
		_ = a.ch.Close() // unacknowledged deliveries go back to the queue
	}()
	// Fan-out copies handled and not acknowledged yet (see fanoutAckBatch).
	var (
		unacked int
		lastTag uint64
	)
	for {
		var (
			d   amqp.Delivery
			ok  bool
			got bool
		)
		if unacked > 0 && unacked < fanoutAckBatch {
			select { // the next copy, if the broker already sent it
			case d, ok = <-a.deliveries:
				got = true
			default:
			}
		}
		if !got {
			if unacked > 0 {
				_ = a.ch.Ack(lastTag, true)
				unacked = 0
			}
			select {
			case <-ctx.Done():
				return
			case d, ok = <-a.deliveries:
			}
		}
		if !ok {
			if !a.conn.IsClosed() {
				// The channel died (consumer cancelled by the broker, queue deleted …)
				// on a live connection: re-establish everything through a reconnection.
				s.b.log.Warn("broker closed a subscription, reconnecting", "subscription", s.describe())
				_ = a.conn.Close()
			}
			return
		}
		m := toMessage(d)
		parts, err := bus.Unbatch(m)
		if err != nil && bus.IsDeadLetterQueue(s.queue) {
			parts, err = nil, nil // a dead batch: read as it is
		}
		if s.queue == "" {
			// A fan-out copy: acknowledged with the ones that follow it in the same
			// burst (one basic.ack multiple=true), a failed one dropped at once.
			if err == nil && parts == nil {
				err = s.h(ctx, m)
			}
			for _, p := range parts {
				if err = s.h(ctx, p); err != nil {
					break
				}
			}
			if err != nil {
				_ = d.Nack(false, false)
			} else {
				lastTag = d.DeliveryTag
				unacked++
			}
			continue
		}
		if err != nil {
			s.b.log.Warn("malformed batch, dead-lettering", "queue", s.queue, "messageId", d.MessageId, "err", err)
			s.deadLetter(ctx, d, err)
			if ack != nil {
				ack.settled(d.DeliveryTag)
			}
			continue
		}
		if queued == nil {
			if !s.handleBatch(ctx, d, m, parts) {
				return
			}
			continue
		}
		items := []work{{d: d, m: m}}
		if parts != nil {
			b := &batchDelivery{d: d, left: len(parts)}
			items = make([]work, len(parts))
			for i, p := range parts {
				items[i] = work{d: d, m: p, batch: b}
			}
		}
		for _, w := range items {
			// Bounded like the prefetch window, which counts a batch as one message.
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			key := s.opts.OrderKey(w.m)
			mu.Lock()
			if q, busy := queued[key]; busy {
				queued[key] = append(q, w)
				mu.Unlock()
				continue
			}
			queued[key] = nil
			mu.Unlock()
			workers.Add(1)
			go func() {
				defer workers.Done()
				for {
					if !s.handleWork(ctx, w, ack) {
						cancel() // closing: stop taking messages; the rest is redelivered
					}
					<-slots
					mu.Lock()
					q := queued[key]
					if len(q) == 0 || ctx.Err() != nil {
						delete(queued, key)
						mu.Unlock()
						return
					}
					w, queued[key] = q[0], q[1:]
					mu.Unlock()
				}
			}()
		}
	}
}

// work is a delivery to handle, or one message of a batch delivery.
type work struct {
	d     amqp.Delivery
	m     bus.Message
	batch *batchDelivery // nil: m is d
}

// batchDelivery is a batch whose messages are handled concurrently (by order key): it is
// acknowledged when the last one is handled, requeued when the dead letter of one could not be
// published, and left unacknowledged (redelivered whole) when the subscription closes before.
type batchDelivery struct {
	d         amqp.Delivery
	mu        sync.Mutex
	left      int
	requeue   bool
	abandoned bool
}

// finish records one message handled (requeue: its dead letter was not published; abandon:
// closing) and says whether it was the batch's last one and what to do then.
func (b *batchDelivery) finish(requeue, abandon bool) (last, req, left bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.left--
	b.requeue = b.requeue || requeue
	b.abandoned = b.abandoned || abandon
	return b.left == 0, b.requeue, b.abandoned
}

// handleWork handles w (see handleAck); false when the subscription is closing and the
// delivery was left unacknowledged.
func (s *sub) handleWork(ctx context.Context, w work, ack *acker) bool {
	if w.batch == nil {
		return s.handleAckMessage(ctx, w.d, w.m, ack)
	}
	err := s.h(ctx, w.m)
	closing := err != nil && ctx.Err() != nil
	requeue := false
	if err != nil && !closing {
		s.b.log.Warn("handler failed on a message of a batch, dead-lettering it", "queue", s.queue, "messageId", w.m.MessageID, "batch", w.d.MessageId, "err", err)
		requeue = !s.deadLetterPart(ctx, w.d, w.m, err)
	}
	last, req, abandoned := w.batch.finish(requeue, closing)
	if last && !abandoned {
		if req {
			_ = w.d.Nack(false, true)
			ack.settled(w.d.DeliveryTag)
		} else {
			ack.ack(w.d.DeliveryTag)
		}
	}
	return !closing
}

// handleBatch handles a delivery (parts nil) or the messages of a batch one after the other,
// then acknowledges it; false when the subscription is closing and d was left unacknowledged.
func (s *sub) handleBatch(ctx context.Context, d amqp.Delivery, m bus.Message, parts []bus.Message) bool {
	if parts == nil {
		return s.handleAckMessage(ctx, d, m, nil)
	}
	requeue := false
	for _, p := range parts {
		err := s.h(ctx, p)
		if err != nil && ctx.Err() != nil {
			return false
		}
		if err != nil {
			s.b.log.Warn("handler failed on a message of a batch, dead-lettering it", "queue", s.queue, "messageId", p.MessageID, "batch", d.MessageId, "err", err)
			requeue = requeue || !s.deadLetterPart(ctx, d, p, err)
		}
	}
	if requeue {
		_ = d.Nack(false, true)
	} else {
		_ = d.Ack(false)
	}
	return true
}

// Fan-out subscriptions (Subscribe) read a stream of small notifications (runtime events,
// replies, registry) whose copies are only dropped on error: they acknowledge the copies
// handled in one burst with a single basic.ack multiple=true, at most fanoutAckBatch of them,
// and as soon as no further copy is waiting in the client, instead of one basic.ack each (one
// broker operation per copy and subscriber). They take at least fanoutPrefetch copies
// unacknowledged, so that a burst fits.
const (
	fanoutPrefetch = 256
	fanoutAckBatch = fanoutPrefetch / 2
)

// handleAckMessage runs the handler on m, the message of d, and acknowledges, dead-letters
// or leaves d (through ack when not nil); false when the subscription is closing and d was
// left unacknowledged.
func (s *sub) handleAckMessage(ctx context.Context, d amqp.Delivery, m bus.Message, ack *acker) bool {
	err := s.h(ctx, m)
	switch {
	case err == nil && ack != nil:
		ack.ack(d.DeliveryTag)
	case err == nil:
		_ = d.Ack(false)
	case ctx.Err() != nil && s.queue != "":
		return false // closing: leave it unacknowledged, for another consumer
	case s.queue == "":
		_ = d.Nack(false, false)
	default:
		s.b.log.Warn("handler failed, dead-lettering", "queue", s.queue, "messageId", d.MessageId, "err", err)
		s.deadLetter(ctx, d, err)
		if ack != nil {
			ack.settled(d.DeliveryTag)
		}
	}
	return true
}

// acker acknowledges the deliveries of one channel handled concurrently: one ack with
// multiple=true for the longest run of settled delivery tags, so that a burst of completions
// (a group commit returning many commands at once) costs the broker one acknowledgement
// instead of one each. Completions beyond a tag still in progress wait for it, up to
// maxAckAhead of them; then they are acknowledged one by one, so that a slow message does not
// hold the others' acknowledgements (and the prefetch window) for long.
type acker struct {
	ch    *amqp.Channel
	mu    sync.Mutex
	next  uint64          // lowest delivery tag not settled yet
	ahead map[uint64]bool // settled tags above next: true = still to be acknowledged
}

const maxAckAhead = 32

func newAcker(ch *amqp.Channel) *acker { return &acker{ch: ch, next: 1, ahead: map[uint64]bool{}} }

// ack records a successful delivery and acknowledges what can be.
func (a *acker) ack(tag uint64) { a.settle(tag, true) }

// settled records a delivery acknowledged or rejected by other means.
func (a *acker) settled(tag uint64) { a.settle(tag, false) }

func (a *acker) settle(tag uint64, needsAck bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if tag < a.next {
		return
	}
	a.ahead[tag] = needsAck
	// The broker refuses a multiple ack whose own tag is already settled: acknowledge up to
	// the last tag of the run that still needs it (the others in between are settled).
	var last uint64
	for {
		need, ok := a.ahead[a.next]
		if !ok {
			break
		}
		delete(a.ahead, a.next)
		if need {
			last = a.next
		}
		a.next++
	}
	if last > 0 {
		_ = a.ch.Ack(last, true)
	}
	if len(a.ahead) > maxAckAhead {
		for t, need := range a.ahead {
			if need {
				_ = a.ch.Ack(t, false)
				a.ahead[t] = false
			}
		}
	}
}

// flush acknowledges, one by one, the handled deliveries still waiting for an earlier tag;
// called once no handler runs any more on the channel. nil-safe.
func (a *acker) flush() {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for t, need := range a.ahead {
		if need {
			_ = a.ch.Ack(t, false)
		}
		delete(a.ahead, t)
	}
}

// deadLetter sends d to the queue's dead-letter queue with err as its reason, then
// acknowledges it; when that publish fails, the broker dead-letters it (reason "rejected").
func (s *sub) deadLetter(ctx context.Context, d amqp.Delivery, reason error) {
	dlq := s.opts.DeadLetterQueue
	if dlq == "" || bus.IsDeadLetterQueue(s.queue) {
		_ = d.Nack(false, false)
		return
	}
	h := amqp.Table{}
	for k, v := range d.Headers {
		h[k] = v
	}
	h[bus.HeaderDeadLetterReason] = reason.Error()
	h[headerOriginalChannel] = wire.ChannelOf(d.RoutingKey)
	h[headerOriginalQueue] = s.queue
	msg := amqp.Publishing{
		ContentType: d.ContentType, DeliveryMode: amqp.Persistent, MessageId: d.MessageId,
		CorrelationId: d.CorrelationId, Timestamp: d.Timestamp, Headers: h, Body: d.Body,
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.b.publish(pctx, DeadLetterExchange, dlq, msg); err != nil {
		_ = d.Nack(false, false)
		return
	}
	_ = d.Ack(false)
}

// deadLetterPart publishes m, a message of batch d, to the dead-letter queue alone, with its
// own headers and reason; false when it could not (the batch is then requeued, and handled
// again). Without a dead-letter queue the message is dropped.
func (s *sub) deadLetterPart(ctx context.Context, d amqp.Delivery, m bus.Message, reason error) bool {
	dlq := s.opts.DeadLetterQueue
	if dlq == "" || bus.IsDeadLetterQueue(s.queue) {
		return true
	}
	h := amqp.Table{}
	for k, v := range m.Headers {
		h[k] = v
	}
	h[bus.HeaderDeadLetterReason] = reason.Error()
	h[headerOriginalChannel] = wire.ChannelOf(d.RoutingKey)
	h[headerOriginalQueue] = s.queue
	msg := amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: m.MessageID,
		CorrelationId: m.CorrelationID, Timestamp: d.Timestamp, Headers: h, Body: m.Body,
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return s.b.publish(pctx, DeadLetterExchange, dlq, msg) == nil
}

// Headers of the dead letters we publish ourselves.
const (
	headerOriginalChannel = "xc-original-channel"
	headerOriginalQueue   = "xc-original-queue"
)

// Close implements bus.Subscription.
func (s *sub) Close() error {
	s.once.Do(func() {
		s.b.attachMu.Lock()
		s.b.mu.Lock()
		delete(s.b.subs, s)
		s.b.mu.Unlock()
		s.cancel()
		s.b.attachMu.Unlock()
		<-s.stopped
		s.deleteQueue()
	})
	return nil
}

// deleteQueue deletes the named queue of a closed SubscribeWith, best effort: when the broker
// is unreachable, its x-expires deletes it.
func (s *sub) deleteQueue() {
	if s.queue != "" || s.sopts.Queue == "" {
		return
	}
	s.b.mu.Lock()
	conn := s.b.conn
	s.b.mu.Unlock()
	if conn == nil {
		return
	}
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer func() { _ = ch.Close() }()
	if _, err := ch.QueueDelete(s.sopts.Queue, false, false, false); err != nil {
		s.b.log.Warn("subscription queue not deleted: the broker deletes it when it expires", "queue", s.sopts.Queue, "err", err)
	}
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func toMessage(d amqp.Delivery) bus.Message {
	m := bus.Message{
		Channel:     wire.ChannelOf(d.RoutingKey),
		Body:        d.Body,
		Redelivered: d.Redelivered,
		Meta:        bus.Meta{MessageID: d.MessageId, CorrelationID: d.CorrelationId},
	}
	if d.Exchange == DeadLetterExchange {
		if c, ok := d.Headers[headerOriginalChannel].(string); ok && c != "" {
			m.Channel = c
		} else {
			m.Channel = deadLetterChannel(d.Headers, m.Channel)
		}
	}
	for k, v := range d.Headers {
		if sv, ok := v.(string); ok {
			if m.Headers == nil {
				m.Headers = map[string]string{}
			}
			m.Headers[k] = sv
		}
	}
	if reason := deathReason(d.Headers); reason != "" && m.Headers[bus.HeaderDeadLetterReason] == "" {
		if m.Headers == nil {
			m.Headers = map[string]string{}
		}
		m.Headers[bus.HeaderDeadLetterReason] = reason
	}
	return m
}

// deathReason is the broker's reason for the latest dead-lettering (x-death), "" when none.
func deathReason(h amqp.Table) string {
	deaths, _ := h["x-death"].([]any)
	if len(deaths) == 0 {
		return ""
	}
	latest, _ := deaths[0].(amqp.Table)
	reason, _ := latest["reason"].(string)
	if q, _ := latest["queue"].(string); q != "" && reason != "" {
		return reason + " in " + q
	}
	return reason
}

// deadLetterChannel recovers the original channel of a dead letter from its x-death header.
func deadLetterChannel(h amqp.Table, fallback string) string {
	deaths, _ := h["x-death"].([]any)
	if len(deaths) == 0 {
		return fallback
	}
	first, _ := deaths[len(deaths)-1].(amqp.Table)
	keys, _ := first["routing-keys"].([]any)
	if len(keys) == 0 {
		return fallback
	}
	if k, ok := keys[0].(string); ok {
		return wire.ChannelOf(k)
	}
	return fallback
}
