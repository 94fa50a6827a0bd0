package distributed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/internal/telemetry"
	"github.com/xcomponent/xcomponent/internal/wiremap"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/wire"
)

// commandIDSpace derives a UUID from a command id that is not one: bus.CommandEventID's, so
// that a dashboard finds a command's audit entry by its id.
var commandIDSpace = bus.CommandIDSpace

// Retry delays while the store is unreachable.
const (
	minRetry = 100 * time.Millisecond
	maxRetry = 5 * time.Second
)

// Defaults of the command queues.
const (
	DefaultCommandTTL       = 10 * time.Minute
	DefaultCommandMaxLength = 1_000_000
)

// commandID returns the id a command is applied under: the AMQP message_id, else the body's
// commandId, else its event's id, as a UUID. "" when the command has none (then no dedupe is
// possible: TS dashboards send no ids).
func commandID(ids ...string) string {
	for _, id := range ids {
		if id = strings.TrimSpace(id); id != "" {
			return asUUID(id)
		}
	}
	return ""
}

// asUUID returns id in canonical form when it is a UUID, else the UUID derived from it.
func asUUID(id string) string {
	if id == "" {
		return ""
	}
	if u, err := uuid.Parse(id); err == nil {
		return u.String()
	}
	return uuid.NewSHA1(commandIDSpace, []byte(id)).String()
}

// commandQueues consumes a component's commands: its partition queues (as a candidate
// consumer of each: the broker makes one runtime active per partition) and the shared
// ingress queue of the xcomponent-ai channels.
type commandQueues struct {
	r   *runtime
	n   int
	dlq string

	mu     sync.Mutex
	closed bool
	parts  []bus.Subscription
	others []bus.Subscription // marker, ingress, membership

	peers *peers
	kick  chan struct{} // the set of runtimes changed
	stop  chan struct{}
	done  chan struct{}
}

// startCommands declares the component's partitions and starts consuming them and the
// ingress queue.
func (r *runtime) startCommands(ctx context.Context) (*commandQueues, error) {
	n := r.cfg.Partitions
	q := &commandQueues{r: r, n: n, dlq: bus.DeadLetterQueue(bus.CommandQueue(r.comp.Name)), parts: make([]bus.Subscription, n),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	q.peers = newPeers(r.id, 3*r.cfg.HeartbeatInterval)
	go q.balance()
	fail := func(err error) (*commandQueues, error) {
		q.close()
		return nil, err
	}
	// The marker's length bound is the partition count: a runtime configured with another
	// count is refused by the broker (inequivalent x-max-length) instead of splitting the
	// commands between two sets of partitions.
	marker := bus.PartitionsQueue(r.comp.Name)
	s, err := r.bus.ConsumeWith(ctx, marker, bus.ConsumeOptions{MaxLength: n, DeadLetterQueue: q.dlq, StrictArguments: true},
		func(context.Context, bus.Message) error { return nil })
	if err != nil {
		return fail(fmt.Errorf("declare the %d command partitions of %s (queue %s): %w — do other runtimes of the component run with another partition count?", n, r.comp.Name, marker, err))
	}
	q.others = append(q.others, s)
	for i := range n {
		s, err := q.consumePartition(ctx, i)
		if err != nil {
			return fail(err)
		}
		q.parts[i] = s
	}
	// Commands published on the xcomponent-ai channels: one runtime (of any component) at a
	// time re-publishes them to their partitions, in order per instance.
	s, err = r.bus.ConsumeWith(ctx, bus.IngressQueue, bus.ConsumeOptions{
		Bindings: []string{wire.ChannelTriggerEvent, wire.ChannelCreateInstance, wire.ChannelTerminateInstance, wire.ChannelRetryHook},
		// Fixed bounds: the runtimes of every component declare this queue (one declared with
		// other arguments is used as it is, with a warning).
		SingleActive: true, MessageTTL: DefaultCommandTTL, MaxLength: DefaultCommandMaxLength,
		Prefetch: r.cfg.Prefetch, OrderKey: ingressKey,
	}, r.handler(queueIngress, -1, r.handleIngress))
	if err != nil {
		return fail(fmt.Errorf("consume %s: %w", bus.IngressQueue, err))
	}
	q.others = append(q.others, s)
	r.retireOldCommandQueue(ctx)
	// The other runtimes of the component, to share the partitions with them.
	for _, ch := range []string{wire.ChannelAnnounce, wire.ChannelHeartbeat, wire.ChannelShutdown} {
		s, err := r.bus.Subscribe(ctx, ch, q.onRegistry)
		if err != nil {
			return fail(fmt.Errorf("subscribe %s: %w", ch, err))
		}
		q.others = append(q.others, s)
	}
	// Ask the runtimes already running to announce themselves now rather than learning
	// them from their next heartbeat: the partitions are shared (and commands for instances
	// held elsewhere forwarded) from the start.
	body, err := wire.Encode(wire.Discover{Type: wire.TypeDiscover, Timestamp: wire.Now()})
	if err == nil {
		err = r.bus.Publish(ctx, wire.ChannelDiscover, body, bus.Meta{MessageID: uuid.NewString()})
	}
	if err != nil && ctx.Err() == nil { // best effort: their heartbeats will tell
		r.log.Warn("discover not published", "err", err)
	}
	return q, nil
}

// retireOldCommandQueue retires the component's command queue of the versions before
// partitions, bus.CommandQueue(component), bound to the xcomponent-ai command channels: left
// bound, it would collect a copy of every command (applied through the ingress queue) for
// ever. It is unbound first (a runtime of the old version still consuming it then gets no new
// command: the ingress queue has them), then, once no old runtime consumes it, its remaining
// commands are moved into the partitions through the ingress path (commands for other
// components are dropped: the old runtime ignored them too, and their own component's queue
// holds its copy) and the empty queue is deleted. No command is lost: each message is
// acknowledged only after its partition confirmed it; the inbox dedupes a command id met twice.
func (r *runtime) retireOldCommandQueue(ctx context.Context) {
	rq, ok := r.bus.(bus.QueueRetirer)
	if !ok {
		return
	}
	old := bus.CommandQueue(r.comp.Name)
	ignored := 0
	moved, retired, err := rq.RetireQueue(ctx, old, []string{wire.ChannelTriggerEvent, wire.ChannelCreateInstance},
		func(ctx context.Context, m bus.Message) error {
			var v struct {
				ComponentName string `json:"componentName"`
			}
			if json.Unmarshal(m.Body, &v) == nil && v.ComponentName != "" && v.ComponentName != r.comp.Name {
				ignored++
				return nil
			}
			return r.handleIngress(ctx, m)
		})
	switch {
	case err != nil && ctx.Err() == nil:
		r.log.Warn("the command queue of the versions before partitions could not be retired; retried at the next start", "queue", old, "moved", moved, "err", err)
	case retired:
		r.log.Info("command queue of the versions before partitions retired: its commands moved to the partitions, the queue deleted",
			"queue", old, "moved", moved-ignored, "otherComponents", ignored)
	}
}

func (q *commandQueues) consumePartition(ctx context.Context, i int) (bus.Subscription, error) {
	r := q.r
	name := bus.PartitionQueue(r.comp.Name, q.n, i)
	s, err := r.bus.ConsumeWith(ctx, name, bus.ConsumeOptions{
		Bindings:     bus.PartitionBindings(r.comp.Name, q.n, i),
		SingleActive: true, MessageTTL: r.cfg.CommandTTL, MaxLength: r.cfg.CommandMaxLength,
		DeadLetterQueue: q.dlq, Prefetch: r.cfg.Prefetch, OrderKey: partitionKey,
	}, r.handler(queuePartition, i, func(ctx context.Context, m bus.Message) error {
		if id := m.Headers[bus.HeaderInstance]; id != "" && bus.Partition(id, q.n) != i {
			return r.forwardToPartition(ctx, m, id, i)
		}
		return r.handleCommand(ctx, m)
	}))
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", name, err)
	}
	r.metrics.partitionConsumer.WithLabelValues(r.comp.Name, strconv.Itoa(i)).Set(1)
	return s, nil
}

// forwardToPartition re-publishes command m for instance id, received on partition i, to the
// instance's partition: a batch of a publisher that grouped its commands by another partition
// count than the component's (bus.CommandBatchKey) reaches the partition of its first command
// only. The commands of one instance stay in order: all of them come this way, one at a time.
func (r *runtime) forwardToPartition(ctx context.Context, m bus.Message, id string, i int) error {
	r.log.DebugContext(ctx, "command of another partition forwarded there", "messageId", m.MessageID, "instanceId", id, "partition", i)
	return bus.PublishCommand(ctx, r.bus, r.comp.Name, id, m.Headers[bus.HeaderCommand], m.Body,
		bus.Meta{MessageID: m.MessageID, CorrelationID: m.CorrelationID, Headers: m.Headers})
}

// close stops consuming; unfinished commands stay in their queues for the other runtimes.
func (q *commandQueues) close() {
	q.mu.Lock()
	if !q.closed {
		close(q.stop)
	}
	q.closed = true
	subs := append(append([]bus.Subscription(nil), q.parts...), q.others...)
	q.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range subs {
		if s != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = s.Close()
			}()
		}
	}
	wg.Wait()
	<-q.done
	for i := range q.n {
		q.r.metrics.partitionConsumer.WithLabelValues(q.r.comp.Name, strconv.Itoa(i)).Set(0)
	}
}

// balance rebalances the partitions when the set of runtimes changes, until close.
func (q *commandQueues) balance() {
	defer close(q.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-q.stop
		cancel()
	}()
	tick := time.NewTicker(q.r.cfg.HeartbeatInterval)
	defer tick.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-q.kick:
			q.rebalance(ctx)
		case <-tick.C:
			if q.peers.expire(time.Now()) {
				q.rebalance(ctx)
			}
		}
	}
}

// onRegistry tracks the live runtimes of the component and, when they change, hands over the
// partitions this runtime should not be active on.
//
// The broker makes the first registered consumer of a single-active-consumer queue the
// active one, so the first runtime started would otherwise drain every partition and a second
// replica would only wait. With k live runtimes sorted by id, runtime j prefers the partitions
// i with i mod k = j; on every change of the set it re-registers (closes and consumes again)
// its consumer of every other partition, which puts it at the end of the partition's
// consumer list: the preferred runtime, if alive and registered, becomes active there. A
// handed-over partition's unacknowledged commands are redelivered to the new active runtime
// (the store's inbox makes a command committed meanwhile a duplicate).
func (q *commandQueues) onRegistry(ctx context.Context, m bus.Message) error {
	var v struct {
		RuntimeID     string `json:"runtimeId"`
		ComponentName string `json:"componentName"`
	}
	if err := json.Unmarshal(m.Body, &v); err != nil || v.ComponentName != q.r.comp.Name || v.RuntimeID == "" {
		return nil
	}
	if q.peers.see(v.RuntimeID, m.Channel == wire.ChannelShutdown, time.Now()) {
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// rebalance re-registers this runtime's consumers of the partitions it does not prefer.
func (q *commandQueues) rebalance(ctx context.Context) {
	live, me := q.peers.live(time.Now())
	q.r.log.Info("runtimes of the component changed: sharing the command partitions", "runtimes", len(live), "index", me)
	for i := range q.n {
		if i%len(live) == me {
			continue
		}
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return
		}
		old := q.parts[i]
		q.parts[i] = nil
		q.mu.Unlock()
		if old != nil {
			_ = old.Close()
			q.r.metrics.partitionConsumer.WithLabelValues(q.r.comp.Name, strconv.Itoa(i)).Set(0)
		}
		s, err := q.consumePartition(ctx, i)
		if err != nil {
			q.r.log.Warn("partition not consumed again after hand-over", "partition", i, "err", err)
		}
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			if s != nil {
				_ = s.Close()
			}
			return
		}
		q.parts[i] = s
		q.mu.Unlock()
	}
}

// peers is the set of live runtimes of the component, by runtime id.
type peers struct {
	self string
	ttl  time.Duration
	mu   sync.Mutex
	seen map[string]time.Time
}

func newPeers(self string, ttl time.Duration) *peers {
	return &peers{self: self, ttl: ttl, seen: map[string]time.Time{}}
}

// see records a message from runtime id (gone: its shutdown) and says whether the set changed.
func (p *peers) see(id string, gone bool, now time.Time) bool {
	if id == p.self {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, known := p.seen[id]
	if gone {
		delete(p.seen, id)
		return known
	}
	p.seen[id] = now
	return !known
}

// expire forgets the runtimes silent for longer than the ttl; true when some were.
func (p *peers) expire(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := false
	for id, t := range p.seen {
		if now.Sub(t) > p.ttl {
			delete(p.seen, id)
			changed = true
		}
	}
	return changed
}

// live returns the sorted live runtime ids (this one included) and this one's index.
func (p *peers) live(now time.Time) ([]string, int) {
	p.mu.Lock()
	ids := []string{p.self}
	for id, t := range p.seen {
		if now.Sub(t) <= p.ttl {
			ids = append(ids, id)
		}
	}
	p.mu.Unlock()
	slices.Sort(ids)
	for i, id := range ids {
		if id == p.self {
			return ids, i
		}
	}
	return ids, 0
}

// partitionKey orders the commands of one instance within a partition.
func partitionKey(m bus.Message) string {
	if id := m.Headers[bus.HeaderInstance]; id != "" {
		return id
	}
	var v struct {
		InstanceID string `json:"instanceId"`
	}
	_ = json.Unmarshal(m.Body, &v)
	return v.InstanceID
}

// ingressKey orders the commands of one instance read from the ingress queue; creates (which
// have no instance yet) are independent of each other.
func ingressKey(m bus.Message) string {
	var v struct {
		InstanceID string `json:"instanceId"`
	}
	_ = json.Unmarshal(m.Body, &v)
	if m.Channel == wire.ChannelCreateInstance && v.InstanceID == "" {
		return "create:" + m.MessageID
	}
	return v.InstanceID
}

// errDeadLetter marks a command that can never be applied: the bus dead-letters it with
// this error as the reason.
type errDeadLetter struct {
	code string
	err  error
}

func (e *errDeadLetter) Error() string { return e.err.Error() }
func (e *errDeadLetter) Unwrap() error { return e.err }

func deadLetter(code, format string, args ...any) error {
	return &errDeadLetter{code: code, err: fmt.Errorf(format, args...)}
}

// handleIngress re-publishes a command received on an xcomponent-ai channel to its
// component's partition, with its instance id fixed (derived from the command id for a
// create), and acknowledges it once the partition confirmed. A command that cannot be routed
// (malformed, no component, unknown component or instance) is dead-lettered with its reason
// and answered when it carried a command id.
func (r *runtime) handleIngress(ctx context.Context, m bus.Message) error {
	comp, instanceID, id, body, err := r.route(ctx, m)
	if err != nil {
		var dl *errDeadLetter
		if errors.As(err, &dl) {
			r.log.ErrorContext(ctx, "command dead-lettered", "channel", m.Channel, "messageId", m.MessageID, "reason", dl.err, "body", truncate(m.Body))
			r.reply(ctx, m.Channel, firstOf(m.MessageID, bodyCommandID(m.Body)), m.CorrelationID, m.Headers[bus.HeaderAttempt], comp,
				outcome{status: wire.ReplyDeadLettered, code: dl.code, err: dl.err})
			if r.cfg.OnCommand != nil {
				r.cfg.OnCommand(m.Channel, id, OutcomeDeadLettered)
			}
		}
		return err
	}
	headers := make(map[string]string, len(m.Headers)+3)
	for k, v := range m.Headers {
		headers[k] = v
	}
	if m.Channel == wire.ChannelCreateInstance && m.MessageID == "" && bodyCommandID(m.Body) == "" {
		// A create without an id of its publisher's (xcomponent-ai's dashboard and runtimes
		// send none, and read no replies): its id was made up here, nobody could match a
		// reply to it, so none is sent. (A trigger without one has no id at all, and no reply.)
		headers[bus.HeaderReply] = bus.ReplyNone
	}
	// The partition's consumer continues this trace (a new one when the command came from
	// xcomponent-ai, without trace context).
	meta := bus.Meta{MessageID: id, CorrelationID: m.CorrelationID, Headers: telemetry.Inject(ctx, headers)}
	if err := r.batch.PublishCommand(ctx, comp, instanceID, m.Channel, body, meta); err != nil {
		return err // stopping or disconnected: the ingress message is redelivered
	}
	return nil
}

// route finds the component and instance of an ingress command and the body to publish.
func (r *runtime) route(ctx context.Context, m bus.Message) (comp, instanceID, id string, body []byte, err error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(m.Body, &raw); err != nil {
		return "", "", m.MessageID, nil, deadLetter("invalid", "malformed %s command: %v", m.Channel, err)
	}
	switch m.Channel {
	case wire.ChannelCreateInstance:
		cmd, err := wire.DecodeExact[wire.CreateInstance](m.Body)
		if err != nil {
			return "", "", m.MessageID, nil, deadLetter("invalid", "malformed create_instance command: %v", err)
		}
		if cmd.ComponentName == "" {
			return "", "", m.MessageID, nil, deadLetter("invalid", "create_instance command without componentName")
		}
		comp = cmd.ComponentName
		// Without any id, a redelivery of this ingress message (this runtime dying between
		// the partition's confirm and its ack) could create a second instance: the window
		// is one publish confirm.
		id = firstOf(m.MessageID, cmd.CommandID, uuid.NewString())
		instanceID = firstOf(cmd.InstanceID, bus.CreateInstanceID(id))
		raw["instanceId"], _ = json.Marshal(instanceID)
		if cmd.CommandID == "" {
			raw["commandId"], _ = json.Marshal(id)
		}
		r.routed.add(instanceID, comp)
	case wire.ChannelTriggerEvent:
		cmd, err := wire.DecodeExact[wire.TriggerEvent](m.Body)
		if err == nil && (cmd.InstanceID == "" || cmd.Event.Type == "") {
			err = errors.New("instanceId and event.type are required")
		}
		if err != nil {
			return cmd.ComponentName, "", m.MessageID, nil, deadLetter("invalid", "malformed trigger_event command: %v", err)
		}
		id, instanceID, comp = firstOf(m.MessageID, cmd.CommandID, cmd.Event.ID), cmd.InstanceID, cmd.ComponentName
		if comp == "" {
			comp = r.routed.get(cmd.InstanceID) // created through this ingress, maybe not committed yet
		}
		if comp == "" {
			if comp, err = r.instanceComponent(ctx, cmd.InstanceID, id, "trigger_event "+cmd.Event.Type); err != nil {
				return "", instanceID, id, nil, err
			}
		}
	case wire.ChannelTerminateInstance, wire.ChannelRetryHook:
		cmd, err := wire.DecodeExact[wire.OperatorCommand](m.Body)
		if err == nil && cmd.InstanceID == "" {
			err = errors.New("instanceId is required")
		}
		if err != nil {
			return cmd.ComponentName, "", m.MessageID, nil, deadLetter("invalid", "malformed %s command: %v", m.Channel, err)
		}
		id, instanceID, comp = firstOf(m.MessageID, cmd.CommandID), cmd.InstanceID, cmd.ComponentName
		if comp == "" {
			comp = r.routed.get(cmd.InstanceID)
		}
		if comp == "" {
			if comp, err = r.instanceComponent(ctx, cmd.InstanceID, id, m.Channel); err != nil {
				return "", instanceID, id, nil, err
			}
		}
	default:
		return "", "", m.MessageID, nil, deadLetter("invalid", "unexpected channel %s", m.Channel)
	}
	if comp != r.comp.Name {
		known, err := r.componentKnown(ctx, comp)
		if err != nil {
			return comp, instanceID, id, nil, err
		}
		if !known {
			return comp, instanceID, id, nil, deadLetter("not_found", "unknown component %s: no runtime of it has declared its command partitions", comp)
		}
	}
	body, err = json.Marshal(raw)
	return comp, instanceID, id, body, err
}

// instanceComponent reads the component of an instance from the shared store, retrying while
// the store is unreachable; an unknown instance is a dead letter.
func (r *runtime) instanceComponent(ctx context.Context, instanceID, id, what string) (string, error) {
	for attempt := 0; ; attempt++ {
		rec, err := r.store.Instance(ctx, instanceID)
		if err == nil {
			return rec.Component, nil
		}
		if errors.Is(err, store.ErrNotFound) {
			return "", deadLetter("not_found", "%s for instance %s: no such instance", what, instanceID)
		}
		if werr := r.retryWait(ctx, attempt, "route "+what, id, err); werr != nil {
			return "", werr
		}
	}
}

// routedCreates remembers the component of the instances whose create the ingress routed
// lately, for the triggers without componentName that follow them before the create is
// committed (ingress commands of one instance are handled in order). Bounded: the oldest
// entries are forgotten first.
type routedCreates struct {
	mu   sync.Mutex
	comp map[string]string
	ring []string
	next int
}

const routedCreatesMax = 1 << 16

func (c *routedCreates) add(instanceID, comp string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.comp == nil {
		c.comp = map[string]string{}
		c.ring = make([]string, routedCreatesMax)
	}
	if _, ok := c.comp[instanceID]; ok {
		return
	}
	if old := c.ring[c.next]; old != "" {
		delete(c.comp, old)
	}
	c.ring[c.next] = instanceID
	c.next = (c.next + 1) % routedCreatesMax
	c.comp[instanceID] = comp
}

func (c *routedCreates) get(instanceID string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.comp[instanceID]
}

// componentKnown says whether a runtime of comp ever declared its partitions (cached while
// true: partitions are durable).
func (r *runtime) componentKnown(ctx context.Context, comp string) (bool, error) {
	r.knownMu.Lock()
	ok := r.known[comp]
	r.knownMu.Unlock()
	if ok {
		return true, nil
	}
	ok, err := r.bus.QueueExists(ctx, bus.PartitionsQueue(comp))
	if err != nil || !ok {
		return false, err
	}
	r.knownMu.Lock()
	r.known[comp] = true
	r.knownMu.Unlock()
	return true, nil
}

// outcome is what became of a command.
type outcome struct {
	status string // wire.Reply*
	code   string
	err    error
	prev   string
	inst   *xc.Instance
}

// handleCommand applies one command of a partition queue and says whether to acknowledge it.
// Commands of one instance come one at a time, in order; commands of different instances
// run concurrently, so that the store's group commit batches their commits.
//
// Acknowledgement (the bus acknowledges on nil and dead-letters on an error, with the error as
// reason; it leaves the message unacknowledged for another runtime when the subscription is
// closing):
//   - applied, already applied (duplicate id), refused by the business rules (not accepted,
//     unknown instance or machine, invalid context, singleton): nil, acknowledged, and
//     answered on fsm:responses:command when the command carried an id;
//   - malformed: dead-lettered (and answered);
//   - store unreachable (xcomponent.ErrStore) or instance busy: retried here with backoff,
//     holding the message, until it is applied or the runtime stops; on stop the message is
//     left unacknowledged and the broker gives it to another runtime. Returning the error
//     would dead-letter a good command, and an outage would empty the queue into the
//     dead-letter queue.
//
// Idempotency: the command id becomes the engine event's id (the creation event's for
// create_instance) and goes through the store's inbox, so a redelivered command is reported
// as a duplicate; a create's instance id is fixed before routing, so it cannot create twice.
func (r *runtime) handleCommand(ctx context.Context, m bus.Message) error {
	kind := m.Headers[bus.HeaderCommand]
	var (
		id, reqID string
		oc        outcome
		err       error
	)
	switch kind {
	case wire.ChannelCreateInstance:
		id, reqID, oc, err = r.handleCreate(ctx, m)
	case wire.ChannelTriggerEvent:
		id, reqID, oc, err = r.handleTrigger(ctx, m)
	case wire.ChannelTerminateInstance, wire.ChannelRetryHook:
		id, reqID, oc, err = r.handleOperator(ctx, m, kind)
	default:
		err = deadLetter("invalid", "command without a known %s header (%q)", bus.HeaderCommand, kind)
		id, reqID = m.MessageID, m.MessageID
	}
	var dl *errDeadLetter
	if errors.As(err, &dl) {
		r.log.ErrorContext(ctx, "command dead-lettered", "command", kind, "messageId", m.MessageID, "reason", dl.err, "body", truncate(m.Body))
		oc = outcome{status: wire.ReplyDeadLettered, code: dl.code, err: dl.err}
	}
	if oc.status != "" && m.Headers[bus.HeaderReply] != bus.ReplyNone {
		r.reply(ctx, kind, reqID, m.CorrelationID, m.Headers[bus.HeaderAttempt], r.comp.Name, oc)
	}
	if r.cfg.OnCommand != nil {
		r.cfg.OnCommand(kind, id, outcomeName(oc, err))
	}
	return err
}

func outcomeName(oc outcome, err error) string {
	switch oc.status {
	case wire.ReplyApplied:
		return OutcomeApplied
	case wire.ReplyDuplicate:
		return OutcomeDuplicate
	case wire.ReplyRefused:
		return OutcomeRefused
	case wire.ReplyDeadLettered:
		return OutcomeDeadLettered
	}
	if err != nil {
		return OutcomeLeft
	}
	return OutcomeIgnored
}

func (r *runtime) handleCreate(ctx context.Context, m bus.Message) (string, string, outcome, error) {
	cmd, err := wire.DecodeExact[wire.CreateInstance](m.Body)
	if err != nil {
		return m.MessageID, m.MessageID, outcome{}, deadLetter("invalid", "malformed create_instance command: %v", err)
	}
	reqID := firstOf(m.MessageID, cmd.CommandID)
	if cmd.ComponentName != "" && cmd.ComponentName != r.comp.Name {
		return reqID, reqID, outcome{}, deadLetter("invalid", "create_instance for component %s in a partition of %s", cmd.ComponentName, r.comp.Name)
	}
	instanceID := firstOf(cmd.InstanceID, m.Headers[bus.HeaderInstance])
	if reqID == "" && instanceID == "" {
		return "", "", outcome{}, deadLetter("invalid", "create_instance command with neither a command id nor an instance id")
	}
	if instanceID == "" {
		instanceID = bus.CreateInstanceID(reqID)
	}
	id := commandID(reqID)
	if id == "" {
		id = uuid.NewSHA1(commandIDSpace, []byte("create:"+instanceID)).String()
	}
	ev := xc.Event{ID: id, CorrelationID: asUUID(firstOf(cmd.CorrelationID, m.CorrelationID)),
		CausationID: asUUID(firstOf(cmd.CausationID, m.Headers["causationId"])),
		Actor:       firstOf(cmd.RuntimeName, cmd.SourceComponent, string(xc.SourceBroker)), Source: xc.SourceBroker, SourceComponent: cmd.SourceComponent}
	if cmd.Event != nil {
		ev.Type = cmd.Event.Type
		ev.Payload = cmd.Event.Payload
	}
	req := xc.CreateRequest{Component: r.comp.Name, Machine: cmd.MachineName, Data: cmd.Context, Event: ev,
		ParentID: asUUID(cmd.ParentID), InstanceID: instanceID}
	oc, err := r.apply(ctx, m, "create_instance", id, func(ctx context.Context) (outcome, error) {
		inst, err := r.eng.Create(ctx, req)
		if err == nil {
			return outcome{status: wire.ReplyApplied, inst: &inst}, nil
		}
		if errors.Is(err, xc.ErrDuplicate) || (errors.Is(err, xc.ErrNotAccepted) && r.exists(ctx, instanceID)) {
			return r.duplicate(ctx, instanceID), nil
		}
		return outcome{}, err
	})
	return id, reqID, oc, err
}

func (r *runtime) handleTrigger(ctx context.Context, m bus.Message) (string, string, outcome, error) {
	cmd, err := wire.DecodeExact[wire.TriggerEvent](m.Body)
	if err == nil && (cmd.InstanceID == "" || cmd.Event.Type == "") {
		err = errors.New("instanceId and event.type are required")
	}
	if err != nil {
		return m.MessageID, m.MessageID, outcome{}, deadLetter("invalid", "malformed trigger_event command: %v", err)
	}
	reqID := firstOf(m.MessageID, cmd.CommandID, cmd.Event.ID)
	id := commandID(reqID)
	ev := xc.Event{Type: cmd.Event.Type, Payload: cmd.Event.Payload, ID: id,
		CorrelationID: asUUID(firstOf(cmd.CorrelationID, cmd.Event.CorrelationID, m.CorrelationID)),
		CausationID:   asUUID(firstOf(cmd.CausationID, cmd.Event.CausationID, m.Headers["causationId"])),
		Actor:         firstOf(cmd.Event.Actor, cmd.RuntimeName, "broker"), Source: xc.Source(firstOf(cmd.Event.Source, string(xc.SourceBroker)))}
	oc, err := r.apply(ctx, m, "trigger_event", id, func(ctx context.Context) (outcome, error) {
		res, err := r.eng.Send(ctx, cmd.InstanceID, ev)
		if err == nil {
			return outcome{status: wire.ReplyApplied, inst: &res.Instance, prev: res.PreviousState}, nil
		}
		if errors.Is(err, xc.ErrDuplicate) {
			return r.duplicate(ctx, cmd.InstanceID), nil
		}
		if id != "" && errors.Is(err, xc.ErrNotAccepted) && r.applied(ctx, cmd.InstanceID, id) {
			// Refused now because it was applied before and the instance moved on.
			return r.duplicate(ctx, cmd.InstanceID), nil
		}
		if r.forwardsToOwner(m, err) { // embedded stores: another runtime may own it (owners.go)
			return outcome{}, r.forwardToOwner(ctx, m)
		}
		return outcome{}, err
	})
	return id, reqID, oc, err
}

// handleOperator applies an operator action (terminate_instance, retry_hook) with the
// engine, exactly once: the command id is the OperatorRequest's id, which goes through the
// store's inbox and becomes the id of the audit entry.
func (r *runtime) handleOperator(ctx context.Context, m bus.Message, kind string) (string, string, outcome, error) {
	cmd, err := wire.DecodeExact[wire.OperatorCommand](m.Body)
	if err == nil && cmd.InstanceID == "" {
		err = errors.New("instanceId is required")
	}
	if err != nil {
		return m.MessageID, m.MessageID, outcome{}, deadLetter("invalid", "malformed %s command: %v", kind, err)
	}
	reqID := firstOf(m.MessageID, cmd.CommandID)
	if cmd.ComponentName != "" && cmd.ComponentName != r.comp.Name {
		return reqID, reqID, outcome{}, deadLetter("invalid", "%s for component %s in a partition of %s", kind, cmd.ComponentName, r.comp.Name)
	}
	id := commandID(reqID)
	req := xc.OperatorRequest{Actor: firstOf(cmd.Actor, cmd.RuntimeName, "broker"), Reason: cmd.Reason, ID: id,
		CorrelationID: asUUID(firstOf(cmd.CorrelationID, m.CorrelationID))}
	act, what := r.eng.Terminate, "terminate_instance"
	if kind == wire.ChannelRetryHook {
		act, what = r.eng.RetryHook, "retry_hook"
	}
	oc, err := r.apply(ctx, m, what, id, func(ctx context.Context) (outcome, error) {
		res, err := act(ctx, cmd.InstanceID, req)
		if err == nil {
			return outcome{status: wire.ReplyApplied, inst: &res.Instance, prev: res.PreviousState}, nil
		}
		if errors.Is(err, xc.ErrDuplicate) {
			return r.duplicate(ctx, cmd.InstanceID), nil
		}
		var hre *xc.HookRetryError
		if errors.As(err, &hre) {
			// Recorded, but the hook failed again: a refusal carrying the instance.
			return outcome{status: wire.ReplyRefused, code: "hook_failed", err: err, inst: &hre.Result.Instance, prev: hre.Result.PreviousState}, nil
		}
		if id != "" && (errors.Is(err, xc.ErrNotAccepted) || errors.Is(err, xc.ErrNotFound)) && r.applied(ctx, cmd.InstanceID, id) {
			// Refused now because it was applied before (a redelivery after the commit).
			return r.duplicate(ctx, cmd.InstanceID), nil
		}
		if r.forwardsToOwner(m, err) {
			return outcome{}, r.forwardToOwner(ctx, m)
		}
		return outcome{}, err
	})
	return id, reqID, oc, err
}

// exists says whether instance id is in the store.
func (r *runtime) exists(ctx context.Context, id string) bool {
	_, err := r.store.Instance(ctx, id)
	return err == nil
}

// applied says whether the store holds event eventID of instance id.
func (r *runtime) applied(ctx context.Context, instanceID, eventID string) bool {
	evs, err := r.store.History(ctx, instanceID)
	if err != nil {
		return false
	}
	for _, e := range evs {
		if e.ID == eventID {
			return true
		}
	}
	return false
}

// duplicate is the outcome of a command applied before, with the instance as it is now.
func (r *runtime) duplicate(ctx context.Context, instanceID string) outcome {
	oc := outcome{status: wire.ReplyDuplicate}
	if inst, err := r.eng.Get(ctx, instanceID); err == nil {
		oc.inst = &inst
	}
	return oc
}

// apply runs do until it succeeds or is refused, retrying while the store is unavailable or
// the instance busy, until ctx ends (see handleCommand).
func (r *runtime) apply(ctx context.Context, m bus.Message, what, id string, do func(context.Context) (outcome, error)) (outcome, error) {
	for attempt := 0; ; attempt++ {
		oc, err := do(ctx)
		if err == nil {
			if oc.status == wire.ReplyDuplicate {
				r.log.InfoContext(ctx, "command already applied: acknowledged without effect", "command", what, "commandId", id, "redelivered", m.Redelivered)
			}
			return oc, nil
		}
		if ctx.Err() != nil {
			return outcome{}, ctx.Err()
		}
		if errors.Is(err, xc.ErrStore) || errors.Is(err, xc.ErrBusy) || errors.Is(err, xc.ErrClosed) {
			if werr := r.retryWait(ctx, attempt, what, id, err); werr != nil {
				return outcome{}, werr
			}
			continue
		}
		r.log.WarnContext(ctx, "command refused: acknowledged without effect", "command", what, "commandId", id, "body", truncate(m.Body), "err", err)
		return outcome{status: wire.ReplyRefused, code: refusalCode(err), err: err}, nil
	}
}

// refusalCode classifies a refusal for the reply (and the dashboard's HTTP status).
func refusalCode(err error) string {
	var ce *xc.ContextError
	switch {
	case errors.Is(err, xc.ErrHookFailed):
		return "hook_failed"
	case errors.Is(err, xc.ErrNotFound):
		return "not_found"
	case errors.As(err, &ce), errors.Is(err, xc.ErrInvalidContext):
		return "invalid"
	case errors.Is(err, xc.ErrSingleton), strings.Contains(err.Error(), " is completed"), strings.Contains(err.Error(), " is error"),
		strings.Contains(err.Error(), "already exists"):
		return "conflict"
	case errors.Is(err, xc.ErrNotAccepted):
		return "not_accepted"
	}
	return "invalid"
}

// replyTimeout bounds the publication of a command reply.
const replyTimeout = 5 * time.Second

// reply publishes a CommandReply for a command that carried an id (reqID), with the
// publisher's attempt id (bus.HeaderAttempt) when it gave one.
func (r *runtime) reply(ctx context.Context, kind, reqID, correlationID, attempt, comp string, oc outcome) {
	if reqID == "" {
		return
	}
	rep := wire.CommandReply{Type: wire.TypeCommandReply, CommandID: reqID, CorrelationID: correlationID,
		Command: kind, RuntimeID: r.id, RuntimeName: r.cfg.RuntimeName, ComponentName: firstOf(comp, r.comp.Name),
		Status: oc.status, Code: oc.code, PreviousState: oc.prev, Timestamp: wire.Now(), Attempt: attempt}
	if oc.err != nil {
		rep.Error = oc.err.Error()
	}
	if oc.inst != nil {
		snap := wiremap.Snapshot(*oc.inst)
		rep.Instance = &snap
	}
	body, err := wire.Encode(rep)
	if err != nil {
		r.log.Warn("command reply not encodable", "commandId", reqID, "err", err)
		return
	}
	meta := bus.Meta{MessageID: uuid.NewString(), CorrelationID: correlationID, Headers: map[string]string{"causationId": reqID}}
	// Not bounded by the handler's ctx: a partition handed over right after the commit still
	// acknowledges the command, so its answer must go out too.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), replyTimeout)
	defer cancel()
	if err := r.batch.Publish(ctx, wire.ChannelCommandReply, wire.ChannelCommandReply, body, meta); err != nil {
		r.log.Warn("command reply not published", "commandId", reqID, "err", err)
	}
}

// bodyCommandID is the commandId of a body, "" when none or malformed.
func bodyCommandID(body []byte) string {
	var v struct {
		CommandID string `json:"commandId"`
	}
	_ = json.Unmarshal(body, &v)
	return v.CommandID
}

func truncate(b []byte) string {
	const max = 512
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// retryWait logs a transient failure and waits before the next attempt; it returns ctx's
// error when the runtime stops meanwhile (the message is then left to another consumer).
func (r *runtime) retryWait(ctx context.Context, attempt int, what, id string, err error) error {
	wait := minRetry << min(attempt, 6)
	wait = min(wait, maxRetry)
	r.log.WarnContext(ctx, "command not applied yet, retrying (store unavailable?)", "command", what, "commandId", id, "attempt", attempt+1, "retryIn", wait, "err", err)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
