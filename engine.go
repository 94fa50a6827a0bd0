package xcomponent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xcomponent/xcomponent/clock"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/internal/testmode"
	"github.com/xcomponent/xcomponent/store"
)

// Options configure an Engine. The zero value is usable: in-memory store, real clock.
type Options struct {
	// Store keeps instances and history; store.NewMemory() when nil. The engine does not
	// close it.
	Store store.Store
	// Clock is the time source for timers; the real clock when nil.
	Clock clock.Clock
	// Logger receives the engine's logs; slog.Default() when nil.
	Logger *slog.Logger
	// Remote delivers messages for components this engine does not host (distributed mode).
	Remote Remote
	// SharedStore says that other processes write the same store (several runtimes of a
	// component on one database). Broadcasts, cascades and cross-component events are then
	// routed against the store (store.Matcher, when the store implements it) rather than
	// against this process's in-memory indexes, which do not see the instances other
	// processes created or changed; and an event refused on this process's copy of an instance
	// is tried again on the stored one when another process changed it.
	SharedStore bool
	// Observer is told about transitions and errors (metrics); optional.
	Observer Observer
	// Tracer, when set, traces transitions, creations, hook calls and store commits (see
	// Tracer); nil: no tracing, at no cost.
	Tracer Tracer
	// DefaultHook handles every hook method named in the YAML that has no handler registered
	// with Handle (registered handlers win); the binaries point it at --hooks-url. When nil,
	// such methods do nothing: the audit trail notes it, and the engine logs it at debug
	// level.
	DefaultHook HookFunc
	// TimerBatch bounds how many due timers are fired in one batch (default 1000).
	TimerBatch int
	// TimerPoll is how often the engine claims due timers from a store that several
	// processes share (one implementing store.TimerClaimer: SQLite, PostgreSQL), so that it
	// fires the timers of instances armed by a process that died, even instances it never
	// loaded. 0 means DefaultTimerPoll (1s); negative turns claiming off. Manual engines
	// never claim.
	TimerPoll time.Duration
	// TimerTakeover is how late a timer must be before the engine claims it: the process
	// that armed a timer fires it on time from its own queue, the others take over when it
	// is this late (default DefaultTimerTakeover, 500ms).
	TimerTakeover time.Duration
	// Testing is set by package xcomponenttest (manual mode, virtual clock, synchronous
	// listener); leave it nil.
	Testing *testmode.Driver[RuntimeEvent]
	// TimerLease is how long a claim keeps other processes off the claimed instances
	// (default DefaultTimerLease, 10s). A process that dies holding a claim delays those
	// timers by at most this much.
	TimerLease time.Duration
}

// Observer is told about what the engine does, synchronously, for metrics (server.Metrics is
// one): keep it cheap. Subscribe is how to follow what happens to instances.
type Observer interface {
	// Transition: a transition committed, processed in seconds.
	Transition(component, machine, from, to, event string, seconds float64)
	// EventIgnored: an event was refused.
	EventIgnored(component, machine string)
	// HookError: an onEntry hook failed (the transition stands).
	HookError(component, machine string)
	// StoreError: a store write failed.
	StoreError()
	// TimerFired: a timer fired, lagSeconds after its deadline.
	TimerFired(lagSeconds float64)
}

// Engine runs the instances of the components loaded into it.
type Engine struct {
	log     *slog.Logger
	store   store.Store
	clock   clock.Clock
	manual  bool
	remote  Remote
	matcher store.Matcher // set when the store is shared with other processes
	shared  bool
	// compactIdle: idle instances keep a compact record (compact.go), unless the store keeps
	// the committed records itself.
	compactIdle bool
	observer    Observer
	tracer      Tracer
	fallback    HookFunc
	listener    func(RuntimeEvent)

	hooksMu sync.RWMutex
	hooks   map[string]HookFunc

	mu         sync.RWMutex
	components map[string]*compRuntime
	instances  map[string]*instance

	subs   subscribers
	timers timerQueue
	poller timerPoller

	// pending counts the deliveries queued or being processed: an atomic, so that the hot
	// path takes no lock; idleMu guards idle, the WaitIdle callers released when pending
	// drops to 0, and waiters says whether there are any.
	pending atomic.Int64
	waiters atomic.Int32
	idleMu  sync.Mutex
	idle    []chan struct{}

	ids idGen

	fifoMu sync.Mutex
	fifo   []*delivery // manual mode: queued deliveries, in send order

	scratch sync.Pool // *transitionScratch

	baseCtx context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
	closed  atomic.Bool
}

// New returns an engine with no component loaded.
func New(opts Options) *Engine {
	e := &Engine{
		log:        opts.Logger,
		store:      opts.Store,
		clock:      opts.Clock,
		remote:     opts.Remote,
		observer:   opts.Observer,
		tracer:     opts.Tracer,
		fallback:   opts.DefaultHook,
		hooks:      make(map[string]HookFunc),
		components: make(map[string]*compRuntime),
		instances:  make(map[string]*instance),
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.store == nil {
		e.store = store.NewMemory()
	}
	if rk, ok := e.store.(store.RecordKeeper); !ok || !rk.KeepsRecords() {
		e.compactIdle = true
	}
	if opts.SharedStore {
		e.shared = true
		e.matcher, _ = e.store.(store.Matcher)
	}
	if e.clock == nil {
		e.clock = clock.Real{}
	}
	if t := opts.Testing; t != nil {
		e.manual, e.listener = t.Manual, t.Listen
		t.Settle, t.FireDue, t.NextDeadline = e.settle, e.timers.fireDue, e.nextDeadline
	}
	e.scratch.New = func() any { return new(transitionScratch) }
	e.baseCtx, e.stop = context.WithCancel(context.Background())
	e.timers.init(e, opts.TimerBatch)
	e.poller.init(e, opts)
	return e
}

// Handle registers the handler of a hook method named in the YAML (onEntry, onExit,
// triggeredMethod). Registering the same name again replaces the handler.
func (e *Engine) Handle(method string, fn HookFunc) {
	e.hooksMu.Lock()
	defer e.hooksMu.Unlock()
	e.hooks[method] = fn
}

func (e *Engine) hook(method string) HookFunc {
	e.hooksMu.RLock()
	defer e.hooksMu.RUnlock()
	return e.hooks[method]
}

// Store returns the engine's store.
func (e *Engine) Store() store.Store { return e.store }

// Clock returns the engine's clock.
func (e *Engine) Clock() clock.Clock { return e.clock }

// Components returns the loaded components, in load order.
func (e *Engine) Components() []*component.Component {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]*component.Component, 0, len(e.components))
	for _, c := range e.components {
		out = append(out, c.def)
	}
	sortComponents(out, e.components)
	return out
}

// Component returns a loaded component, or nil.
func (e *Engine) Component(name string) *component.Component {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if c := e.components[name]; c != nil {
		return c.def
	}
	return nil
}

// Load adds a component: it restores the component's live instances from the store (state,
// data, timers, routing indexes), creates the entry-point instance when the component asks for
// one and none exists, and redelivers what the outbox still holds.
func (e *Engine) Load(ctx context.Context, def *component.Component) error {
	if e.closed.Load() {
		return ErrClosed
	}
	e.mu.Lock()
	if _, dup := e.components[def.Name]; dup {
		e.mu.Unlock()
		return fmt.Errorf("load component %s: already loaded", def.Name)
	}
	cr := newCompRuntime(def, len(e.components))
	e.components[def.Name] = cr
	e.mu.Unlock()
	e.indexRoutedProperties()
	e.ensureRouteIndexes(ctx)

	n, err := e.restore(ctx, cr)
	if err != nil {
		e.mu.Lock()
		delete(e.components, def.Name)
		e.mu.Unlock()
		return fmt.Errorf("load component %s: restore: %w", def.Name, err)
	}
	if n > 0 {
		e.log.Info("restored instances", "component", def.Name, "count", n)
	}
	cr.createMu.Lock()
	hasEntry := cr.entryExists
	cr.createMu.Unlock()
	if def.EntryMachine != "" && def.AutoCreateEntryPoint && !hasEntry {
		_, _, err := e.create(ctx, cr, CreateRequest{Component: def.Name, Machine: def.EntryMachine}, true)
		switch {
		case errors.Is(err, ErrSingleton):
			// Another runtime sharing the store created it since LoadLive: load it.
			if err := e.loadEntryPoint(ctx, cr); err != nil {
				return fmt.Errorf("load component %s: entry point: %w", def.Name, err)
			}
		case err != nil:
			return fmt.Errorf("load component %s: create entry point: %w", def.Name, err)
		}
	}
	return e.redeliverOutbox(ctx, def.Name)
}

// loadEntryPoint registers the entry-point instance another process created.
func (e *Engine) loadEntryPoint(ctx context.Context, cr *compRuntime) error {
	recs, err := e.store.LoadLive(ctx, cr.def.Name)
	if err != nil {
		return err
	}
	for i := range recs {
		if !cr.countsAsEntry(&recs[i]) {
			continue
		}
		if _, err := e.register(cr, &recs[i]); err != nil {
			return fmt.Errorf("instance %s: %w", recs[i].ID, err)
		}
		e.log.Info("entry point created by another runtime loaded", "component", cr.def.Name, "instance", recs[i].ID)
	}
	return nil
}

// Close stops timers and background processing and waits for in-flight work, or for ctx.
// The store is not closed.
func (e *Engine) Close(ctx context.Context) error {
	if !e.closed.CompareAndSwap(false, true) {
		return nil
	}
	e.timers.stop()
	e.poller.stop()
	done := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		e.stop()
		e.subs.closeAll()
		return nil
	case <-ctx.Done():
		e.stop()
		e.subs.closeAll()
		return fmt.Errorf("close: %w", ctx.Err())
	}
}

// WaitIdle blocks until no event is queued or being processed, or ctx is done. Timers that
// are not yet due do not count. Tests use it to wait for cascades to settle.
func (e *Engine) WaitIdle(ctx context.Context) error {
	if e.manual {
		return e.settle(ctx)
	}
	for {
		e.idleMu.Lock()
		// waiters is raised before pending is read, and addPending lowers pending before it
		// reads waiters: one of the two sees the other (sequentially consistent atomics).
		e.waiters.Add(1)
		if e.pending.Load() == 0 {
			e.waiters.Add(-1)
			e.idleMu.Unlock()
			return nil
		}
		ch := make(chan struct{})
		e.idle = append(e.idle, ch)
		e.idleMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (e *Engine) addPending(n int64) {
	if e.pending.Add(n) != 0 || e.waiters.Load() == 0 {
		return
	}
	e.idleMu.Lock()
	if e.pending.Load() == 0 && len(e.idle) > 0 {
		for _, ch := range e.idle {
			close(ch)
		}
		e.waiters.Add(-int32(len(e.idle)))
		clear(e.idle)
		e.idle = e.idle[:0]
	}
	e.idleMu.Unlock()
}

func (e *Engine) newID() string { return e.ids.next() }

func (e *Engine) nowMs() int64 { return e.clock.Now().UnixMilli() }

// lookup returns a live instance by id.
func (e *Engine) lookup(id string) *instance {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.instances[id]
}

// lookupOrLoad returns a live instance, loading it from the store when another process
// sharing the store created it after this engine started: the store is the source of truth.
func (e *Engine) lookupOrLoad(ctx context.Context, id string) *instance {
	if inst := e.lookup(id); inst != nil {
		return inst
	}
	rec, err := e.store.Instance(ctx, id)
	if err != nil || rec.Status != store.StatusActive {
		return nil
	}
	cr := e.componentRuntime(rec.Component)
	if cr == nil {
		return nil
	}
	inst, err := e.register(cr, &rec)
	if err != nil {
		return nil
	}
	return inst
}

func (e *Engine) componentRuntime(name string) *compRuntime {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.components[name]
}

// Hosts says whether a component is loaded in this engine.
func (e *Engine) Hosts(component string) bool { return e.componentRuntime(component) != nil }
