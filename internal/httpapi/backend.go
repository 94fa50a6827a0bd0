// Package httpapi is the HTTP layer of `xcomponent serve` and `xcomponent dashboard`: the REST
// API of http.md, the live stream (Server-Sent Events at /api/stream), bearer-token auth,
// Prometheus metrics, request logs and the OpenAPI document.
//
// The handlers talk to a Backend only. NewLocal implements it over an in-process engine
// (single-process mode); the distributed dashboard provides another implementation behind the
// same handlers.
package httpapi

import (
	"context"
	"errors"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

// Backend is what the handlers need from a runtime: the loaded components, commands
// (create, send, broadcast), reads (instances, history) and the live feed.
//
// Errors are classified with errors.Is, in one place (see statusOf): xcomponent.ErrNotFound
// → 404, ErrNotAccepted and ErrSingleton → 409, *xcomponent.ContextError → 422, ErrInvalid →
// 400, xcomponent.ErrStore, ErrClosed and ErrUnavailable → 503, ErrTimeout and
// context.DeadlineExceeded → 504.
type Backend interface {
	// Health describes the backend for GET /health.
	Health(ctx context.Context) Health
	// Ready reports whether the backend can serve (store and broker reachable).
	Ready(ctx context.Context) error
	// Components returns the known component definitions, in a stable order.
	Components() []*component.Component
	// Runtimes lists the runtimes serving the components.
	Runtimes(ctx context.Context) ([]Runtime, error)

	// Create creates an instance and returns it once it exists.
	Create(ctx context.Context, req xc.CreateRequest) (xc.Instance, error)
	// Send delivers an event to one instance and returns the transition it fired. When
	// component is not empty, an instance of another component is reported as not found.
	Send(ctx context.Context, component, instanceID string, ev xc.Event) (xc.Result, error)
	// Broadcast delivers an event to the instances of a machine.
	Broadcast(ctx context.Context, req xc.BroadcastRequest) (xc.BroadcastResult, error)

	// Instance returns one instance, live or completed.
	Instance(ctx context.Context, id string) (xc.Instance, error)
	// Search lists instances (also completed ones), newest update first, and the cursor of
	// the next page ("" when none).
	Search(ctx context.Context, q store.Query) ([]xc.Instance, string, error)
	// History returns the events of an instance, oldest first.
	History(ctx context.Context, instanceID string) ([]store.Event, error)
	// Correlated returns every event of a correlation, oldest first.
	Correlated(ctx context.Context, correlationID string) ([]store.Event, error)

	// Subscribe returns the live runtime events and a function ending the subscription.
	// It must never block the runtime: a subscriber that does not keep up misses events.
	Subscribe(buffer int) (<-chan xc.RuntimeEvent, func())
	// Stats are the gauges computed when /metrics is scraped.
	Stats(ctx context.Context) (Stats, error)
}

// Errors a Backend may return besides the engine's (see Backend).
var (
	// ErrInvalid: the request is malformed (bad cursor, bad filter …) → 400.
	ErrInvalid = errors.New("invalid request")
	// ErrUnavailable: the broker or the runtimes cannot be reached → 503.
	ErrUnavailable = errors.New("unavailable")
	// ErrTimeout: no runtime answered in time → 504.
	ErrTimeout = errors.New("no runtime answered in time")
)

// Runtime event types the stream adds to the engine's (distributed backends emit them).
const (
	EvRuntimeConnected    xc.RuntimeEventKind = "runtime_connected"
	EvRuntimeDisconnected xc.RuntimeEventKind = "runtime_disconnected"
)

// Health is the backend part of GET /health.
type Health struct {
	// Status is "ok" or "degraded".
	Status string `json:"status"`
	// Mode is "single" or "distributed".
	Mode string `json:"mode"`
	// Broker is the broker URL with its password masked, "none" without a broker.
	Broker          string `json:"broker"`
	BrokerConnected bool   `json:"brokerConnected"`
	// Database reports whether a durable database is configured and reachable.
	Database          bool     `json:"database"`
	DatabaseType      string   `json:"databaseType"`
	ConnectedRuntimes int      `json:"connectedRuntimes"`
	Components        []string `json:"components"`
	// Problems says why the status is degraded.
	Problems []string `json:"problems,omitempty"`
}

// Runtime is one runtime serving a component, as GET /api/runtimes shows it.
type Runtime struct {
	RuntimeID     string `json:"runtimeId"`
	RuntimeName   string `json:"runtimeName"`
	ComponentName string `json:"componentName"`
	Host          string `json:"host"`
	Port          int    `json:"port"`
	LastSeen      int64  `json:"lastSeen"`
	// Status is "up" or "lost".
	Status    string `json:"status"`
	Instances int    `json:"instances"`
}

// Stats are the scrape-time gauges of /metrics.
type Stats struct {
	Instances       []StateCount
	TimersPending   int
	OutboxPending   int
	BrokerConnected bool
}

// StateCount is the number of live instances of a machine in one state.
type StateCount = xc.StateCount
