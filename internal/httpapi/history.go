package httpapi

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/store"
)

// Bounds of the causality reads: an instance's correlations scanned (most recent first) to
// find its children and to draw its sequence diagram, and children looked up.
const (
	maxCorrelations = 100
	maxChildren     = 200
)

// historyItem is one audit-trail entry in xcomponent-ai's shape (plus source and version).
type historyItem struct {
	ID                   string         `json:"id"`
	InstanceID           string         `json:"instanceId"`
	MachineName          string         `json:"machineName"`
	ComponentName        string         `json:"componentName"`
	Event                historyEvent   `json:"event"`
	StateBefore          string         `json:"stateBefore"`
	StateAfter           string         `json:"stateAfter"`
	PublicMemberSnapshot map[string]any `json:"publicMemberSnapshot"`
	// CausedBy lists the event that caused this one (an array, as in xcomponent-ai).
	CausedBy            []string `json:"causedBy"`
	CorrelationID       string   `json:"correlationId"`
	SourceComponentName string   `json:"sourceComponentName,omitempty"`
	Actor               string   `json:"actor,omitempty"`
	Source              string   `json:"source,omitempty"`
	// Note says what went wrong without undoing the transition (onEntry hook error, no handler).
	Note    string `json:"note,omitempty"`
	Version int64  `json:"version"`
	// Reason is why the operator did it, as given with the request.
	Reason string `json:"reason,omitempty"`
	// TraceID is the trace of the transition (OpenTelemetry, W3C trace id) when tracing was on.
	TraceID string `json:"traceId,omitempty"`
	// Runtime names the runtime that applied the event, when the backend knows it (the
	// distributed dashboard, see EventRuntimes).
	Runtime     string `json:"runtime,omitempty"`
	PersistedAt int64  `json:"persistedAt"`
}

type historyEvent struct {
	Type      string         `json:"type"`
	Payload   map[string]any `json:"payload"`
	Timestamp int64          `json:"timestamp"`
}

// EventRuntimes is implemented by backends that know which runtime applied each event (the
// distributed dashboard): the audit trail then names it.
type EventRuntimes interface {
	// EventRuntimes returns the runtime name of the events it knows, by event id.
	EventRuntimes(ids []string) map[string]string
}

// historyItems converts events to the audit-trail shape, with the runtime that applied each
// one when the backend knows it.
func (s *server) historyItems(evs []store.Event) []historyItem {
	out := historyItems(evs)
	if er, ok := s.b.(EventRuntimes); ok && len(out) > 0 {
		ids := make([]string, len(out))
		for i := range out {
			ids[i] = out[i].ID
		}
		names := er.EventRuntimes(ids)
		for i := range out {
			out[i].Runtime = names[out[i].ID]
		}
	}
	return out
}

func historyItems(evs []store.Event) []historyItem {
	out := make([]historyItem, len(evs))
	for i := range evs {
		e := &evs[i]
		payload, data := e.Payload, e.Data
		if payload == nil {
			payload = map[string]any{}
		}
		if data == nil {
			data = map[string]any{}
		}
		causedBy := []string{}
		if e.CausationID != "" {
			causedBy = append(causedBy, e.CausationID)
		}
		out[i] = historyItem{ID: e.ID, InstanceID: e.InstanceID, MachineName: e.Machine, ComponentName: e.Component,
			Event:       historyEvent{Type: e.Type, Payload: payload, Timestamp: e.PersistedAt},
			StateBefore: e.FromState, StateAfter: e.ToState, PublicMemberSnapshot: data, CausedBy: causedBy,
			CorrelationID: e.CorrelationID, SourceComponentName: e.SourceComponent, Actor: e.Actor,
			Source: e.Source, Note: e.Note, Reason: e.Reason, TraceID: e.TraceID, Version: e.Seq, PersistedAt: e.PersistedAt}
	}
	return out
}

// HistoryPager is implemented by backends that read one page of an instance's history
// without reading the rest (the local backend over a store.HistoryPager). The history
// endpoints fall back to slicing History for the others.
type HistoryPager interface {
	HistoryPage(ctx context.Context, instanceID string, p store.EventPage) ([]store.Event, string, error)
}

// History page sizes of the API.
const (
	defaultEventLimit = 500
	// exportPage is the page the export reads at a time: its memory, whatever the history.
	exportPage = store.MaxEventLimit
)

// eventPage reads the paging parameters of a history endpoint: limit (default 500, capped at
// 1,000), cursor (nextCursor of the previous page) and order (asc, the default, or desc).
func eventPage(v url.Values) (store.EventPage, error) {
	p := store.EventPage{Limit: defaultEventLimit, Cursor: v.Get("cursor")}
	if len(p.Cursor) > maxCursor {
		return p, badRequest("invalid cursor")
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return p, badRequest("limit %q: want a positive integer", truncate(l, 32))
		}
		p.Limit = min(n, store.MaxEventLimit)
	}
	switch o := v.Get("order"); o {
	case "", "asc":
	case "desc":
		p.Newest = true
	default:
		return p, badRequest("order %q: want asc or desc", truncate(o, 32))
	}
	return p, nil
}

// historyPage returns a page of an instance's history: the backend's own paging when it has
// one, else History sliced (the same cursors: an event's version).
func (s *server) historyPage(ctx context.Context, id string, p store.EventPage) ([]store.Event, string, error) {
	if hp, ok := s.b.(HistoryPager); ok {
		return hp.HistoryPage(ctx, id, p)
	}
	after := int64(-1)
	if p.Cursor != "" {
		seq, ok := store.DecodeEventCursor(p.Cursor)
		if !ok {
			return nil, "", badRequest("invalid cursor")
		}
		after = seq
	}
	evs, err := s.b.History(ctx, id)
	if err != nil {
		return nil, "", err
	}
	return slicePage(evs, p, after)
}

// slicePage is the page p of evs (oldest first) past the version after (-1: none).
func slicePage(evs []store.Event, p store.EventPage, after int64) ([]store.Event, string, error) {
	limit := p.EventLimit()
	out := []store.Event{}
	for k := range evs {
		i := k
		if p.Newest {
			i = len(evs) - 1 - k
		}
		e := evs[i]
		if after >= 0 && ((!p.Newest && e.Seq <= after) || (p.Newest && e.Seq >= after)) {
			continue
		}
		if len(out) == limit {
			return out, store.EncodeEventCursor(out[limit-1].Seq), nil
		}
		out = append(out, e)
	}
	return out, "", nil
}

// instancePage checks the id, that the instance exists, and returns it with a page of its
// events.
func (s *server) instancePage(ctx context.Context, id string, p store.EventPage) (xc.Instance, []store.Event, string, error) {
	if err := checkID(id); err != nil {
		return xc.Instance{}, nil, "", err
	}
	in, err := s.b.Instance(ctx, id)
	if err != nil {
		return xc.Instance{}, nil, "", err
	}
	evs, next, err := s.historyPage(ctx, id, p)
	return in, evs, next, err
}

// handleHistory answers a page of an instance's audit trail: {history, nextCursor}, oldest
// first unless order=desc.
func (s *server) handleHistory(w http.ResponseWriter, r *http.Request) error {
	p, err := eventPage(r.URL.Query())
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	_, evs, next, err := s.instancePage(ctx, pathID(r), p)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"history": s.historyItems(evs), "nextCursor": next})
}

// handleHistoryEvents answers {snapshot, events, nextCursor}: the snapshot in xcomponent-ai's
// shape ({instance, snapshotAt, lastEventId}) and a page of the events of the audit trail.
func (s *server) handleHistoryEvents(w http.ResponseWriter, r *http.Request) error {
	p, err := eventPage(r.URL.Query())
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	in, evs, next, err := s.instancePage(ctx, pathID(r), p)
	if err != nil {
		return err
	}
	last := ""
	switch {
	case p.Newest && p.Cursor == "" && len(evs) > 0:
		last = evs[0].ID
	case !p.Newest && next == "" && len(evs) > 0:
		last = evs[len(evs)-1].ID
	default: // the latest event is on another page: read it alone
		latest, _, err := s.historyPage(ctx, in.ID, store.EventPage{Limit: 1, Newest: true})
		if err != nil {
			return err
		}
		if len(latest) > 0 {
			last = latest[0].ID
		}
	}
	return writeJSON(w, http.StatusOK, map[string]any{
		"snapshot":   map[string]any{"instance": item(in), "snapshotAt": in.UpdatedAt, "lastEventId": last},
		"events":     s.historyItems(evs),
		"nextCursor": next,
	})
}

// handleHistoryExport streams an instance's whole audit trail, oldest first, as JSON
// ({history: [...]}, the shape of GET /api/instances/:id/history) or CSV (format=csv): page
// after page of exportPage events, each written and flushed before the next is read, so that
// the server holds one page whatever the length of the history.
func (s *server) handleHistoryExport(w http.ResponseWriter, r *http.Request) error {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "csv" {
		return badRequest("format %q: want json or csv", truncate(format, 32))
	}
	id := pathID(r)
	ctx, cancel := s.ctx(r)
	_, first, next, err := s.instancePage(ctx, id, store.EventPage{Limit: exportPage})
	cancel()
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=\"history-%s.%s\"", id, format))
	if format == "csv" {
		h.Set("Content-Type", "text/csv; charset=utf-8")
	} else {
		h.Set("Content-Type", "application/json")
	}
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	rc := http.NewResponseController(w)
	var cw *csv.Writer
	enc := json.NewEncoder(bw)
	if format == "csv" {
		cw = csv.NewWriter(bw)
		_ = cw.Write([]string{"time", "event", "from", "to", "actor", "reason", "sourceComponent", "runtime", "traceId", "correlationId", "version", "payload"})
	} else {
		_, _ = bw.WriteString(`{"history":[`)
	}
	n := 0
	for evs := first; ; {
		for _, it := range s.historyItems(evs) {
			if cw != nil {
				payload, _ := json.Marshal(it.Event.Payload)
				_ = cw.Write([]string{time.UnixMilli(it.Event.Timestamp).UTC().Format(time.RFC3339Nano), it.Event.Type, it.StateBefore,
					it.StateAfter, it.Actor, it.Reason, it.SourceComponentName, it.Runtime, it.TraceID, it.CorrelationID,
					strconv.FormatInt(it.Version, 10), string(payload)})
				continue
			}
			if n > 0 {
				_ = bw.WriteByte(',')
			}
			n++
			if err := enc.Encode(it); err != nil {
				return nil // the answer has begun: the client sees a truncated body
			}
		}
		if cw != nil {
			cw.Flush()
		}
		if err := bw.Flush(); err != nil {
			return nil // the client left
		}
		_ = rc.Flush()
		if next == "" {
			break
		}
		pctx, cancel := s.ctx(r)
		evs, next, err = s.historyPage(pctx, id, store.EventPage{Limit: exportPage, Cursor: next})
		cancel()
		if err != nil {
			// Headers are sent: end the body so that it does not parse, and log why.
			s.log.Warn("history export interrupted", "instance", id, "error", err)
			_, _ = bw.WriteString("\nexport interrupted: " + err.Error() + "\n")
			_ = bw.Flush()
			return nil
		}
	}
	if cw == nil {
		_, _ = bw.WriteString("]}\n")
	}
	_ = bw.Flush()
	return nil
}

// historyInstance is one entry of GET /api/history/instances, snake_case as xcomponent-ai.
type historyInstance struct {
	InstanceID    string         `json:"instance_id"`
	ComponentName string         `json:"component_name"`
	MachineName   string         `json:"machine_name"`
	CurrentState  string         `json:"current_state"`
	Status        store.Status   `json:"status"`
	Context       map[string]any `json:"context"`
	// EventCount is the creation plus the transitions (version + 1).
	EventCount int   `json:"event_count"`
	CreatedAt  int64 `json:"created_at"`
	UpdatedAt  int64 `json:"updated_at"`
}

func (s *server) handleHistoryInstances(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r.URL.Query())
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	ins, next, err := s.b.Search(ctx, q)
	if err != nil {
		return err
	}
	out := make([]historyInstance, len(ins))
	for i, in := range ins {
		out[i] = historyInstance{InstanceID: in.ID, ComponentName: in.ComponentName, MachineName: in.MachineName,
			CurrentState: in.CurrentState, Status: in.Status, Context: in.Context, EventCount: int(in.Version) + 1,
			CreatedAt: in.CreatedAt, UpdatedAt: in.UpdatedAt}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"instances": out, "nextCursor": next})
}

// handleCorrelated answers every event of a correlation. The id may also be an instance's:
// then the events of every correlation the instance took part in (its causal neighbourhood).
func (s *server) handleCorrelated(w http.ResponseWriter, r *http.Request) error {
	id := pathID(r)
	if err := checkID(id); err != nil {
		return err
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	evs, err := s.b.Correlated(ctx, id)
	if err != nil {
		return err
	}
	evs = causalOrder(evs)
	ids := []string{id}
	if len(evs) == 0 {
		hist, err := s.recentHistory(ctx, id)
		if err != nil {
			return err
		}
		if len(hist) > 0 {
			if evs, ids, err = s.related(ctx, hist); err != nil {
				return err
			}
		}
	}
	if len(ids) == 0 {
		ids = []string{id}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"events": s.historyItems(evs), "correlationId": ids[0], "correlationIds": ids})
}

// recentHistory returns the latest events of an instance (one page of the largest size),
// oldest first: where its recent correlations are found, whatever the length of its history.
func (s *server) recentHistory(ctx context.Context, id string) ([]store.Event, error) {
	evs, _, err := s.historyPage(ctx, id, store.EventPage{Limit: store.MaxEventLimit, Newest: true})
	slices.Reverse(evs)
	return evs, err
}

// correlations returns the distinct correlation ids of events, most recent first, at most n.
func correlations(evs []store.Event, n int) []string {
	seen := map[string]bool{}
	var out []string
	for i := len(evs) - 1; i >= 0 && len(out) < n; i-- {
		if c := evs[i].CorrelationID; c != "" && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

// related returns the events of the correlations an instance's history took part in,
// oldest first, each once, and those correlation ids (oldest first).
func (s *server) related(ctx context.Context, hist []store.Event) ([]store.Event, []string, error) {
	ids := correlations(hist, maxCorrelations)
	for i, j := 0, len(ids)-1; i < j; i, j = i+1, j-1 {
		ids[i], ids[j] = ids[j], ids[i]
	}
	seen := map[string]bool{}
	var out []store.Event
	for _, c := range ids {
		evs, err := s.b.Correlated(ctx, c)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range evs {
			if !seen[e.ID] {
				seen[e.ID] = true
				out = append(out, e)
			}
		}
	}
	if ids == nil {
		ids = []string{}
	}
	return causalOrder(out), ids, nil
}

// causalOrder sorts events by time and, among events of the same millisecond, puts each
// event after the one that caused it (store order within a millisecond is by id, and fan-out
// ids are not time-ordered).
func causalOrder(evs []store.Event) []store.Event {
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].PersistedAt < evs[j].PersistedAt })
	idx := make(map[string]int, len(evs))
	for i := range evs {
		idx[evs[i].ID] = i
	}
	out := make([]store.Event, 0, len(evs))
	done := make([]bool, len(evs))
	var visit func(i int)
	visit = func(i int) {
		if done[i] {
			return
		}
		done[i] = true
		if c := evs[i].CausationID; c != "" {
			if j, ok := idx[c]; ok && evs[j].PersistedAt == evs[i].PersistedAt {
				visit(j)
			}
		}
		out = append(out, evs[i])
	}
	for i := range evs {
		visit(i)
	}
	return out
}

// children lists the instances created with in as their parent (the first maxChildren).
func (s *server) children(ctx context.Context, in xc.Instance) ([]instanceRef, error) {
	kids, _, err := s.b.Search(ctx, store.Query{ParentID: in.ID, Limit: maxChildren})
	if err != nil {
		return nil, err
	}
	out := make([]instanceRef, 0, len(kids))
	for _, k := range kids {
		out = append(out, *ref(k))
	}
	return out, nil
}
