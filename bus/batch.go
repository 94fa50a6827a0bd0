package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
)

// Batches: several messages in one broker message.
//
// Every persistent message costs the broker a publish and its confirm, a delivery and an
// acknowledgement (a Raft command each in a quorum queue), whatever its size: on one host the
// broker's CPU per message, not the bytes, bounds the commands per second. A Batcher
// coalesces the messages waiting for the same key while the publishes of that key are in flight
// into one broker message (group commit: no delay when idle), and every consumer of ours
// (both buses, Subscribe and Consume) unpacks it and hands its messages to the handler one by
// one, as if they had been published separately: the handler sees no batch.
//
// A batch is a message with header HeaderBatch (its number of messages) and the body
//
//	{"type": "xcomponent_batch", "messages": [{"messageId", "correlationId", "headers", "body"}, …]}
//
// where body is each message's own JSON body, unchanged. It is published on the channel of
// its first message. A consumer acknowledges it once each of its messages was handled
// (a message whose handler failed is dead-lettered alone, with its own headers and reason);
// when the consumer stops before, the whole batch is redelivered: handlers dedupe by
// message id, as for any redelivery. A batch that cannot be decoded is dead-lettered whole.

// HeaderBatch marks a batch; its value is the number of messages in it.
const HeaderBatch = "xc-batch"

// TypeBatch is the type of a batch's body.
const TypeBatch = "xcomponent_batch"

// Default bounds of a batch.
const (
	DefaultBatchMessages = 128
	DefaultBatchBytes    = 256 << 10
)

type batchBody struct {
	Type     string         `json:"type"`
	Messages []batchMessage `json:"messages"`
}

type batchMessage struct {
	MessageID     string            `json:"messageId,omitempty"`
	CorrelationID string            `json:"correlationId,omitempty"`
	Headers       map[string]string `json:"headers,omitempty"`
	Body          json.RawMessage   `json:"body"`
}

// IsBatch says whether m is a batch (before Unbatch).
func IsBatch(m Message) bool { return m.Headers[HeaderBatch] != "" }

// Unbatch returns the messages of batch m, each with m's channel and redelivery flag; nil
// and no error when m is not a batch. An error means a malformed batch (to dead-letter).
func Unbatch(m Message) ([]Message, error) {
	if !IsBatch(m) {
		return nil, nil
	}
	var b batchBody
	if err := json.Unmarshal(m.Body, &b); err != nil {
		return nil, fmt.Errorf("malformed batch: %v", err)
	}
	if b.Type != TypeBatch {
		return nil, fmt.Errorf("malformed batch: type %q, want %q", b.Type, TypeBatch)
	}
	if len(b.Messages) == 0 {
		return nil, errors.New("malformed batch: no messages")
	}
	if n, err := strconv.Atoi(m.Headers[HeaderBatch]); err != nil || n != len(b.Messages) {
		return nil, fmt.Errorf("malformed batch: header %s is %q but the body has %d messages", HeaderBatch, m.Headers[HeaderBatch], len(b.Messages))
	}
	out := make([]Message, len(b.Messages))
	for i, p := range b.Messages {
		if len(p.Body) == 0 {
			return nil, fmt.Errorf("malformed batch: message %d has no body", i)
		}
		out[i] = Message{Channel: m.Channel, Body: p.Body, Redelivered: m.Redelivered,
			Meta: Meta{MessageID: p.MessageID, CorrelationID: p.CorrelationID, Headers: p.Headers}}
	}
	return out, nil
}

// EncodeBatch returns the body and meta of the batch of msgs (at least 2, JSON bodies).
func EncodeBatch(msgs []Message) ([]byte, Meta, error) {
	b := batchBody{Type: TypeBatch, Messages: make([]batchMessage, len(msgs))}
	for i, m := range msgs {
		b.Messages[i] = batchMessage{MessageID: m.MessageID, CorrelationID: m.CorrelationID, Headers: m.Headers, Body: m.Body}
	}
	body, err := json.Marshal(b)
	if err != nil {
		return nil, Meta{}, err
	}
	return body, Meta{MessageID: uuid.NewString(), Headers: map[string]string{HeaderBatch: strconv.Itoa(len(msgs))}}, nil
}

// Batcher publishes messages through a Bus, coalescing those of one key that wait while the
// publishes of that key are in flight (two at most) into one batch (see above). Publish returns once the
// broker confirmed the message (in its batch), like Bus.Publish. A message whose Publish
// started after another's returned is published after it (and messages of one batch are
// in the order of their Publish calls); a message alone is published as it is. At most two
// publishes of one key are in flight at once.
// Safe for concurrent use.
type Batcher struct {
	bus Bus
	// Partitions, when set, returns the partition count of a component's commands (0:
	// unknown); set it before the first Publish. See PublishCommand.
	Partitions func(component string) int
	// maxMessages and maxBytes bound a batch (defaults DefaultBatchMessages, DefaultBatchBytes).
	maxMessages, maxBytes int

	mu     sync.Mutex
	groups map[string]*batchGroup

	published, messages atomic.Int64
}

type batchGroup struct {
	inFlight int // drains running (each with one publish in flight), at most maxInFlight
	pending  []*batchItem
}

// maxInFlight is the number of publishes of one key in flight at once: with one, a message
// arriving while a batch is in flight waits for its confirm before its own publish (up to two
// confirm round trips); with two, the next batch goes out at once and collects what arrived
// meanwhile. Order per caller holds: a caller publishes its next message after the confirm.
const maxInFlight = 2

type batchItem struct {
	ctx     context.Context
	channel string
	msg     Message
	done    chan error // buffered
	taken   bool
}

// NewBatcher returns a Batcher publishing through b; maxMessages and maxBytes ≤ 0 take the
// defaults.
func NewBatcher(b Bus, maxMessages, maxBytes int) *Batcher {
	if maxMessages <= 0 {
		maxMessages = DefaultBatchMessages
	}
	if maxBytes <= 0 {
		maxBytes = DefaultBatchBytes
	}
	return &Batcher{bus: b, maxMessages: maxMessages, maxBytes: maxBytes, groups: map[string]*batchGroup{}}
}

// Stats returns the broker messages published and the messages they carried.
func (p *Batcher) Stats() (published, messages int64) { return p.published.Load(), p.messages.Load() }

// Publish publishes body on channel, in a batch with the other messages of key waiting
// meanwhile, and returns once the broker confirmed it. When ctx ends before the message was
// taken into a batch it is not published; after, it may be.
func (p *Batcher) Publish(ctx context.Context, key, channel string, body []byte, meta Meta) error {
	if !json.Valid(body) { // a batch carries JSON bodies
		return p.publish(ctx, channel, body, meta, 1)
	}
	it := &batchItem{ctx: ctx, channel: channel, msg: Message{Channel: channel, Body: body, Meta: meta}, done: make(chan error, 1)}
	p.mu.Lock()
	g := p.groups[key]
	if g == nil {
		g = &batchGroup{}
		p.groups[key] = g
	}
	g.pending = append(g.pending, it)
	lead := g.inFlight < maxInFlight
	if lead {
		g.inFlight++
	}
	p.mu.Unlock()
	if lead {
		go p.drain(key, g)
	}
	select {
	case err := <-it.done:
		return err
	case <-ctx.Done():
		p.mu.Lock()
		if !it.taken { // not published: forget it
			for i, x := range g.pending {
				if x == it {
					g.pending = append(g.pending[:i], g.pending[i+1:]...)
					break
				}
			}
		}
		p.mu.Unlock()
		return ctx.Err()
	}
}

// PublishCommand is bus.PublishCommand through the batcher. The commands bound for one
// partition share batches when the component's partition count is known (Partitions; our
// runtimes announce it), else those of one routing bucket (of Buckets). A batch is routed by
// the bucket of its first command, hence to the partition of all its commands.
func (p *Batcher) PublishCommand(ctx context.Context, component, instanceID, kind string, body []byte, meta Meta) error {
	if instanceID == "" {
		return fmt.Errorf("bus: %s command for component %s without an instance id", kind, component)
	}
	n := 0
	if p.Partitions != nil {
		n = p.Partitions(component)
	}
	return p.Publish(ctx, commandBatchKey(component, instanceID, n), CommandChannel(component, instanceID), body, commandMeta(meta, kind, instanceID))
}

// commandBatchKey is the batch key of a command: its component and its partition of n, or
// its bucket when n ≤ 0 (unknown).
func commandBatchKey(component, instanceID string, n int) string {
	if n <= 0 || n > Buckets {
		return "cmd:" + component + ":b" + strconv.Itoa(Bucket(instanceID))
	}
	return "cmd:" + component + ":p" + strconv.Itoa(Partition(instanceID, n)) + "of" + strconv.Itoa(n)
}

// drain publishes the pending messages of g, a batch at a time, until none is left.
func (p *Batcher) drain(key string, g *batchGroup) {
	for {
		p.mu.Lock()
		var (
			batch []*batchItem
			size  int
		)
		for len(g.pending) > 0 && len(batch) < p.maxMessages {
			it := g.pending[0]
			if len(batch) > 0 && (size+len(it.msg.Body) > p.maxBytes || it.channel != batch[0].channel && !sameKeyChannels(key)) {
				break
			}
			g.pending = g.pending[1:]
			if it.ctx.Err() != nil {
				it.done <- it.ctx.Err()
				continue
			}
			it.taken = true
			batch = append(batch, it)
			size += len(it.msg.Body) + 128
		}
		if len(batch) == 0 {
			g.inFlight--
			if g.inFlight == 0 {
				delete(p.groups, key)
			}
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		err := p.publishBatch(batch)
		for _, it := range batch {
			it.done <- err
		}
	}
}

// sameKeyChannels: commands of one key may be on different bucket channels (one partition).
func sameKeyChannels(key string) bool { return len(key) > 4 && key[:4] == "cmd:" }

// publishBatch publishes batch (one message as it is), with a context that ends when every
// caller's did.
func (p *Batcher) publishBatch(batch []*batchItem) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var left atomic.Int32
	left.Store(int32(len(batch)))
	for _, it := range batch {
		stop := context.AfterFunc(it.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}
	if len(batch) == 1 {
		it := batch[0]
		return p.publish(ctx, it.channel, it.msg.Body, it.msg.Meta, 1)
	}
	msgs := make([]Message, len(batch))
	for i, it := range batch {
		msgs[i] = it.msg
	}
	body, meta, err := EncodeBatch(msgs)
	if err != nil {
		return err
	}
	return p.publish(ctx, batch[0].channel, body, meta, len(batch))
}

func (p *Batcher) publish(ctx context.Context, channel string, body []byte, meta Meta, n int) error {
	err := p.bus.Publish(ctx, channel, body, meta)
	if err == nil {
		p.published.Add(1)
		p.messages.Add(int64(n))
	}
	return err
}

func commandMeta(meta Meta, kind, instanceID string) Meta {
	h := make(map[string]string, len(meta.Headers)+2)
	for k, v := range meta.Headers {
		h[k] = v
	}
	h[HeaderCommand] = kind
	h[HeaderInstance] = instanceID
	meta.Headers = h
	return meta
}
