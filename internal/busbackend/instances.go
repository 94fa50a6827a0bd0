package busbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/internal/httpapi"
	"github.com/xcomponent/xcomponent/internal/wiremap"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/wire"
)

// instEntry is one instance of the live view.
type instEntry struct {
	in xc.Instance
	// runtimeID is the runtime that sent the latest update applied.
	runtimeID string
	// foreign: the latest update came from a runtime that does not share our database
	// (an xcomponent-ai runtime): the instance is known from the bus only.
	foreign bool
}

// update is one piece of news about an instance, from an event or a query response.
type update struct {
	runtimeID, component string
	foreign              bool
	ts                   int64
	id, machine, state   string
	status               store.Status
	context              map[string]any
	timeouts             []xc.PendingTimeout
	setTimeouts          bool
	version              int64
	parentID             string
	created              bool
}

// apply merges u into the live view and reports whether it was newer than what the view held.
//
// Ordering: our runtimes carry the instance's version (the number of transitions, the same in
// every replica since they share the database): an update with a lower version than the view's
// is stale (another replica's, or a reordering between channels) and dropped. Runtimes that
// send no version (xcomponent-ai) are ordered by timestamp.
func (b *Backend) apply(u update) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.instances[u.id]
	if e != nil {
		cur := &e.in
		if u.created {
			// A creation never overrides later news (the channels are not ordered between
			// them): it only fills in what the view could not know.
			if u.ts > 0 && u.ts < cur.CreatedAt {
				cur.CreatedAt = u.ts
			}
			cur.ParentInstanceID = firstOf(cur.ParentInstanceID, u.parentID)
			return false
		}
		if u.version > 0 || cur.Version > 0 {
			if u.version < cur.Version {
				return false
			}
		} else if u.ts < cur.UpdatedAt {
			return false
		}
	} else {
		e = &instEntry{in: xc.Instance{ID: u.id, CreatedAt: u.ts, Status: store.StatusActive, PendingTimeouts: []xc.PendingTimeout{}}}
		b.instances[u.id] = e
	}
	in := &e.in
	in.ComponentName = firstOf(u.component, in.ComponentName)
	in.MachineName = firstOf(u.machine, in.MachineName)
	in.CurrentState = firstOf(u.state, in.CurrentState)
	if u.status != "" {
		in.Status = u.status
	}
	if u.context != nil {
		in.Context = u.context
	}
	if in.Context == nil {
		in.Context = map[string]any{}
	}
	if u.setTimeouts {
		in.PendingTimeouts = append([]xc.PendingTimeout{}, u.timeouts...)
	}
	if u.parentID != "" {
		in.ParentInstanceID = u.parentID
	}
	if u.created && u.ts > 0 && (in.CreatedAt == 0 || u.ts < in.CreatedAt) {
		in.CreatedAt = u.ts
	}
	if u.ts > in.UpdatedAt {
		in.UpdatedAt = u.ts
	}
	if u.version > in.Version {
		in.Version = u.version
	}
	e.runtimeID, e.foreign = u.runtimeID, u.foreign
	return true
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// isForeign says whether a runtime does not share our database (it announced none of our
// additions). Unknown runtimes are assumed to be ours.
func (b *Backend) isForeign(runtimeID string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.runtimes[runtimeID]
	return b.cfg.Store == nil || (r != nil && !r.ours)
}

// onEvent handles the fsm:events:* channels (decoded by wiremap, ours and xcomponent-ai's):
// live view, audit trail, command waiters, feed.
func (b *Backend) onEvent(_ context.Context, m bus.Message) error {
	in, err := wiremap.Decode(m.Channel, m.Body)
	if err != nil {
		b.log.Warn("runtime event ignored", "channel", m.Channel, "body", truncate(m.Body), "err", err)
		return nil
	}
	ev := in.Event
	b.seen(sighting{id: in.RuntimeID, name: in.RuntimeName, component: ev.Component})
	if ev.Timestamp == 0 {
		ev.Timestamp = wire.Now()
	}
	ts := ev.Timestamp
	rname := b.runtimeName(in.RuntimeID, in.RuntimeName)
	base := update{runtimeID: in.RuntimeID, component: ev.Component, foreign: b.isForeign(in.RuntimeID), ts: ts}
	switch d := ev.Data.(type) {
	case xc.InstanceCreated:
		u := base
		u.id, u.machine, u.state, u.context, u.version, u.parentID, u.created = d.InstanceID, d.MachineName, d.CurrentState, d.Context, d.Version, d.ParentInstanceID, true
		u.status = firstStatus(d.Status, store.StatusActive)
		u.timeouts, u.setTimeouts = []xc.PendingTimeout{}, true
		b.apply(u)
		b.trail(store.Event{ID: firstOf(in.Trace.CommandID, in.Trace.CorrelationID), InstanceID: d.InstanceID, Component: ev.Component,
			Machine: d.MachineName, Type: store.EventCreated, ToState: d.CurrentState, Data: d.Context,
			CorrelationID: in.Trace.CorrelationID, Source: string(xc.SourceBroker), PersistedAt: ts}, rname)
		b.matchCreated(in, d)
	case xc.StateChanged:
		u := base
		u.id, u.machine, u.state, u.context, u.version = d.InstanceID, d.MachineName, d.NewState, d.Context, d.Version
		u.timeouts, u.setTimeouts = d.PendingTimeouts, true
		u.status = d.Status
		b.apply(u)
		b.trail(store.Event{ID: d.Event.ID, InstanceID: d.InstanceID, Component: ev.Component, Machine: d.MachineName,
			Type: d.Event.Type, Payload: d.Event.Payload, FromState: d.PreviousState, ToState: d.NewState, Data: d.Context,
			CorrelationID: d.Event.CorrelationID, CausationID: d.Event.CausationID,
			Actor: d.Event.Actor, Source: string(d.Event.Source), Seq: d.Version, PersistedAt: ts}, rname)
		b.matchStateChange(in, d)
	case xc.InstanceCompleted:
		u := base
		u.id, u.machine, u.state, u.context, u.version = d.InstanceID, d.MachineName, d.FinalState, d.Context, d.Version
		u.status = firstStatus(d.Status, store.StatusCompleted)
		// Completion comes with the transition's version: the same version as the state_change
		// that preceded it; never let it be dropped as stale.
		b.applyCompletion(u)
	case xc.TimeoutFired:
		// The transition it fired comes as a state_change.
	default:
		return nil
	}
	ev.Data = httpapi.FromRuntime{Event: ev.Data, RuntimeID: in.RuntimeID, RuntimeName: rname}
	b.feed.emit(ev)
	return nil
}

func firstStatus(s, def store.Status) store.Status {
	if s == "" {
		return def
	}
	return s
}

// applyCompletion marks an instance completed (or in error) unless a newer version is known.
func (b *Backend) applyCompletion(u update) {
	b.mu.Lock()
	e := b.instances[u.id]
	if e != nil && u.version > 0 && u.version < e.in.Version {
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	if e == nil {
		b.apply(u)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e.in.Status = u.status
	e.in.CurrentState = firstOf(u.state, e.in.CurrentState)
	if u.context != nil {
		e.in.Context = u.context
	}
	e.in.PendingTimeouts = []xc.PendingTimeout{}
	if u.ts > e.in.UpdatedAt {
		e.in.UpdatedAt = u.ts
	}
}

// runtimeName is the name to show for a runtime: the one it sent, else the registry's, else
// its id.
func (b *Backend) runtimeName(id, sent string) string {
	if sent != "" {
		return sent
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if r := b.runtimes[id]; r != nil && r.name != "" {
		return r.name
	}
	return id
}

// trail records an event of the live audit trail (used without database) and which runtime
// applied it (shown in the audit trail with or without database).
func (b *Backend) trail(ev store.Event, runtimeName string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ev.ID != "" && runtimeName != "" {
		if _, ok := b.runtimeOf[ev.ID]; !ok {
			b.runtimeIDs = append(b.runtimeIDs, ev.ID)
			if len(b.runtimeIDs) > maxRuntimeOf {
				drop := b.runtimeIDs[0]
				b.runtimeIDs = b.runtimeIDs[1:]
				delete(b.runtimeOf, drop)
			}
		}
		b.runtimeOf[ev.ID] = runtimeName
	}
	if b.cfg.Store != nil {
		return
	}
	t := b.trails[ev.InstanceID]
	// A copy redelivered after a reconnection (the subscription queues outlive the
	// connection) is recorded once.
	for i := len(t) - 1; i >= 0 && i >= len(t)-8; i-- {
		if ev.ID != "" && t[i].ID == ev.ID && t[i].Type == ev.Type && t[i].Seq == ev.Seq {
			return
		}
	}
	if len(t) >= maxTrail {
		t = t[1:]
	}
	b.trails[ev.InstanceID] = append(t, ev)
}

// EventRuntimes implements httpapi.EventRuntimes: the runtime that applied each event, for the
// events seen on the bus since the dashboard started.
func (b *Backend) EventRuntimes(ids []string) map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]string, len(ids))
	for _, id := range ids {
		if n, ok := b.runtimeOf[id]; ok {
			out[id] = n
		}
	}
	return out
}

func (b *Backend) onQueryResponse(_ context.Context, m bus.Message) error {
	r, err := wire.Decode[wire.QueryResponse](m.Body)
	if err != nil || r.RuntimeID == "" {
		b.log.Warn("query response ignored: undecodable or without runtimeId", "body", truncate(m.Body), "err", err)
		return nil
	}
	b.seen(sighting{id: r.RuntimeID, name: r.RuntimeName, component: r.ComponentName})
	foreign := b.isForeign(r.RuntimeID)
	ts := r.Timestamp
	if ts == 0 {
		ts = wire.Now()
	}
	for _, snap := range r.Instances {
		if snap.ID == "" {
			continue
		}
		v := wiremap.InstanceView(r.ComponentName, snap, ts)
		b.apply(update{runtimeID: r.RuntimeID, component: r.ComponentName, foreign: foreign, ts: ts,
			id: v.ID, machine: v.MachineName, state: v.CurrentState, context: v.Context, status: v.Status,
			timeouts: v.PendingTimeouts, setTimeouts: true, version: v.Version})
	}
	return nil
}

// ---- reads ----

// Instance implements httpapi.Backend: from the database when there is one, else (or for
// instances it does not hold) from the live view.
func (b *Backend) Instance(ctx context.Context, id string) (xc.Instance, error) {
	if st := b.cfg.Store; st != nil {
		rec, err := st.Instance(ctx, id)
		if err == nil {
			return xc.View(&rec, b.publicMember(rec.Component, rec.Machine), b.clk.Now().UnixMilli()), nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			if in, ok := b.cached(id); ok {
				return in, nil
			}
			return xc.Instance{}, storeErr("instance", err)
		}
	}
	if in, ok := b.cached(id); ok {
		return in, nil
	}
	return xc.Instance{}, fmt.Errorf("instance %s: %w", id, xc.ErrNotFound)
}

func (b *Backend) cached(id string) (xc.Instance, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.instances[id]
	if e == nil {
		return xc.Instance{}, false
	}
	return b.view(e), true
}

// view copies an entry for a caller, with publicMember set as the engine does.
func (b *Backend) view(e *instEntry) xc.Instance {
	in := e.in
	in.PendingTimeouts = append([]xc.PendingTimeout{}, in.PendingTimeouts...)
	if c := b.components[in.ComponentName]; c != nil {
		if m := c.def.Machine(in.MachineName); m != nil && m.PublicMemberType != "" {
			in.PublicMember = in.Context
		}
	}
	return in
}

func (b *Backend) publicMember(comp, machine string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.components[comp]; c != nil {
		if m := c.def.Machine(machine); m != nil {
			return m.PublicMemberType != ""
		}
	}
	return false
}

// Search implements httpapi.Backend. With a database, the database answers and the first
// page also lists the matching instances known only from the bus (runtimes that do not
// share it); without one, the live view answers.
func (b *Backend) Search(ctx context.Context, q store.Query) ([]xc.Instance, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	if st := b.cfg.Store; st != nil {
		recs, next, err := st.Search(ctx, q)
		if err != nil {
			return nil, "", storeErr("search", err)
		}
		now := b.clk.Now().UnixMilli()
		out := make([]xc.Instance, 0, len(recs))
		seen := make(map[string]bool, len(recs))
		for i := range recs {
			out = append(out, xc.View(&recs[i], b.publicMember(recs[i].Component, recs[i].Machine), now))
			seen[recs[i].ID] = true
		}
		if q.Cursor == "" {
			for _, in := range b.searchCache(q, true) {
				if !seen[in.ID] && len(out) < limit {
					out = append(out, in)
				}
			}
		}
		return out, next, nil
	}
	all := b.searchCache(q, false)
	start := 0
	if q.Cursor != "" {
		start = -1
		for i, in := range all {
			if cursorOf(in) == q.Cursor {
				start = i + 1
				break
			}
		}
		if start < 0 {
			return nil, "", fmt.Errorf("search: %w: bad cursor", httpapi.ErrInvalid)
		}
	}
	all = all[start:]
	next := ""
	if len(all) > limit {
		all = all[:limit]
		next = cursorOf(all[limit-1])
	}
	return all, next, nil
}

func cursorOf(in xc.Instance) string { return fmt.Sprintf("%d_%s", in.UpdatedAt, in.ID) }

// searchCache filters the live view with q, newest update first; foreignOnly keeps the
// instances known from the bus only.
func (b *Backend) searchCache(q store.Query, foreignOnly bool) []xc.Instance {
	b.mu.Lock()
	var out []xc.Instance
	for _, e := range b.instances {
		if foreignOnly && !e.foreign {
			continue
		}
		in := &e.in
		if (q.Component != "" && in.ComponentName != q.Component) || (q.Machine != "" && in.MachineName != q.Machine) ||
			(q.State != "" && in.CurrentState != q.State) || (q.Status != "" && in.Status != q.Status) ||
			(q.ParentID != "" && in.ParentInstanceID != q.ParentID) ||
			(q.From > 0 && in.UpdatedAt < q.From) || (q.To > 0 && in.UpdatedAt > q.To) {
			continue
		}
		if q.Text != "" && !matchesText(in, q.Text) {
			continue
		}
		out = append(out, b.view(e))
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].UpdatedAt != out[j].UpdatedAt {
			return out[i].UpdatedAt > out[j].UpdatedAt
		}
		return out[i].ID > out[j].ID
	})
	return out
}

func matchesText(in *xc.Instance, text string) bool {
	t := strings.ToLower(text)
	if strings.Contains(strings.ToLower(in.ID), t) {
		return true
	}
	data, _ := json.Marshal(in.Context)
	return strings.Contains(strings.ToLower(string(data)), t)
}

// History implements httpapi.Backend: the database's audit trail, else the live one.
func (b *Backend) History(ctx context.Context, id string) ([]store.Event, error) {
	if st := b.cfg.Store; st != nil {
		evs, err := st.History(ctx, id)
		if err != nil {
			return nil, storeErr("history", err)
		}
		if len(evs) > 0 {
			return evs, nil
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]store.Event{}, b.trails[id]...), nil
}

// Correlated implements httpapi.Backend.
func (b *Backend) Correlated(ctx context.Context, id string) ([]store.Event, error) {
	if st := b.cfg.Store; st != nil {
		evs, err := st.Correlated(ctx, id)
		if err != nil {
			return nil, storeErr("correlated events", err)
		}
		return evs, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []store.Event
	for _, t := range b.trails {
		for _, e := range t {
			if e.CorrelationID == id {
				out = append(out, e)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].PersistedAt < out[j].PersistedAt })
	return out, nil
}

// storeErr classifies a database read error: a bad cursor is the client's fault, anything
// else means the database is unavailable.
func storeErr(what string, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, store.ErrBadCursor):
		return fmt.Errorf("%s: %w: bad cursor", what, httpapi.ErrInvalid)
	default:
		return fmt.Errorf("%s: %w: %v", what, xc.ErrStore, err)
	}
}

var _ httpapi.Counter = (*Backend)(nil)

// Counts implements httpapi.Counter: the database's counts plus the instances known only
// from the bus; without a database, the live view's (exact for what the bus reported).
func (b *Backend) Counts(ctx context.Context, comp string) ([]store.StatusCount, bool, error) {
	type key struct {
		machine, state string
		status         store.Status
	}
	counts := map[key]int{}
	foreignOnly := false
	exact := true
	if c, ok := b.cfg.Store.(store.Counter); ok {
		rows, err := c.CountStates(ctx, comp)
		if err != nil {
			return nil, false, storeErr("count", err)
		}
		for _, r := range rows {
			counts[key{r.Machine, r.State, r.Status}] += r.Count
		}
		foreignOnly = true
	} else if b.cfg.Store != nil {
		exact = false
	}
	b.mu.Lock()
	for _, e := range b.instances {
		if e.in.ComponentName != comp || (foreignOnly && !e.foreign) {
			continue
		}
		counts[key{e.in.MachineName, e.in.CurrentState, e.in.Status}]++
	}
	b.mu.Unlock()
	out := make([]store.StatusCount, 0, len(counts))
	for k, n := range counts {
		out = append(out, store.StatusCount{Machine: k.machine, State: k.state, Status: k.status, Count: n})
	}
	return out, exact, nil
}
