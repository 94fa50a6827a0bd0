package bus

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
)

// Memory is an in-process Bus with the semantics of the RabbitMQ one: fan-out subscriptions,
// durable work queues with competing consumers, ack after success, dead-letter queues (with
// the handler's error as reason), single active consumers and redelivery of what a closed
// consumer left unacknowledged. Publish is confirmed at once. It ignores MessageTTL and
// MaxLength, and handles the messages of a queue one at a time even with an OrderKey (which
// keeps the order of every key).
type Memory struct {
	mu     sync.Mutex
	closed bool
	subs   map[*memSub]struct{}
	queues map[string]*memQueue // work queues, by name
}

// NewMemory returns an empty in-process bus.
func NewMemory() *Memory {
	return &Memory{subs: map[*memSub]struct{}{}, queues: map[string]*memQueue{}}
}

// memQueue is a queue: a work queue, a dead-letter queue or a subscription's private queue.
type memQueue struct {
	name     string
	bindings map[string]bool
	msgs     []Message
	changed  chan struct{} // closed and replaced when msgs grows
	dlq      *memQueue
	single   bool    // single active consumer
	active   *memSub // the active consumer of a single-active queue
}

// wake wakes the consumers waiting on q; the caller holds Memory.mu.
func (q *memQueue) wake() {
	close(q.changed)
	q.changed = make(chan struct{})
}

func newQueue(name string) *memQueue {
	return &memQueue{name: name, bindings: map[string]bool{}, changed: make(chan struct{})}
}

// push appends m; the caller holds Memory.mu.
func (q *memQueue) push(m Message) {
	q.msgs = append(q.msgs, m)
	q.wake()
}

func copyMessage(channel string, body []byte, meta Meta) Message {
	meta.Headers = maps.Clone(meta.Headers)
	return Message{Channel: channel, Body: slices.Clone(body), Meta: meta}
}

// Publish implements Bus.
func (b *Memory) Publish(ctx context.Context, channel string, body []byte, meta Meta) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	for s := range b.subs {
		if s.private && s.q.bindings[channel] {
			s.q.push(copyMessage(channel, body, meta))
		}
	}
	for _, q := range b.queues {
		if q.bindings[channel] {
			q.push(copyMessage(channel, body, meta))
		}
	}
	return nil
}

// PublishAsync implements AsyncPublisher: Publish, confirmed at once.
func (b *Memory) PublishAsync(ctx context.Context, channel string, body []byte, meta Meta) (func(context.Context) error, error) {
	if err := b.Publish(ctx, channel, body, meta); err != nil {
		return nil, err
	}
	return func(context.Context) error { return nil }, nil
}

// Subscribe implements Bus.
func (b *Memory) Subscribe(ctx context.Context, channel string, h Handler) (Subscription, error) {
	return b.SubscribeWith(ctx, channel, SubscribeOptions{}, h)
}

// SubscribeWith implements Bus. An in-process bus never loses its connection: a named queue
// behaves as Subscribe's (Expires and MaxLength are ignored).
func (b *Memory) SubscribeWith(ctx context.Context, channel string, _ SubscribeOptions, h Handler) (Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	q := newQueue("")
	q.bindings[channel] = true
	return b.start(q, true, h)
}

// Consume implements Bus.
func (b *Memory) Consume(ctx context.Context, queue string, bindings []string, h Handler) (Subscription, error) {
	return b.ConsumeWith(ctx, queue, ConsumeOptions{Bindings: bindings}, h)
}

// QueueExists implements Bus.
func (b *Memory) QueueExists(ctx context.Context, queue string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.queues[queue]
	return ok, nil
}

// ConsumeWith implements Bus.
func (b *Memory) ConsumeWith(ctx context.Context, queue string, opts ConsumeOptions, h Handler) (Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if queue == "" {
		return nil, errors.New("bus: Consume needs a queue name")
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	q := b.declare(queue, opts.DeadLetterQueue)
	q.single = q.single || opts.SingleActive
	for _, c := range opts.Bindings {
		q.bindings[c] = true
	}
	b.mu.Unlock()
	return b.start(q, false, h)
}

// declare returns the named queue, creating it and its dead-letter queue (dlq, default
// DeadLetterQueue(name)); b.mu is held.
func (b *Memory) declare(name, dlq string) *memQueue {
	if q, ok := b.queues[name]; ok {
		return q
	}
	q := newQueue(name)
	b.queues[name] = q
	if !IsDeadLetterQueue(name) {
		if dlq == "" {
			dlq = DeadLetterQueue(name)
		}
		q.dlq = b.declare(dlq, "")
	}
	return q
}

// DeadLetters returns the messages waiting in queue's dead-letter queue (for tests and tools).
func (b *Memory) DeadLetters(queue string) []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	if q, ok := b.queues[DeadLetterQueue(queue)]; ok {
		return slices.Clone(q.msgs)
	}
	return nil
}

// Connected implements Bus: true until Close.
func (b *Memory) Connected() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.closed
}

// Close implements Bus.
func (b *Memory) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := slices.Collect(maps.Keys(b.subs))
	b.mu.Unlock()
	for _, s := range subs {
		_ = s.Close()
	}
	return nil
}

type memSub struct {
	b       *Memory
	q       *memQueue
	private bool // a Subscribe copy queue: handler errors drop the message
	h       Handler
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
}

func (b *Memory) start(q *memQueue, private bool, h Handler) (*memSub, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &memSub{b: b, q: q, private: private, h: h, ctx: ctx, cancel: cancel}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		cancel()
		return nil, ErrClosed
	}
	b.subs[s] = struct{}{}
	if q.single && q.active == nil { // the first registered consumer is the active one
		q.active = s
	}
	s.wg.Add(1)
	b.mu.Unlock()
	go s.run()
	return s, nil
}

func (s *memSub) run() {
	defer s.wg.Done()
	for {
		s.b.mu.Lock()
		if s.q.single && s.q.active == nil && s.ctx.Err() == nil {
			s.q.active = s
		}
		if len(s.q.msgs) == 0 || (s.q.single && s.q.active != s) {
			changed := s.q.changed
			s.b.mu.Unlock()
			select {
			case <-changed:
				continue
			case <-s.ctx.Done():
				return
			}
		}
		if s.ctx.Err() != nil {
			s.b.mu.Unlock()
			return
		}
		m := s.q.msgs[0]
		s.q.msgs = s.q.msgs[1:]
		s.b.mu.Unlock()

		parts, err := Unbatch(m)
		if err != nil && IsDeadLetterQueue(s.q.name) {
			parts, err = nil, nil // a dead batch: read as it is
		}
		if err == nil && parts == nil {
			err = s.h(s.ctx, m)
		}
		for _, p := range parts {
			// A batch: its messages one after the other, each failed one dead-lettered alone.
			perr := s.h(s.ctx, p)
			if perr != nil && s.ctx.Err() != nil {
				err = perr
				break
			}
			if perr != nil && !s.private {
				s.b.mu.Lock()
				s.deadLetter(p, perr)
				s.b.mu.Unlock()
			}
		}
		if err == nil || s.private {
			continue
		}
		s.b.mu.Lock()
		if s.ctx.Err() != nil {
			// Closing before acknowledging: the message goes back for another consumer.
			m.Redelivered = true
			s.q.msgs = append([]Message{m}, s.q.msgs...)
			s.q.wake()
		} else {
			s.deadLetter(m, err)
		}
		s.b.mu.Unlock()
	}
}

// deadLetter pushes m to the queue's dead-letter queue with reason err; the caller holds
// Memory.mu.
func (s *memSub) deadLetter(m Message, err error) {
	if s.q.dlq == nil {
		return
	}
	m.Redelivered = false
	m.Headers = maps.Clone(m.Headers)
	if m.Headers == nil {
		m.Headers = map[string]string{}
	}
	m.Headers[HeaderDeadLetterReason] = err.Error()
	s.q.dlq.push(m)
}

// Close implements Subscription.
func (s *memSub) Close() error {
	s.once.Do(func() {
		s.b.mu.Lock()
		delete(s.b.subs, s)
		s.b.mu.Unlock()
		s.cancel()
		s.wg.Wait()
		s.b.mu.Lock()
		if s.q.active == s { // hand the queue over to the next consumer
			s.q.active = nil
			s.q.wake()
		}
		s.b.mu.Unlock()
	})
	return nil
}
