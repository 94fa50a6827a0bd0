package httpapi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/google/uuid"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/internal/redact"
	"github.com/xcomponent/xcomponent/store"
)

// LocalOption configures NewLocal.
type LocalOption func(*local)

// WithDatabaseType names the store for /health ("sqlite", "postgres", "memory"). By default
// it is "memory" for a *store.Memory and "unknown" otherwise.
func WithDatabaseType(typ string) LocalOption { return func(l *local) { l.dbType = typ } }

// WithBroker reports the broker of a distributed runtime (its API: `xcomponent runtime
// --port`): its URL, shown with the password masked, and a function telling whether it is
// connected.
func WithBroker(url string, connected func() bool) LocalOption {
	return func(l *local) { l.brokerURL, l.brokerUp = url, connected }
}

// WithReady adds a readiness check of the embedding process (a distributed runtime: announced,
// consuming its commands, not stopping) to the store and broker checks of /readyz.
func WithReady(check func(context.Context) error) LocalOption {
	return func(l *local) { l.ready = check }
}

// WithRuntime names the local runtime and the address it listens on, for /api/runtimes.
func WithRuntime(name, host string, port int) LocalOption {
	return func(l *local) { l.name, l.host, l.port = name, host, port }
}

// outboxScrapeLimit bounds the outbox read done for the outbox_pending gauge.
const outboxScrapeLimit = 1000

// local is the single-process Backend: one engine in this process.
type local struct {
	eng       *xc.Engine
	dbType    string
	brokerURL string
	brokerUp  func() bool
	ready     func(context.Context) error
	name      string
	host      string
	port      int
	base      uuid.UUID // runtime ids are derived from it, one per component
}

// NewLocal returns the Backend of single-process mode, over an engine of this process.
func NewLocal(eng *xc.Engine, opts ...LocalOption) Backend {
	l := &local{eng: eng, name: "local", base: uuid.New()}
	if _, ok := eng.Store().(*store.Memory); ok {
		l.dbType = "memory"
	} else {
		l.dbType = "unknown"
	}
	l.host, _ = os.Hostname()
	for _, o := range opts {
		o(l)
	}
	return l
}

func (l *local) Health(ctx context.Context) Health {
	h := Health{Status: "ok", Mode: "single", Broker: "none", DatabaseType: l.dbType}
	for _, c := range l.eng.Components() {
		h.Components = append(h.Components, c.Name)
	}
	if h.Components == nil {
		h.Components = []string{}
	}
	h.ConnectedRuntimes = len(h.Components)
	if err := l.eng.Store().Ping(ctx); err != nil {
		h.Status = "degraded"
		h.Problems = append(h.Problems, "store: "+err.Error())
	} else {
		h.Database = l.dbType != "memory"
	}
	if l.brokerURL != "" {
		h.Broker = redact.URL(l.brokerURL)
		h.BrokerConnected = l.brokerUp == nil || l.brokerUp()
		if !h.BrokerConnected {
			h.Status = "degraded"
			h.Problems = append(h.Problems, "broker: not connected")
		}
	}
	return h
}

func (l *local) Ready(ctx context.Context) error {
	if err := l.eng.Store().Ping(ctx); err != nil {
		return fmt.Errorf("store: %w: %v", xc.ErrStore, err)
	}
	if l.brokerURL != "" && l.brokerUp != nil && !l.brokerUp() {
		return fmt.Errorf("broker: not connected: %w", ErrUnavailable)
	}
	if l.ready != nil {
		return l.ready(ctx)
	}
	return nil
}

func (l *local) Components() []*component.Component { return l.eng.Components() }

// Component returns a loaded component, or nil (componentLookup).
func (l *local) Component(name string) *component.Component { return l.eng.Component(name) }

// Runtimes returns one entry per loaded component: in one process, each component has its
// runtime, always up.
func (l *local) Runtimes(context.Context) ([]Runtime, error) {
	counts := map[string]int{}
	for _, c := range l.eng.StateCounts() {
		counts[c.Component] += c.Count
	}
	now := l.eng.Clock().Now().UnixMilli()
	var out []Runtime
	for _, c := range l.eng.Components() {
		out = append(out, Runtime{
			RuntimeID:   uuid.NewSHA1(l.base, []byte(c.Name)).String(),
			RuntimeName: l.name, ComponentName: c.Name, Host: l.host, Port: l.port,
			LastSeen: now, Status: "up", Instances: counts[c.Name],
		})
	}
	return out, nil
}

func (l *local) Create(ctx context.Context, req xc.CreateRequest) (xc.Instance, error) {
	return l.eng.Create(ctx, req)
}

func (l *local) Send(ctx context.Context, comp, id string, ev xc.Event) (xc.Result, error) {
	if err := l.checkComponent(ctx, comp, id); err != nil {
		return xc.Result{}, err
	}
	return l.eng.Send(ctx, id, ev)
}

// checkComponent reports an instance that is not of component comp (when set) as not found.
func (l *local) checkComponent(ctx context.Context, comp, id string) error {
	if comp == "" {
		return nil
	}
	in, err := l.eng.Get(ctx, id)
	if err != nil {
		return err
	}
	if in.ComponentName != comp {
		return fmt.Errorf("instance %s not found in component %s: %w", id, comp, xc.ErrNotFound)
	}
	return nil
}

func (l *local) Broadcast(ctx context.Context, req xc.BroadcastRequest) (xc.BroadcastResult, error) {
	return l.eng.Broadcast(ctx, req)
}

func (l *local) Instance(ctx context.Context, id string) (xc.Instance, error) {
	return l.eng.Get(ctx, id)
}

func (l *local) Search(ctx context.Context, q store.Query) ([]xc.Instance, string, error) {
	out, next, err := l.eng.Search(ctx, q)
	if err != nil {
		return nil, "", storeErr("search", err)
	}
	return out, next, nil
}

func (l *local) History(ctx context.Context, id string) ([]store.Event, error) {
	evs, err := l.eng.Store().History(ctx, id)
	return evs, storeErr("history", err)
}

// HistoryPage implements HistoryPager: the store's own paging when it has one (memory, SQLite,
// PostgreSQL all do), else its History sliced.
func (l *local) HistoryPage(ctx context.Context, id string, p store.EventPage) ([]store.Event, string, error) {
	st := l.eng.Store()
	if hp, ok := st.(store.HistoryPager); ok {
		evs, next, err := hp.HistoryPage(ctx, id, p)
		return evs, next, storeErr("history", err)
	}
	after := int64(-1)
	if p.Cursor != "" {
		seq, ok := store.DecodeEventCursor(p.Cursor)
		if !ok {
			return nil, "", fmt.Errorf("history: %w", ErrInvalid)
		}
		after = seq
	}
	evs, err := st.History(ctx, id)
	if err != nil {
		return nil, "", storeErr("history", err)
	}
	return slicePage(evs, p, after)
}

// Event implements EventFinder: the store's lookup by id when it has one (memory, SQLite,
// PostgreSQL all do), else a scan of the instance's history.
func (l *local) Event(ctx context.Context, instanceID, eventID string) (store.Event, bool, error) {
	ev, found, err := store.FindEvent(ctx, l.eng.Store(), instanceID, eventID)
	return ev, found, storeErr("event", err)
}

func (l *local) Correlated(ctx context.Context, id string) ([]store.Event, error) {
	evs, err := l.eng.Store().Correlated(ctx, id)
	return evs, storeErr("correlated events", err)
}

func (l *local) Subscribe(buffer int) (<-chan xc.RuntimeEvent, func()) {
	return l.eng.Subscribe(buffer)
}

// Stats counts live instances per state from the engine's memory, pending timers, and the
// outbox up to outboxScrapeLimit messages.
func (l *local) Stats(ctx context.Context) (Stats, error) {
	st := Stats{TimersPending: l.eng.PendingTimers()}
	st.Instances = l.eng.StateCounts()
	sort.Slice(st.Instances, func(i, j int) bool {
		a, b := st.Instances[i], st.Instances[j]
		if a.Component != b.Component {
			return a.Component < b.Component
		}
		if a.Machine != b.Machine {
			return a.Machine < b.Machine
		}
		return a.State < b.State
	})
	if l.brokerURL != "" {
		st.BrokerConnected = l.brokerUp == nil || l.brokerUp()
	}
	msgs, err := l.eng.Store().PendingOutbox(ctx, "", outboxScrapeLimit)
	if err != nil {
		return st, storeErr("outbox", err)
	}
	st.OutboxPending = len(msgs)
	return st, nil
}

// storeErr classifies an error of a store read: a bad cursor is the client's fault, anything
// else means the store is unavailable.
func storeErr(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, store.ErrBadCursor):
		return fmt.Errorf("%s: %w: bad cursor", what, ErrInvalid)
	default:
		return fmt.Errorf("%s: %w: %v", what, xc.ErrStore, err)
	}
}
