package distributed

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/internal/telemetry"
	"github.com/xcomponent/xcomponent/internal/wiremap"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/wire"
)

// Relay defaults.
const (
	DefaultOutboxSweep = 3 * time.Second
	relayWorkers       = 8
	relayBuffer        = 4096
	sweepBatch         = 1000
	// markBatch bounds the outbox rows marked sent in one commit.
	markBatch = 512
)

// relay is the engine's Remote in a runtime: it publishes the messages the engine cannot
// deliver in this process (cross-component creates and events, cascades, broadcasts and events
// for instances of other components) on the broker, in the wire.md shapes, and marks each
// outbox row sent only after the broker confirmed it.
//
// Deliver hands a message to one of a few workers (chosen by the source instance, so that
// one instance's messages are published in order) and returns xc.ErrRelayed: the engine's
// transition never waits for the broker. A message that cannot be handed over at once (full
// buffer) simply stays in the outbox. The sweep relays, every OutboxSweep, the rows of the
// component's outbox that are older than one sweep period and still pending: those a full
// buffer left, those of a runtime of the component that died between commit and publish, and
// those a broker outage held back; it also redelivers, through the engine, the component's
// own messages a dead runtime left (hook sends, cascades, parent notifications). At start, the
// engine's Load hands over what the outbox holds too. A message may thus be published more than once (two runtimes sweeping, a crash
// between the confirm and the row's deletion): receivers apply each message id once.
type relay struct {
	log         *slog.Logger
	tp          trace.TracerProvider // nil: no publish spans
	bus         bus.Bus
	store       store.Store
	component   string
	runtimeName string
	sweepEvery  time.Duration
	// hosts says whether the engine hosts a component (its messages are not relayed).
	hosts func(string) bool
	// local redelivers, through the engine, a message for this process's components that
	// the sweep found left behind.
	local func(xc.Message)

	queues []chan xc.Message
	// sent receives the ids of published messages; one goroutine marks them sent in batches
	// (one commit for many rows: marking is what a relay mostly waits for).
	sent  chan string
	mu    sync.Mutex
	taken map[string]struct{} // ids queued, being published or being marked by this process
	idle  []chan struct{}     // drain callers, released when taken is empty

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newRelay(log *slog.Logger, b bus.Bus, st store.Store, component, runtimeName string, sweepEvery time.Duration) *relay {
	if sweepEvery <= 0 {
		sweepEvery = DefaultOutboxSweep
	}
	r := &relay{log: log, bus: b, store: st, component: component, runtimeName: runtimeName,
		sweepEvery: sweepEvery, taken: make(map[string]struct{}), hosts: func(string) bool { return false }}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.sent = make(chan string, relayBuffer)
	r.wg.Add(1)
	go r.markLoop()
	for i := 0; i < relayWorkers; i++ {
		q := make(chan xc.Message, relayBuffer/relayWorkers)
		r.queues = append(r.queues, q)
		r.wg.Add(1)
		go r.work(q)
	}
	return r
}

// startSweep starts the periodic outbox sweep; hosts reports the components of the engine,
// local redelivers a message for them.
func (r *relay) startSweep(hosts func(string) bool, local func(xc.Message)) {
	r.hosts, r.local = hosts, local
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(r.sweepEvery)
		defer t.Stop()
		for {
			select {
			case <-r.ctx.Done():
				return
			case <-t.C:
				r.sweep()
			}
		}
	}()
}

// close stops the workers and the sweep; what they had not published stays in the outbox.
func (r *relay) close() {
	r.cancel()
	r.wg.Wait()
}

// Deliver implements xcomponent.Remote.
func (r *relay) Deliver(_ context.Context, m xc.Message) error {
	if !r.take(m.ID) {
		return xc.ErrRelayed // already on its way from this process
	}
	select {
	case r.queues[r.worker(m)] <- m:
	default:
		r.release(m.ID) // the sweep will find it in the outbox
		r.log.Warn("relay busy: message left in the outbox for the next sweep", "id", m.ID, "kind", m.Kind, "component", m.Component)
	}
	return xc.ErrRelayed
}

func (r *relay) worker(m xc.Message) int {
	key := m.SourceInstanceID
	if key == "" {
		key = m.ID
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(len(r.queues)))
}

func (r *relay) take(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.taken[id]; ok {
		return false
	}
	r.taken[id] = struct{}{}
	return true
}

func (r *relay) release(id string) {
	r.mu.Lock()
	delete(r.taken, id)
	if len(r.taken) == 0 {
		for _, ch := range r.idle {
			close(ch)
		}
		r.idle = nil
	}
	r.mu.Unlock()
}

// drain waits until every message handed to the relay is published and marked sent, or ctx
// ends (what is left stays in the outbox): a runtime that stops gracefully hands over what its
// last transitions sent instead of leaving it to the other runtimes' sweep.
func (r *relay) drain(ctx context.Context) {
	r.mu.Lock()
	if len(r.taken) == 0 {
		r.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	r.idle = append(r.idle, ch)
	n := len(r.taken)
	r.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		r.log.Warn("relay: messages left in the outbox at shutdown, for the other runtimes of the component", "about", n)
	}
}

func (r *relay) work(q chan xc.Message) {
	defer r.wg.Done()
	for {
		select {
		case <-r.ctx.Done():
			return
		case m := <-q:
			if !r.relayOne(m) {
				r.release(m.ID) // stopping: the row stays in the outbox
				continue
			}
			select {
			case r.sent <- m.ID: // released once marked
			case <-r.ctx.Done():
				r.release(m.ID)
			}
		}
	}
}

// relayOne publishes m, retrying until the broker confirmed it; false when the relay stops
// first. A message that can never be published (or reach anyone) counts as done: its row is
// marked sent all the same.
func (r *relay) relayOne(m xc.Message) bool {
	channel, body, meta, err := r.encode(m)
	switch {
	case errors.Is(err, wiremap.ErrNothingToSend):
		r.log.Debug("relay: message can reach no instance, not published", "id", m.ID, "kind", m.Kind, "component", m.Component, "why", err)
	case err != nil:
		r.log.Error("relay: message cannot be encoded, dropped", "id", m.ID, "kind", m.Kind, "component", m.Component, "err", err)
	default:
		// The publish span is a child of the transition that committed the message; the
		// consumer's span, in another runtime, a child of it (traceparent header).
		ctx, span := telemetry.StartPublish(r.ctx, r.tp, channel, m.ID, m.Event.TraceParent)
		meta.Headers = telemetry.Inject(ctx, meta.Headers)
		for attempt := 0; ; attempt++ {
			err := r.bus.Publish(r.ctx, channel, body, meta)
			if err == nil {
				span.End()
				break
			}
			if r.ctx.Err() != nil {
				telemetry.End(span, err)
				return false // stays in the outbox
			}
			r.log.Warn("relay: publish failed, retrying", "id", m.ID, "channel", channel, "attempt", attempt+1, "err", err)
			if !sleepCtx(r.ctx, backoff(attempt)) {
				return false
			}
		}
	}
	return true
}

// markLoop deletes the outbox rows of published messages, many per commit.
func (r *relay) markLoop() {
	defer r.wg.Done()
	batch := make([]string, 0, markBatch)
	for {
		select {
		case <-r.ctx.Done():
			return
		case id := <-r.sent:
			batch = append(batch[:0], id)
		}
	more:
		for len(batch) < markBatch {
			select {
			case id := <-r.sent:
				batch = append(batch, id)
			default:
				break more
			}
		}
		r.markSent(batch)
		for _, id := range batch {
			r.release(id)
		}
	}
}

// markSent deletes the outbox rows of delivered messages, retrying while the store is
// unreachable: a row left behind would only be published again (and applied once). A row
// already gone (another runtime relayed it too) fails a batch's commit as a duplicate: the
// rows are then marked one by one.
func (r *relay) markSent(ids []string) {
	for attempt := 0; ; attempt++ {
		err := r.store.Commit(r.ctx, &store.Commit{Consumed: ids})
		if err == nil {
			return
		}
		if errors.Is(err, store.ErrDuplicate) {
			if len(ids) == 1 {
				return // already marked
			}
			for _, id := range ids {
				r.markSent([]string{id})
			}
			return
		}
		if r.ctx.Err() != nil {
			return
		}
		r.log.Warn("relay: marking messages sent failed, retrying", "messages", len(ids), "attempt", attempt+1, "err", err)
		if !sleepCtx(r.ctx, backoff(attempt)) {
			return
		}
	}
}

// sweep takes over the component's pending messages older than one sweep period (those for
// other components) or three (those for this one, still in the hands of a slow but live
// writer for longer): the former are relayed, the latter redelivered through the engine. Both
// are idempotent, so a message its writer is still delivering is not applied twice.
func (r *relay) sweep() {
	ctx, cancel := context.WithTimeout(r.ctx, r.sweepEvery)
	defer cancel()
	rows, err := r.store.PendingOutbox(ctx, r.component, sweepBatch)
	if err != nil {
		if r.ctx.Err() == nil {
			r.log.Warn("relay: outbox sweep failed", "err", err)
		}
		return
	}
	now := time.Now()
	cutoff := now.Add(-r.sweepEvery).UnixMilli()
	localCutoff := now.Add(-3 * r.sweepEvery).UnixMilli()
	for _, row := range rows {
		if row.CreatedAt > cutoff {
			break // oldest first: the rest is recent, still in the hands of its writer
		}
		m, err := xc.DecodeMessage(row)
		if err != nil {
			continue
		}
		if !r.remote(m) {
			if row.CreatedAt <= localCutoff && r.local != nil {
				r.log.Info("outbox: message left behind redelivered", "id", m.ID, "kind", m.Kind, "origin", m.Origin)
				r.local(m)
			}
			continue
		}
		if !r.take(m.ID) {
			continue
		}
		select {
		case r.queues[r.worker(m)] <- m:
		case <-r.ctx.Done():
			r.release(m.ID)
			return
		}
	}
}

// remote says whether the engine hands m to the relay: a message for a component it does not
// host. Messages for this process's components are the engine's business (redelivered by Load).
func (r *relay) remote(m xc.Message) bool {
	return m.Component != "" && !r.hosts(m.Component)
}

// encode turns a message into its wire channel, body and AMQP properties.
func (r *relay) encode(m xc.Message) (string, []byte, bus.Meta, error) {
	meta := bus.Meta{MessageID: m.ID, CorrelationID: m.Event.CorrelationID}
	if m.Event.CausationID != "" {
		meta.Headers = map[string]string{"causationId": m.Event.CausationID}
	}
	channel, v, err := wiremap.MessageToWire(m, r.runtimeName, wire.Now())
	if err != nil {
		return "", nil, meta, err
	}
	body, err := wire.Encode(v)
	if err != nil {
		return "", nil, meta, err
	}
	return channel, body, meta, nil
}

// backoff is the wait before retry attempt+1: 100 ms doubling up to 5 s.
func backoff(attempt int) time.Duration {
	return min(100*time.Millisecond<<min(attempt, 6), 5*time.Second)
}

// sleepCtx waits d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
