// Package store defines what the engine needs from durable storage: one interface, implemented
// in memory (this package), on SQLite (store/sqlite) and on PostgreSQL (store/postgres).
//
// The unit of writing is a Commit: everything one transition produced, applied atomically. The
// engine keeps live instances in memory and uses the store as the durable mirror and for history.
//
// Data and payload maps: the SQL stores keep them as JSON, so what comes back is what
// encoding/json decodes: numbers are float64, nested maps are map[string]any, slices []any,
// and a nil map comes back empty. The memory store returns the very values it was given.
// Code reading records must not depend on the Go type of a number.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors the engine reacts to. Implementations wrap them; test with errors.Is.
var (
	// ErrNotFound: no instance (or record) with that id.
	ErrNotFound = errors.New("not found")
	// ErrConflict: an instance's stored version is not the expected one (another writer won).
	ErrConflict = errors.New("version conflict")
	// ErrDuplicate: the commit's InboxID was already applied, or an outbox message it
	// consumes was already delivered (an idempotent redelivery).
	ErrDuplicate = errors.New("duplicate command")
	// ErrBadCursor: a Search cursor that no page of this store produced.
	ErrBadCursor = errors.New("bad cursor")
	// ErrClosed: the store was closed; the call did nothing.
	ErrClosed = errors.New("store closed")
	// ErrEntryPointExists: the commit creates an entry-point instance (IsEntryPoint) of a
	// component and machine that already has one. Stores shared by several processes enforce
	// it (a unique index), so that runtimes starting together create one entry point.
	ErrEntryPointExists = errors.New("entry point already exists")
)

// Status is an instance's life status.
type Status string

// Instance statuses.
const (
	StatusActive    Status = "active"
	StatusCompleted Status = "completed"
	StatusError     Status = "error"
	// StatusTerminated: an operator ended the instance (Engine.Terminate) before its machine
	// reached a final state; it stays in the state it was in.
	StatusTerminated Status = "terminated"
)

// Timer kinds.
const (
	TimerTimeout = "timeout"
	TimerAuto    = "auto"
)

// Timer is one armed timer of an instance: a timeout or auto transition waiting for its deadline.
type Timer struct {
	Event       string `json:"event"`
	TargetState string `json:"targetState"`
	DueAt       int64  `json:"dueAt"`   // ms epoch
	TotalMs     int64  `json:"totalMs"` // the transition's timeoutMs
	Kind        string `json:"kind"`    // TimerTimeout or TimerAuto
	// Transition is the index of the transition in its machine; it identifies the arming.
	Transition int `json:"transition"`
	// ArmedAt is when the timer was armed (ms epoch).
	ArmedAt int64 `json:"armedAt"`
	// CausationID and CorrelationID are those of the event that armed the timer; the timer's
	// event carries them.
	CausationID   string `json:"causationId,omitempty"`
	CorrelationID string `json:"correlationId,omitempty"`
	// Spent marks an arming that fired (or whose event was refused) and is kept only to
	// remember it: a timeout with resetOnTransition false fires once per stay in its state.
	Spent bool `json:"spent,omitempty"`
}

// Instance is the current-state record of one instance.
//
// Data is treated as immutable once it is in a record: writers replace the map, never mutate it,
// so records can share it without copying.
type Instance struct {
	ID            string
	Component     string
	Machine       string
	State         string
	Data          map[string]any
	Status        Status
	IsEntryPoint  bool
	ParentID      string
	ParentMachine string
	CreatedAt     int64 // ms epoch
	UpdatedAt     int64 // ms epoch
	Version       int64 // number of transitions
	Timers        []Timer
}

// Event is one row of the audit trail: an instance's creation or one of its transitions.
type Event struct {
	ID              string
	InstanceID      string
	Component       string
	Machine         string
	Type            string // the event type; "INSTANCE_CREATED" for creation
	Payload         map[string]any
	FromState       string // "" for creation
	ToState         string
	Data            map[string]any // instance data after the event
	SourceComponent string
	CorrelationID   string
	CausationID     string
	Actor           string // who sent it: token name, "timer", "hook", a component …
	Source          string // api, timer, hook, cascade, inter_machine, cross_component, parent, …
	Seq             int64  // the instance version after this event (0 for creation)
	PersistedAt     int64  // ms epoch
	// Note records what went wrong without undoing the transition (an onEntry hook that
	// failed, a hook method without a handler); "" when nothing did.
	Note string
	// TraceID is the trace (W3C trace id, 32 hex digits) of the transition when tracing was
	// on; "" otherwise.
	TraceID string
	// Reason is why an operator did it (create, send, terminate, retry), as given with the
	// request; "" when none was given.
	Reason string
}

// EventCreated is the type of the event recorded when an instance is created.
const EventCreated = "INSTANCE_CREATED"

// Message is one outbox entry: something a committed transition must still deliver (an event
// to another instance, a creation, a broadcast, a message for another process). The engine owns
// the encoding of Body; the store keeps it opaque.
type Message struct {
	ID        string
	Component string // the component whose runtime wrote it
	Kind      string
	Body      []byte
	CreatedAt int64 // ms epoch
}

// InstanceWrite is a new current-state row. ExpectVersion is the stored version the writer
// read (optimistic concurrency); -1 means the instance is new and must not exist yet.
//
// Instance is immutable once given to Commit: neither the store nor the writer modifies it,
// so a store may keep the pointer (the memory store shares it with the engine).
type InstanceWrite struct {
	Instance      *Instance
	ExpectVersion int64
}

// RecordKeeper is implemented by a store that keeps the *Instance records given to Commit as
// its own copy (the memory store). An engine keeps compact copies of its idle instances'
// records only when the store does not keep them: beside the store's, they would cost more.
type RecordKeeper interface {
	KeepsRecords() bool
}

// Commit is everything one transition (or creation) produced. Implementations apply it in one
// transaction: all of it or none of it.
type Commit struct {
	Events    []Event
	Instances []InstanceWrite
	Outbox    []Message // messages to deliver after the commit
	// Consumed are the outbox message ids this commit delivers (deleted with it). A message
	// that is no longer in the outbox fails the commit with ErrDuplicate: another delivery of
	// it won, and applying this one would apply it twice.
	Consumed []string
	// InboxID, when set, is recorded as applied; a second commit with the same id fails with
	// ErrDuplicate and applies nothing.
	InboxID string
}

// Query selects instances for lists and history search. Zero fields do not filter.
type Query struct {
	Component string
	Machine   string
	State     string
	Status    Status // "" = all
	ParentID  string // children of this instance
	Text      string // substring of the id or of the JSON data
	From, To  int64  // updatedAt range, ms epoch, inclusive; 0 = open
	Limit     int    // 0 = implementation default (100)
	Cursor    string // from a previous page
}

// TimerClaim asks a TimerClaimer for instances whose timers are due.
type TimerClaim struct {
	Component string
	// DueBy: instances whose earliest pending timer is due at or before DueBy (ms epoch).
	DueBy int64
	// Now (ms epoch) decides which leases have expired; LeaseUntil is the lease given to the
	// instances claimed (ms epoch).
	Now, LeaseUntil int64
	// Limit bounds how many instances are claimed (> 0).
	Limit int
}

// TimerClaimer is implemented by stores that several processes (runtimes) may share. It hands
// out instances with due timers, whichever process armed them, so that a live process fires
// the timers of one that died. Each claimed instance is leased: no other claim returns it
// before the lease ends or the instance is written again (every instance write clears the
// lease and recomputes the instance's next deadline from Instance.Timers).
//
// A claim is not a lock on the instance: the firing is an ordinary transition, protected by
// optimistic concurrency, so a process whose lease expired cannot apply a timer twice.
type TimerClaimer interface {
	// ClaimDueTimers returns the current records of up to c.Limit active instances of
	// c.Component whose earliest pending (not spent) timer is due at or before c.DueBy and
	// whose lease, if any, ended at or before c.Now, earliest deadline first, each now leased
	// until c.LeaseUntil.
	ClaimDueTimers(ctx context.Context, c TimerClaim) ([]Instance, error)
}

// LiveStreamer is implemented by stores that hand over the live instances of a component one
// by one as they read them, instead of as one slice: a restore of a million instances then
// never holds them all twice, and the engine registers the first while the rest are read.
type LiveStreamer interface {
	// StreamLive calls fn with each record LoadLive would return, in no particular order
	// (sorting them is what a database cannot do cheaply at a million rows; the engine does
	// not need it), from one goroutine. Each record is a new one, fn's to keep. An error from
	// fn stops the stream and is returned.
	StreamLive(ctx context.Context, component string, fn func(*Instance) error) error
}

// LiveRecycler is implemented by LiveStreamers that can decode rows into records handed back
// to them: a restore keeps most instances in a compact form of its own and drops the record
// it was given, and at a million instances those records and their context maps were half of
// what it allocated (docs/benchmarks.md "Restore").
type LiveRecycler interface {
	// StreamLiveReusing is StreamLive, with the records taken from the batches free delivers
	// when it has one at hand (it is never waited for). A record sent on free is no longer
	// referenced by its sender, nor its Data map, nor anything else but the values of its
	// context and its Timers (which are not reused): its Data map is cleared and reused,
	// every other field is set anew.
	StreamLiveReusing(ctx context.Context, component string, free <-chan []*Instance, fn func(*Instance) error) error
}

// LiveEstimator is implemented by stores that estimate, without reading them, how many
// records LoadLive would return for a component (PostgreSQL: the planner's estimate from its
// statistics). A restore sizes its maps from it instead of growing them a million times; a
// wrong estimate costs memory or time, never correctness.
type LiveEstimator interface {
	// EstimateLive returns the estimate, 0 when there is none.
	EstimateLive(ctx context.Context, component string) (int, error)
}

// InboxPruner is implemented by stores whose inbox (the ids of applied commits, see
// Commit.InboxID) is kept until pruned: the SQL stores. The memory store bounds its inbox by
// count instead. Package store/maintenance calls it periodically.
type InboxPruner interface {
	// PruneInbox forgets the inbox ids applied more than olderThan ago and returns how many.
	// A forgotten id no longer makes a redelivered commit a duplicate.
	PruneInbox(ctx context.Context, olderThan time.Duration) (int64, error)
}

// NextDue returns the deadline a TimerClaimer indexes an instance record under: the earliest
// pending timer of an active instance; ok is false when there is none.
func NextDue(in *Instance) (due int64, ok bool) {
	if in.Status != StatusActive {
		return 0, false
	}
	for i := range in.Timers {
		t := &in.Timers[i]
		if !t.Spent && (!ok || t.DueAt < due) {
			due, ok = t.DueAt, true
		}
	}
	return due, ok
}

// Store is durable storage for instances, their history and the outbox.
// Implementations are safe for concurrent use.
type Store interface {
	// Commit applies c atomically. It returns an error wrapping ErrConflict when an instance's
	// version is not the expected one, ErrDuplicate when InboxID was already applied.
	Commit(ctx context.Context, c *Commit) error
	// LoadLive returns the active instances of a component (and its entry-point instances in
	// any status), for restore at start.
	LoadLive(ctx context.Context, component string) ([]Instance, error)
	// Instance returns one instance record, live or not; ErrNotFound if unknown.
	Instance(ctx context.Context, id string) (Instance, error)
	// Search returns instances matching q, newest update first, and the cursor of the next page
	// ("" when there is none).
	Search(ctx context.Context, q Query) ([]Instance, string, error)
	// History returns the events of an instance, oldest first.
	History(ctx context.Context, instanceID string) ([]Event, error)
	// Correlated returns every event of a correlation, oldest first.
	Correlated(ctx context.Context, correlationID string) ([]Event, error)
	// PendingOutbox returns undelivered outbox messages written by a component, oldest first.
	PendingOutbox(ctx context.Context, component string, limit int) ([]Message, error)
	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}
