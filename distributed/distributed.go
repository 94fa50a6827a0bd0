// Package distributed runs one runtime of the distributed mode (`xcomponent runtime`): one
// component, its instances in a shared store (PostgreSQL in real deployments), and RabbitMQ
// for everything else, speaking the protocol of docs/wire.md.
//
// A runtime
//
//   - publishes the engine's runtime events on the fsm:events:* fan-out channels, in the
//     envelopes of package wire (the database stays the source of truth: an event the
//     publisher could not keep up with is counted and logged, never blocks the engine);
//   - keeps one runtimeId (a UUID) for the life of the process, announces itself at start,
//     after every broker reconnection and on every discover and query_instances (then answers
//     query_instances with the component's live instances, read from the store), sends
//     heartbeats, and a shutdown message on graceful stop;
//   - consumes the component's commands (create_instance, trigger_event) from its partition
//     queues (bus.PartitionQueue), one runtime active per partition, sharing the partitions
//     with the other runtimes of the component; commands of one instance are applied in
//     order, those of different instances concurrently; a command is acknowledged only once
//     the engine committed it, and answered on fsm:responses:command. Commands published on
//     the xcomponent-ai channels reach the partitions through the ingress queue. See
//     handleCommand for idempotency and store outages, docs/design.md "Commands across
//     replicas" for the design.
package distributed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/bus/rabbitmq"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/internal/redact"
	"github.com/xcomponent/xcomponent/internal/serve"
	"github.com/xcomponent/xcomponent/internal/telemetry"
	"github.com/xcomponent/xcomponent/server"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/maintenance"
	"github.com/xcomponent/xcomponent/store/storeurl"
	"github.com/xcomponent/xcomponent/wire"
)

// Defaults.
const (
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultShutdownTimeout   = 10 * time.Second
	DefaultEventBuffer       = 1 << 16
	DefaultPrefetch          = 256
)

// Config of a runtime.
type Config struct {
	// ComponentFile is the component's YAML file.
	ComponentFile string
	// BrokerURL is the RabbitMQ URL (amqp://…).
	BrokerURL string
	// StoreSpec is a store spec (postgres://…, sqlite:PATH, memory); see storeurl.
	StoreSpec string
	// RuntimeName is this process's human-readable name (announce, heartbeats).
	RuntimeName string
	// CreateDemoInstance creates one entry-machine instance at start.
	CreateDemoInstance bool
	// Hooks are the Go handlers of the hook methods named in the YAML, registered with the
	// engine's Handle before the component is loaded. A method without a handler is logged
	// (debug) and skipped, as in `xcomponent runtime`.
	Hooks Hooks
	// DefaultHook, when set, handles the hook methods that have no entry in Hooks (e.g. a
	// webhook; see xcomponent.Options.DefaultHook).
	DefaultHook xc.HookFunc
	// Port, when > 0, serves the HTTP API (server.Serve) on Bind:Port, with the probes of an
	// orchestrator: /healthz (the process answers), /readyz (200 once the runtime consumes
	// its commands, while the broker is connected and the store answers; 503 otherwise, and
	// from the start of a graceful stop) and /metrics (Prometheus).
	Port int
	// Tokens enable bearer-token auth on the HTTP API (see server.ParseTokens); none: open.
	Tokens server.Tokens
	// Bind is the address the HTTP API listens on (default 127.0.0.1).
	Bind string
	// HTTP are the connection settings of the HTTP API (allowed hosts, timeouts, cap).
	HTTP server.Transport
	// HeartbeatInterval between fsm:registry:heartbeat messages (default 10s).
	HeartbeatInterval time.Duration
	// ShutdownTimeout bounds the graceful stop (default 10s).
	ShutdownTimeout time.Duration
	// EventBuffer is the engine subscription's buffer (default 65536 runtime events).
	EventBuffer int
	// Prefetch is the number of unacknowledged commands per partition queue consumed by this
	// runtime (DefaultPrefetch when 0); commands of different instances run concurrently.
	Prefetch int
	// InboxRetention is how long the SQL stores keep the ids of applied commands and messages
	// before the periodic pruning forgets them (maintenance.DefaultInboxRetention, 24h, when
	// 0; never pruned when negative); see package store/maintenance. It must exceed the
	// longest time a duplicate can still arrive (CommandTTL, an outage of a runtime).
	InboxRetention time.Duration
	// OutboxSweep is how often the relay looks for messages for other components left in the
	// outbox (by a crash between commit and publish, a broker outage …) and publishes them
	// (default 5s; only rows older than one period are taken).
	OutboxSweep time.Duration
	// Partitions is the number of command partition queues of the component
	// (bus.DefaultPartitions when 0); every runtime of a component must use the same.
	Partitions int
	// CommandTTL is how long a command waits in its partition queue for a runtime before it
	// is dead-lettered (DefaultCommandTTL when 0). The same for every runtime of a component:
	// queues that exist with another TTL keep theirs (a warning says how to migrate, see
	// docs/reliability.md).
	CommandTTL time.Duration
	// CommandMaxLength bounds each partition queue; beyond it the oldest commands are
	// dead-lettered (DefaultCommandMaxLength when 0). The same for every runtime of a
	// component (as CommandTTL).
	CommandMaxLength int
	// TimerPoll is how often this runtime claims the component's due timers from the shared
	// store (any runtime fires the timers of any instance, e.g. after the arming runtime
	// died): xc.DefaultTimerPoll (1s) when 0, never when negative (each runtime then fires only
	// the timers it armed or loaded). A shorter poll fires a dead runtime's timers sooner at
	// the price of one claim query per runtime per period.
	TimerPoll time.Duration
	// TimerTakeover is how late a timer must be before it is claimed (xc.DefaultTimerTakeover,
	// 500ms, when 0): the arming runtime fires its own timers on time; the others step in
	// after this delay.
	TimerTakeover time.Duration
	// TimerLease is how long a claim keeps the other runtimes off the claimed instances
	// (xc.DefaultTimerLease, 10s, when 0): the longest delay a runtime dying with a claim adds.
	TimerLease time.Duration
	// MinBackoff and MaxBackoff bound the broker reconnection delay (bus defaults when 0).
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
	// Ready, when set, is called once the runtime consumes its commands and has announced
	// itself.
	Ready func(Info)
	// OnCommand, when set, is called after each command was handled (acknowledged or
	// dead-lettered), with its outcome (Outcome* constants). Tests and metrics use it.
	OnCommand func(channel, commandID, outcome string)
	// TracerProvider, when set, traces the runtime (OpenTelemetry): a span per consumed
	// command and cross-component event, per transition, hook call and store commit, per
	// outbox message published and per HTTP request, with the W3C trace context in the
	// AMQP headers. nil: no tracing.
	TracerProvider trace.TracerProvider
}

// Info describes a started runtime.
type Info struct {
	RuntimeID   string
	RuntimeName string
	Component   string
	// Addr is the HTTP API's address, nil without API.
	Addr net.Addr
}

// Outcomes of a command, for Config.OnCommand.
const (
	OutcomeApplied      = "applied"       // the engine applied it
	OutcomeDuplicate    = "duplicate"     // its id was already applied: acknowledged without effect
	OutcomeRefused      = "refused"       // a business refusal (not accepted, not found, invalid…): acknowledged, logged
	OutcomeIgnored      = "ignored"       // for another component: acknowledged
	OutcomeDeadLettered = "dead-lettered" // undecodable: dead-lettered
	OutcomeLeft         = "left"          // stopping before it could be applied: left for another consumer
)

// runtime is one running runtime.
type runtime struct {
	cfg     Config
	metrics *runtimeMetrics
	log     *slog.Logger
	id      string
	comp    *component.Component
	compRaw []byte
	host    string
	store   store.Store
	bus     bus.Bus
	// batch coalesces the replies, and the commands the ingress forwards to one partition,
	// published while one is in flight (bus.Batcher).
	batch *bus.Batcher
	eng   *xc.Engine

	dropped       atomic.Int64 // DroppedEvents last logged
	publishFailed atomic.Int64 // runtime events the broker did not take

	// owners: the store may be this runtime's alone (embedded): commands for instances it
	// does not hold are handed to the other runtimes of the component (owners.go).
	owners bool
	// peerSet is the component's live runtimes (set once the commands are consumed): with no
	// other runtime alive, nobody else can own an instance, and nothing is forwarded.
	peerSet atomic.Pointer[peers]

	readyMu sync.Mutex
	ready   bool
	// announceReq asks the announcer to re-announce (after a reconnection).
	announceReq chan struct{}

	knownMu sync.Mutex
	known   map[string]bool // components whose command partitions exist (ingress routing)
	routed  routedCreates
}

// Run runs a runtime until ctx is cancelled, then stops gracefully: it stops consuming
// commands (an unfinished command is left to the other runtimes), finishes in-flight work,
// publishes the runtime events still buffered, announces its shutdown and closes the bus and
// the store.
func Run(ctx context.Context, cfg Config) (err error) {
	defer func() {
		// Stopped before the runtime was up (e.g. while waiting for the broker): not a failure.
		if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			err = nil
		}
	}()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.EventBuffer <= 0 {
		cfg.EventBuffer = DefaultEventBuffer
	}
	if cfg.Bind == "" {
		cfg.Bind = DefaultBind
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = DefaultPrefetch
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = bus.DefaultPartitions
	}
	if cfg.Partitions > bus.Buckets {
		return fmt.Errorf("runtime: %d command partitions: at most %d", cfg.Partitions, bus.Buckets)
	}
	if cfg.CommandTTL <= 0 {
		cfg.CommandTTL = DefaultCommandTTL
	}
	if cfg.CommandMaxLength <= 0 {
		cfg.CommandMaxLength = DefaultCommandMaxLength
	}
	if cfg.ComponentFile == "" {
		return errors.New("runtime: no component file (COMPONENT_FILE)")
	}
	if cfg.BrokerURL == "" {
		return errors.New("runtime: no broker URL (BROKER_URL)")
	}
	for method, fn := range cfg.Hooks {
		if method == "" || fn == nil {
			return fmt.Errorf("runtime: hook %q: a hook needs a method name and a handler", method)
		}
	}
	if cfg.StoreSpec == "" {
		cfg.StoreSpec = storeurl.Default
	}
	if cfg.RuntimeName == "" {
		cfg.RuntimeName = defaultRuntimeName(time.Now())
	}
	r := &runtime{cfg: cfg, metrics: newRuntimeMetrics(), id: uuid.NewString(), announceReq: make(chan struct{}, 1), owners: embeddedStore(cfg.StoreSpec), known: map[string]bool{}}
	r.log = cfg.Logger.With("runtime", cfg.RuntimeName, "runtimeId", r.id)
	r.host, _ = os.Hostname()

	comps, err := serve.LoadComponents([]string{cfg.ComponentFile}, r.log)
	if err != nil {
		return err
	}
	r.comp = comps[0]
	if r.compRaw, err = componentJSON(r.comp); err != nil {
		return fmt.Errorf("component %s: %w", r.comp.Name, err)
	}
	r.log = r.log.With("component", r.comp.Name)

	st, err := storeurl.Open(ctx, cfg.StoreSpec, storeurl.WithLogger(r.log))
	if err != nil {
		return fmt.Errorf("open store %s: %w", redact.URL(cfg.StoreSpec), err)
	}
	defer func() { _ = st.Close() }()
	r.store = st
	r.log.Info("store open", "store", redact.URL(cfg.StoreSpec))
	// Stopped (and waited for) before the store closes: defers run last-in first-out.
	mctx, stopMaintenance := context.WithCancel(ctx)
	maintained := maintenance.Start(mctx, st, maintenance.Options{InboxRetention: cfg.InboxRetention, Logger: r.log})
	defer func() { stopMaintenance(); <-maintained }()

	b, err := rabbitmq.New(rabbitmq.Options{
		URL: cfg.BrokerURL, Name: "xcomponent-runtime " + cfg.RuntimeName, Logger: r.log,
		Prefetch: cfg.Prefetch, MinBackoff: cfg.MinBackoff, MaxBackoff: cfg.MaxBackoff,
		OnStateChange: r.onBrokerState,
	})
	if err != nil {
		return err
	}
	defer func() { _ = b.Close() }()
	r.bus = b
	r.batch = bus.NewBatcher(b, 0, 0)
	r.batch.Partitions = func(comp string) int { // the ingress: its own component's count
		if comp == r.comp.Name {
			return cfg.Partitions
		}
		return 0
	}

	// Messages for other components go through the relay (outbox → broker, with confirms).
	rel := newRelay(r.log, b, st, r.comp.Name, cfg.RuntimeName, cfg.OutboxSweep)
	rel.tp = cfg.TracerProvider
	defer rel.close()

	metrics := server.NewMetrics()
	r.eng = xc.New(xc.Options{Store: st, Logger: r.log, Observer: metrics, Tracer: telemetry.Engine(cfg.TracerProvider), DefaultHook: cfg.DefaultHook, Remote: rel, SharedStore: storeurl.Kind(cfg.StoreSpec) != "memory",
		TimerPoll: cfg.TimerPoll, TimerTakeover: cfg.TimerTakeover, TimerLease: cfg.TimerLease})
	metrics.Registry().MustRegister(r.droppedCollectors()...)
	r.instrument(metrics.Registry(), b.Connected)
	r.metrics.register(metrics.Registry(), r)
	for method, fn := range cfg.Hooks {
		r.eng.Handle(method, fn)
	}
	engineClosed := false
	closeEngine := func() {
		if engineClosed {
			return
		}
		engineClosed = true
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := r.eng.Close(sctx); err != nil {
			r.log.Warn("engine close", "err", err)
		}
	}
	defer closeEngine()

	// Subscribed before Load so that the entry point Load may create is published too.
	events, unsubscribe := r.eng.Subscribe(cfg.EventBuffer)
	defer unsubscribe()
	// The publisher outlives ctx: it flushes what the engine emitted until the engine closes,
	// bounded by the shutdown deadline.
	pubCtx, cancelPub := context.WithCancel(context.Background())
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		r.publishEvents(pubCtx, events)
	}()
	defer func() {
		cancelPub()
		unsubscribe()
		<-pubDone
	}()

	if err := r.eng.Load(ctx, r.comp); err != nil {
		return err
	}
	r.log.Info("component loaded", "machines", len(r.comp.StateMachines), "live", len(r.eng.Live(r.comp.Name, "")))
	rel.startSweep(r.eng.Hosts, r.eng.Redeliver)

	// The HTTP API (and the orchestrator's probes) serve from here on, before the broker is
	// reached: /healthz answers while the runtime waits for its broker, /readyz only once it
	// consumes its commands (r.ready).
	info := Info{RuntimeID: r.id, RuntimeName: cfg.RuntimeName, Component: r.comp.Name}
	httpErr := make(chan error, 1)
	stopHTTP := func() {}
	defer func() { stopHTTP() }()
	if cfg.Port > 0 {
		addr := net.JoinHostPort(cfg.Bind, strconv.Itoa(cfg.Port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		info.Addr = ln.Addr()
		httpCtx, cancelHTTP := context.WithCancel(ctx)
		httpDone := make(chan struct{})
		stopHTTP = func() { cancelHTTP(); <-httpDone }
		go func() {
			defer close(httpDone)
			httpErr <- server.Serve(httpCtx, ln, r.eng, server.Options{Logger: r.log, Metrics: metrics, Tokens: cfg.Tokens,
				Name: cfg.RuntimeName, DatabaseType: storeurl.Kind(cfg.StoreSpec), ShutdownTimeout: cfg.ShutdownTimeout,
				BrokerURL: cfg.BrokerURL, BrokerConnected: b.Connected, Ready: r.readiness, HTTP: cfg.HTTP,
				Trace: telemetry.HTTPTrace(cfg.TracerProvider)})
		}()
		r.log.Info("serving the API", "addr", "http://"+ln.Addr().String())
	}

	// Registry requests, then commands.
	discover, err := b.Subscribe(ctx, wire.ChannelDiscover, r.onDiscover)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", wire.ChannelDiscover, err)
	}
	defer func() { _ = discover.Close() }()
	query, err := b.Subscribe(ctx, wire.ChannelQueryInstances, r.onQueryInstances)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", wire.ChannelQueryInstances, err)
	}
	defer func() { _ = query.Close() }()
	commands, err := r.startCommands(ctx)
	if err != nil {
		return err
	}
	r.peerSet.Store(commands.peers)
	commandsClosed := false
	closeCommands := func() {
		if !commandsClosed {
			commandsClosed = true
			commands.close()
		}
	}
	defer closeCommands()
	r.log.Info("consuming commands", "partitions", cfg.Partitions, "queues", bus.PartitionQueue(r.comp.Name, cfg.Partitions, 0)+"…", "ingress", bus.IngressQueue)
	cross, err := r.startCrossComponent(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = cross.Close() }()
	closeOwners := func() {}
	if r.owners {
		owners, err := b.Subscribe(ctx, ownerChannel(r.comp.Name), r.onForwarded)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", ownerChannel(r.comp.Name), err)
		}
		closeOwners = func() { _ = owners.Close() }
		defer closeOwners()
	}

	select { // the first connection's signal: the announce below covers it
	case <-r.announceReq:
	default:
	}
	if err := r.announce(ctx); err != nil {
		if ctx.Err() != nil { // stopped before the broker was reachable
			return nil
		}
		return fmt.Errorf("announce: %w", err)
	}
	r.readyMu.Lock()
	r.ready = true
	r.readyMu.Unlock()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.registryLoop(ctx)
	}()

	if cfg.CreateDemoInstance {
		inst, err := r.eng.Create(ctx, xc.CreateRequest{Component: r.comp.Name, Event: xc.Event{Source: "demo", Actor: cfg.RuntimeName}})
		if err != nil {
			r.log.Warn("demo instance not created", "err", err)
		} else {
			r.log.Info("demo instance created", "instance", inst.ID, "machine", inst.MachineName)
		}
	}
	r.log.Info("runtime started", "host", r.host)
	if cfg.Ready != nil {
		cfg.Ready(info)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-httpErr:
		if runErr != nil {
			runErr = fmt.Errorf("HTTP API: %w", runErr)
		}
	}

	// Graceful stop.
	r.log.Info("stopping")
	r.readyMu.Lock()
	r.ready = false // /readyz: 503 from now on
	r.readyMu.Unlock()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	closeCommands() // an unfinished command stays in the queue for another runtime
	_ = cross.Close()
	_ = discover.Close()
	_ = query.Close()
	closeOwners()
	wg.Wait()  // the registry loop (ends with ctx)
	stopHTTP() // in-flight requests finish before the engine closes
	closeEngine()
	rel.drain(sctx)
	rel.close() // what it had not published stays in the outbox
	unsubscribe()
	select { // flush the runtime events the engine emitted
	case <-pubDone:
	case <-sctx.Done():
		r.log.Warn("runtime events not all published before the shutdown deadline")
	}
	cancelPub()
	<-pubDone
	r.logDropped()
	body, _ := wire.Encode(wire.Shutdown(r.heartbeat("stopping")))
	if err := b.Publish(sctx, wire.ChannelShutdown, body, bus.Meta{MessageID: uuid.NewString()}); err != nil {
		r.log.Warn("shutdown not announced", "err", err)
	}
	r.log.Info("stopped")
	return runErr
}
