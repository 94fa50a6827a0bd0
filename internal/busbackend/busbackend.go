// Package busbackend is the httpapi.Backend of `xcomponent dashboard`: the REST API and the
// web UI of `serve`, over RabbitMQ instead of an in-process engine.
//
// It knows only what travels on the bus (wire.md) and, when configured, the shared
// PostgreSQL database:
//
//   - the registry: runtimes from fsm:registry:announce / heartbeat / shutdown, their status
//     (up, lost after LostAfter of silence, stopped) and the components they announce;
//   - the instances: a live view kept from fsm:events:* and fsm:responses:query (the union of
//     every runtime's instances, per-instance version ordering so that two replicas never make
//     it flip-flop), and the database for search, history and completed instances when there
//     is one (the database is then the source of truth; the live view fills in instances of
//     runtimes that do not share it, e.g. xcomponent-ai runtimes);
//   - commands: create and trigger are published on the protocol's command channels with a
//     commandId (AMQP message_id) and the caller waits, bounded, for the runtime's
//     wire.CommandReply, or — for runtimes that send none, like xcomponent-ai's — for the
//     instance_created / state_change the command caused. Its subscriptions are queues of its
//     own (named after the process, see Config.QueueExpires) that outlive a broker
//     connection loss, so that an answer published while it reconnects still reaches it; an
//     answer still missing at the deadline is looked up in the database (fallback.go).
package busbackend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/clock"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/internal/httpapi"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/wire"
)

// Defaults of Config.
const (
	DefaultLostAfter      = 60 * time.Second
	DefaultCommandTimeout = 10 * time.Second
	// maxTrail bounds the live audit trail kept per instance when there is no database.
	maxTrail = 200
	// maxRuntimeOf bounds the event id → runtime map of the audit trail.
	maxRuntimeOf = 100000
	// DefaultQueueExpires: the broker deletes the subscription queues of a dashboard that has
	// been away that long (a process that died without closing them).
	DefaultQueueExpires = 5 * time.Minute
	// maxQueued bounds each subscription queue while the dashboard is away (the oldest copies
	// are dropped beyond it).
	maxQueued = 50000
)

// Config of a Backend.
type Config struct {
	// Bus is the broker connection (required). The Backend does not close it.
	Bus bus.Bus
	// BrokerURL is shown, password masked, in /health.
	BrokerURL string
	// Store, optional, is the database the runtimes share (PostgreSQL): search, history,
	// audit trail and completed instances are read from it. The Backend does not close it.
	Store store.Store
	// DatabaseType names the store in /health ("postgres"; "none" without store).
	DatabaseType string
	// Clock tells the time (default the system clock); tests move a fake one.
	Clock clock.Clock
	// LostAfter is the silence after which a runtime is shown as lost (default 60 s).
	LostAfter time.Duration
	// CommandTimeout bounds the wait for a runtime's answer to create or trigger (default 10 s).
	CommandTimeout time.Duration
	// QueueExpires is how long the broker keeps this dashboard's subscription queues once it
	// is gone (default DefaultQueueExpires): while it reconnects, what the runtimes publish —
	// command replies above all — waits there for it.
	QueueExpires time.Duration
	Logger       *slog.Logger
}

// Backend is the httpapi.Backend over the bus. Create it with New, stop it with Close.
type Backend struct {
	cfg  Config
	id   string // this dashboard process's, in its queue names
	log  *slog.Logger
	clk  clock.Clock
	subs []bus.Subscription
	// batch coalesces the commands bound for one partition published while one is in flight
	// (bus.Batcher): one broker message for many HTTP requests under load.
	batch *bus.Batcher
	// partitions: the partition count of each component, from its runtimes' announces (by
	// name, under mu): the batches group the commands of one partition.
	partitions map[string]int

	// ctx ends at Close; the bus handlers and the sweeper stop with it.
	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex
	runtimes   map[string]*runtimeEntry // by runtime id
	components map[string]*compEntry    // by name
	instances  map[string]*instEntry    // by id
	trails     map[string][]store.Event // live audit trail per instance (no database)
	runtimeOf  map[string]string        // event id → name of the runtime that applied it
	runtimeIDs []string                 // insertion order of runtimeOf, for eviction
	waiters    map[string]*waiter       // by command id
	seq        uint64                   // last waiter's seq
	sweep      clock.Timer
	closed     bool

	feed feed

	// rediscover asks the discoverer goroutine to send fsm:registry:discover (after a broker
	// reconnection); wg waits for it at Close.
	rediscover chan struct{}
	wg         sync.WaitGroup
	// live is closed once every subscription is live.
	live chan struct{}
	// storeAnswers counts the commands answered from the database (fallback.go).
	storeAnswers atomic.Int64
}

var _ httpapi.Backend = (*Backend)(nil)

// New subscribes to the protocol's registry, event and reply channels, asks the runtimes to
// announce themselves (fsm:registry:discover) and returns the Backend. It waits until the
// subscriptions are live or ctx ends; in the latter case (broker unreachable) it returns the
// Backend anyway, which subscribes in the background once the broker is back (Ready fails until
// then).
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.Bus == nil {
		return nil, errors.New("busbackend: no bus")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.LostAfter <= 0 {
		cfg.LostAfter = DefaultLostAfter
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	if cfg.QueueExpires <= 0 {
		cfg.QueueExpires = DefaultQueueExpires
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DatabaseType == "" {
		cfg.DatabaseType = "none"
		if cfg.Store != nil {
			cfg.DatabaseType = "postgres"
		}
	}
	b := &Backend{
		cfg: cfg, id: uuid.NewString(), log: cfg.Logger, clk: cfg.Clock, batch: bus.NewBatcher(cfg.Bus, 0, 0), partitions: map[string]int{},
		runtimes: map[string]*runtimeEntry{}, components: map[string]*compEntry{},
		instances: map[string]*instEntry{}, trails: map[string][]store.Event{},
		runtimeOf: map[string]string{}, waiters: map[string]*waiter{}, rediscover: make(chan struct{}, 1), live: make(chan struct{}),
	}
	b.batch.Partitions = func(comp string) int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.partitions[comp]
	}
	b.feed.init()
	b.ctx, b.cancel = context.WithCancel(context.Background())
	handlers := map[string]bus.Handler{
		wire.ChannelAnnounce:          b.onAnnounce,
		wire.ChannelHeartbeat:         b.onHeartbeat,
		wire.ChannelShutdown:          b.onShutdown,
		wire.ChannelQueryResponse:     b.onQueryResponse,
		wire.ChannelInstanceCreated:   b.onEvent,
		wire.ChannelStateChange:       b.onEvent,
		wire.ChannelInstanceCompleted: b.onEvent,
		wire.ChannelTimeoutTriggered:  b.onEvent,
		wire.ChannelCommandReply:      b.onReply,
	}
	b.scheduleSweep()
	b.wg.Add(2)
	go b.discoverer()
	go b.subscribeAll(handlers)
	select {
	case <-b.live:
	case <-ctx.Done():
		// The broker is unreachable: serve anyway (health says why it is degraded); the
		// subscriptions are made as soon as it is back.
		b.log.Warn("broker unreachable: the dashboard starts without it and subscribes once it is back", "err", ctx.Err())
	}
	return b, nil
}

// Discover publishes fsm:registry:discover: every runtime re-announces itself.
func (b *Backend) Discover(ctx context.Context) error {
	body, err := wire.Encode(wire.Discover{Type: wire.TypeDiscover, Timestamp: wire.Millis(b.clk.Now())})
	if err != nil {
		return err
	}
	return b.cfg.Bus.Publish(ctx, wire.ChannelDiscover, body, bus.Meta{MessageID: uuid.NewString()})
}

// subscribeAll subscribes to every channel (waiting for the broker as long as it takes, until
// Close), then marks the Backend live and sends discover.
func (b *Backend) subscribeAll(handlers map[string]bus.Handler) {
	defer b.wg.Done()
	channels := make([]string, 0, len(handlers))
	for ch := range handlers {
		channels = append(channels, ch)
	}
	sort.Strings(channels)
	for _, ch := range channels {
		opts := bus.SubscribeOptions{Queue: b.QueueName(ch), Expires: b.cfg.QueueExpires, MaxLength: maxQueued}
		s, err := b.cfg.Bus.SubscribeWith(b.ctx, ch, opts, handlers[ch])
		if err != nil {
			if b.ctx.Err() == nil {
				b.log.Error("subscription failed: the dashboard will not see this channel", "channel", ch, "err", err)
			}
			return
		}
		b.mu.Lock()
		b.subs = append(b.subs, s)
		b.mu.Unlock()
	}
	close(b.live)
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.CommandTimeout)
	defer cancel()
	if err := b.Discover(ctx); err != nil && b.ctx.Err() == nil {
		// Not fatal: heartbeats of unknown runtimes trigger query_instances, which makes them
		// announce themselves.
		b.log.Warn("discover not sent: runtimes will be learnt from their heartbeats", "err", err)
	}
}

// QueueName is the name of this dashboard's subscription queue for channel:
// QueuePrefix + "<process id>.<channel>".
func (b *Backend) QueueName(channel string) string {
	return QueuePrefix + b.id + "." + channel
}

// QueuePrefix begins the name of every dashboard subscription queue.
const QueuePrefix = "xcomponent.dashboard."

// BrokerReconnected tells the Backend that the broker connection was re-established (the bus
// re-subscribed): it asks the runtimes to announce themselves again, so that the registry
// catches up on what happened during the outage. It never blocks (bus state callbacks must be
// quick).
func (b *Backend) BrokerReconnected() {
	select {
	case b.rediscover <- struct{}{}:
	default:
	}
}

func (b *Backend) discoverer() {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.rediscover:
			ctx, cancel := context.WithTimeout(b.ctx, b.cfg.CommandTimeout)
			if err := b.Discover(ctx); err != nil && b.ctx.Err() == nil {
				b.log.Warn("discover after reconnection not sent", "err", err)
			}
			cancel()
		}
	}
}

// Close ends the subscriptions, the pending command waits and the live feed. It does not
// close the bus or the store. Idempotent.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	if b.sweep != nil {
		b.sweep.Stop()
	}
	b.mu.Unlock()
	if sent, cmds := b.batch.Stats(); cmds > 0 {
		b.log.Info("commands published to the partitions", "commands", cmds, "messages", sent)
	}
	b.cancel()
	b.wg.Wait()
	b.mu.Lock()
	subs := b.subs
	b.mu.Unlock()
	var errs []error
	for _, s := range subs {
		errs = append(errs, s.Close())
	}
	b.mu.Lock()
	for id, w := range b.waiters {
		w.finish(outcome{err: fmt.Errorf("dashboard stopping: %w", httpapi.ErrUnavailable)})
		delete(b.waiters, id)
	}
	b.mu.Unlock()
	b.feed.close()
	return errors.Join(errs...)
}

// Health implements httpapi.Backend.
func (b *Backend) Health(ctx context.Context) httpapi.Health {
	h := httpapi.Health{Status: "ok", Mode: "distributed", Broker: maskURL(b.cfg.BrokerURL),
		BrokerConnected: b.cfg.Bus.Connected(), DatabaseType: b.cfg.DatabaseType}
	if !h.BrokerConnected {
		h.Status = "degraded"
		h.Problems = append(h.Problems, "broker: not connected")
	}
	if b.cfg.Store != nil {
		if err := b.cfg.Store.Ping(ctx); err != nil {
			h.Status = "degraded"
			h.Problems = append(h.Problems, "database: "+err.Error())
		} else {
			h.Database = true
		}
	}
	rts, _ := b.Runtimes(ctx)
	for _, r := range rts {
		if r.Status == StatusUp {
			h.ConnectedRuntimes++
		}
	}
	h.Components = []string{}
	for _, c := range b.Components() {
		h.Components = append(h.Components, c.Name)
	}
	return h
}

// Ready implements httpapi.Backend: the broker is connected and the database (if any)
// answers.
func (b *Backend) Ready(ctx context.Context) error {
	if !b.cfg.Bus.Connected() {
		return fmt.Errorf("broker: not connected: %w", httpapi.ErrUnavailable)
	}
	select {
	case <-b.live:
	default:
		return fmt.Errorf("broker: subscriptions not live yet: %w", httpapi.ErrUnavailable)
	}
	if b.cfg.Store != nil {
		if err := b.cfg.Store.Ping(ctx); err != nil {
			return fmt.Errorf("database: %w: %v", xc.ErrStore, err)
		}
	}
	return nil
}

// Components implements httpapi.Backend: the components announced so far, by name.
func (b *Backend) Components() []*component.Component {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*component.Component, 0, len(b.components))
	for _, c := range b.components {
		out = append(out, c.def)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Subscribe implements httpapi.Backend: the runtime events received from the bus, turned into
// the engine's RuntimeEvent shape, plus runtime_connected / runtime_disconnected.
func (b *Backend) Subscribe(buffer int) (<-chan xc.RuntimeEvent, func()) {
	return b.feed.subscribe(buffer)
}

// Stats implements httpapi.Backend: live instances per state from the live view.
func (b *Backend) Stats(context.Context) (httpapi.Stats, error) {
	b.mu.Lock()
	counts := map[xc.StateCount]int{}
	for _, e := range b.instances {
		if e.in.Status != store.StatusActive {
			continue
		}
		counts[xc.StateCount{Component: e.in.ComponentName, Machine: e.in.MachineName, State: e.in.CurrentState}]++
	}
	b.mu.Unlock()
	st := httpapi.Stats{BrokerConnected: b.cfg.Bus.Connected()}
	for k, n := range counts {
		k.Count = n
		st.Instances = append(st.Instances, k)
	}
	sort.Slice(st.Instances, func(i, j int) bool {
		a, c := st.Instances[i], st.Instances[j]
		if a.Component != c.Component {
			return a.Component < c.Component
		}
		if a.Machine != c.Machine {
			return a.Machine < c.Machine
		}
		return a.State < c.State
	})
	return st, nil
}

// feed fans runtime events out to subscribers without ever blocking the bus handlers: a
// subscriber whose buffer is full misses the event.
type feed struct {
	mu     sync.Mutex
	next   int
	chans  map[int]chan xc.RuntimeEvent
	closed bool
}

func (f *feed) init() { f.chans = map[int]chan xc.RuntimeEvent{} }

func (f *feed) subscribe(buffer int) (<-chan xc.RuntimeEvent, func()) {
	if buffer <= 0 {
		buffer = 256
	}
	ch := make(chan xc.RuntimeEvent, buffer)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		close(ch)
		return ch, func() {}
	}
	id := f.next
	f.next++
	f.chans[id] = ch
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if c, ok := f.chans[id]; ok {
				delete(f.chans, id)
				close(c)
			}
		})
	}
}

func (f *feed) emit(ev xc.RuntimeEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.chans {
		select {
		case ch <- ev:
		default:
		}
	}
}

func (f *feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for id, ch := range f.chans {
		delete(f.chans, id)
		close(ch)
	}
}
