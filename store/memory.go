package store

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/xcomponent/xcomponent/store/internal/cursor"
)

// Memory is an in-memory Store: the default for tests, `simulate` and `--store memory`.
// No other process can share it, so it is no store.TimerClaimer: its engine fires every timer.
// It keeps nothing across restarts. It is built to be lean: one entry per instance, events
// without the fields the entry has.
//
// Its memory is bounded (see MemoryOption): it keeps the latest events of each instance (its
// creation event always) and the latest completed instances, so that a process under a
// steady load does not grow. History and Correlated return what is kept.
type Memory struct {
	mu      sync.RWMutex
	entries map[string]*memEntry
	// history bounds the events kept per instance besides its creation (0: all).
	history int
	// completedMax bounds the completed (or failed) instances kept (0: all); completed lists
	// their ids in completion order, oldest first (ids that were forgotten meanwhile or are
	// entry points are skipped when their turn comes).
	completedMax  int
	completed     []string
	completedHead int // completed[:completedHead] were handled
	nCompleted    int
	outbox        map[string]Message
	outboxSeq     []string // insertion order of outbox ids
	inbox         map[string]struct{}
	inboxFIFO     []string // inbox ids in arrival order; the oldest are forgotten past memoryInboxSize
	// entry is the entry-point instance of each component and machine.
	entry map[string]string
}

type memEntry struct {
	rec *Instance // shared with the writer: records are immutable
	// first is the creation event, kept inline; hist holds the later events in chunks of
	// growing size (2, 4 … 256) that are never copied: a long history costs no reallocation.
	// Once the history holds as many events as the store keeps, they move to ring, whose
	// oldest event (at rstart) each new one replaces: a full history allocates nothing.
	first  memEvent
	hist   [][]memEvent
	ring   []memEvent
	rstart int
	n      int // events held, first included
}

// append adds an event; limit > 0 keeps at most limit events besides the creation event,
// dropping the oldest.
func (en *memEntry) append(e memEvent, limit int) {
	if en.n == 0 {
		en.first = e
		en.n++
		return
	}
	if en.ring != nil {
		en.ring[en.rstart] = e
		en.rstart = (en.rstart + 1) % len(en.ring)
		return
	}
	if limit > 0 && en.n-1 == limit {
		ring := make([]memEvent, 0, limit)
		for _, c := range en.hist {
			ring = append(ring, c...)
		}
		en.hist = nil
		en.ring = ring
		en.ring[0] = e
		en.rstart = 1 % limit
		return
	}
	k := len(en.hist)
	if k == 0 || len(en.hist[k-1]) == cap(en.hist[k-1]) {
		size := 256
		if k < 7 {
			size = 2 << k
		}
		if limit > 0 {
			size = min(size, limit-(en.n-1))
		}
		en.hist = append(en.hist, make([]memEvent, 0, size))
		k++
	}
	en.hist[k-1] = append(en.hist[k-1], e)
	en.n++
}

// each calls f with every event kept, in order.
func (en *memEntry) each(f func(m *memEvent)) {
	if en.n == 0 {
		return
	}
	f(&en.first)
	if en.ring != nil {
		for i := range en.ring {
			f(&en.ring[(en.rstart+i)%len(en.ring)])
		}
		return
	}
	for _, c := range en.hist {
		for i := range c {
			f(&c[i])
		}
	}
}

// memEvent is an Event less InstanceID, Component and Machine (those of its entry). A
// creation event whose payload is the standard one keeps only its trigger, in Type; the
// payload is rebuilt on read.
type memEvent struct {
	ID, Type                                                   string
	Payload                                                    map[string]any
	FromState, ToState                                         string
	Data                                                       map[string]any
	SourceComponent, CorrelationID, CausationID, Actor, Source string
	Note, TraceID, Reason                                      string
	Seq, PersistedAt                                           int64
	standardCreation                                           bool
}

// memoryInboxSize is how many applied command ids the memory store remembers.
const memoryInboxSize = 100_000

// Retention defaults of the memory store.
const (
	// DefaultMemoryHistory is how many events of each instance the memory store keeps
	// besides its creation event.
	DefaultMemoryHistory = 1000
	// DefaultMemoryCompleted is how many completed (or failed) instances it keeps.
	DefaultMemoryCompleted = 10_000
)

// MemoryOption configures NewMemory.
type MemoryOption func(*Memory)

// WithHistoryLimit keeps at most n events per instance besides its creation event (the
// oldest are dropped); n <= 0 keeps every event. Default DefaultMemoryHistory.
func WithHistoryLimit(n int) MemoryOption { return func(m *Memory) { m.history = max(n, 0) } }

// WithCompletedLimit keeps at most n completed or failed instances, with their history (the
// ones that completed first are forgotten; entry points are kept); n <= 0 keeps them all.
// Default DefaultMemoryCompleted.
func WithCompletedLimit(n int) MemoryOption { return func(m *Memory) { m.completedMax = max(n, 0) } }

// NewMemory returns an empty in-memory store.
func NewMemory(opts ...MemoryOption) *Memory {
	m := &Memory{
		entries:      make(map[string]*memEntry),
		outbox:       make(map[string]Message),
		inbox:        make(map[string]struct{}),
		entry:        make(map[string]string),
		history:      DefaultMemoryHistory,
		completedMax: DefaultMemoryCompleted,
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

func entryKey(in *Instance) string { return in.Component + "\x00" + in.Machine }

func toMemEvent(e *Event, rec *Instance) memEvent {
	m := memEvent{ID: e.ID, Type: e.Type, Payload: e.Payload, FromState: e.FromState, ToState: e.ToState,
		Data: e.Data, SourceComponent: e.SourceComponent, CorrelationID: e.CorrelationID,
		CausationID: e.CausationID, Actor: e.Actor, Source: e.Source, Note: e.Note, TraceID: e.TraceID, Reason: e.Reason, Seq: e.Seq, PersistedAt: e.PersistedAt}
	if e.Type == EventCreated && isStandardCreation(e.Payload, e.Data, rec) {
		m.Type, _ = e.Payload["triggerEvent"].(string)
		m.standardCreation = true
		m.Payload = nil
	}
	return m
}

// isStandardCreation reports whether a creation payload is exactly what CreationPayload builds.
func isStandardCreation(p map[string]any, data map[string]any, rec *Instance) bool {
	if _, ok := p["triggerEvent"].(string); !ok {
		return false
	}
	want := 2
	if rec.ParentID != "" {
		want = 4
		if p["parentInstanceId"] != rec.ParentID || p["parentMachineName"] != rec.ParentMachine {
			return false
		}
	}
	ic, ok := p["initialContext"].(map[string]any)
	return ok && len(p) == want && sameMap(ic, data)
}

// sameMap reports whether a and b are the same map (not merely equal).
func sameMap(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// CreationPayload is the payload of an INSTANCE_CREATED event (storage.md).
func CreationPayload(data map[string]any, trigger, parentID, parentMachine string) map[string]any {
	p := map[string]any{"initialContext": data, "triggerEvent": trigger}
	if parentID != "" {
		p["parentInstanceId"] = parentID
		p["parentMachineName"] = parentMachine
	}
	return p
}

func (en *memEntry) event(m *memEvent) Event {
	e := Event{ID: m.ID, InstanceID: en.rec.ID, Component: en.rec.Component, Machine: en.rec.Machine,
		Type: m.Type, Payload: m.Payload, FromState: m.FromState, ToState: m.ToState, Data: m.Data,
		SourceComponent: m.SourceComponent, CorrelationID: m.CorrelationID, CausationID: m.CausationID,
		Actor: m.Actor, Source: m.Source, Note: m.Note, TraceID: m.TraceID, Reason: m.Reason, Seq: m.Seq, PersistedAt: m.PersistedAt}
	if m.standardCreation {
		e.Type = EventCreated
		e.Payload = CreationPayload(m.Data, m.Type, en.rec.ParentID, en.rec.ParentMachine)
	}
	return e
}

// KeepsRecords implements RecordKeeper: the memory store keeps the records it is given.
func (m *Memory) KeepsRecords() bool { return true }

// Commit implements Store.
func (m *Memory) Commit(_ context.Context, c *Commit) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.InboxID != "" {
		if _, dup := m.inbox[c.InboxID]; dup {
			return fmt.Errorf("commit %s: %w", c.InboxID, ErrDuplicate)
		}
	}
	// A commit usually writes one instance and its event: its entry is looked up once.
	var lastID string
	var lastEn *memEntry
	entry := func(id string) (*memEntry, bool) {
		if lastEn != nil && id == lastID {
			return lastEn, true
		}
		en, ok := m.entries[id]
		if ok {
			lastID, lastEn = id, en
		}
		return en, ok
	}
	for i := range c.Instances {
		w := &c.Instances[i]
		cur, ok := entry(w.Instance.ID)
		switch {
		case w.ExpectVersion < 0 && ok:
			return fmt.Errorf("create instance %s: exists: %w", w.Instance.ID, ErrConflict)
		case w.ExpectVersion >= 0 && !ok:
			return fmt.Errorf("update instance %s: %w", w.Instance.ID, ErrNotFound)
		case w.ExpectVersion >= 0 && cur.rec.Version != w.ExpectVersion:
			return fmt.Errorf("update instance %s: version %d, expected %d: %w",
				w.Instance.ID, cur.rec.Version, w.ExpectVersion, ErrConflict)
		}
		if in := w.Instance; w.ExpectVersion < 0 && in.IsEntryPoint {
			if other, exists := m.entry[entryKey(in)]; exists && other != in.ID {
				return fmt.Errorf("create instance %s: machine %s of component %s has entry point %s: %w",
					in.ID, in.Machine, in.Component, other, ErrEntryPointExists)
			}
		}
	}
	for _, id := range c.Consumed {
		if _, ok := m.outbox[id]; !ok {
			// Another delivery of the same message won: applying this one would apply it twice.
			return fmt.Errorf("outbox message %s: already delivered: %w", id, ErrDuplicate)
		}
	}
	for _, e := range c.Events {
		if _, ok := entry(e.InstanceID); !ok && !commitCreates(c, e.InstanceID) {
			return fmt.Errorf("event %s: instance %s: %w", e.ID, e.InstanceID, ErrNotFound)
		}
	}
	if c.InboxID != "" {
		m.inbox[c.InboxID] = struct{}{}
		m.inboxFIFO = append(m.inboxFIFO, c.InboxID)
		if len(m.inboxFIFO) >= 2*memoryInboxSize {
			// Redeliveries come soon after the first delivery; remembering the last ids
			// is enough, and keeps a long-running memory store bounded.
			old := m.inboxFIFO[:memoryInboxSize]
			for _, id := range old {
				delete(m.inbox, id)
			}
			m.inboxFIFO = append(m.inboxFIFO[:0], m.inboxFIFO[len(old):]...)
		}
	}
	for i := range c.Instances {
		w := &c.Instances[i]
		done := w.Instance.Status != StatusActive
		if cur, ok := entry(w.Instance.ID); ok {
			done = done && cur.rec.Status == StatusActive
			cur.rec = w.Instance
		} else {
			en := &memEntry{rec: w.Instance}
			m.entries[w.Instance.ID] = en
			lastID, lastEn = w.Instance.ID, en
		}
		if w.Instance.IsEntryPoint {
			m.entry[entryKey(w.Instance)] = w.Instance.ID
		}
		if done && !w.Instance.IsEntryPoint {
			m.completed = append(m.completed, w.Instance.ID)
			m.nCompleted++
		}
	}
	for i := range c.Events {
		e := &c.Events[i]
		en, _ := entry(e.InstanceID)
		en.append(toMemEvent(e, en.rec), m.history)
	}
	m.forgetCompleted()
	for _, msg := range c.Outbox {
		if _, again := m.outbox[msg.ID]; !again {
			m.outboxSeq = append(m.outboxSeq, msg.ID)
		}
		m.outbox[msg.ID] = msg
	}
	for _, id := range c.Consumed {
		delete(m.outbox, id)
	}
	m.compactOutbox()
	return nil
}

// forgetCompleted forgets the instances that completed first while more than completedMax
// are kept.
func (m *Memory) forgetCompleted() {
	if m.completedMax <= 0 {
		return
	}
	for m.nCompleted > m.completedMax && m.completedHead < len(m.completed) {
		id := m.completed[m.completedHead]
		m.completed[m.completedHead] = ""
		m.completedHead++
		if en, ok := m.entries[id]; ok && en.rec.Status != StatusActive && !en.rec.IsEntryPoint {
			delete(m.entries, id)
			m.nCompleted--
		}
	}
	if m.completedHead >= 1024 && m.completedHead*2 >= len(m.completed) {
		n := copy(m.completed, m.completed[m.completedHead:])
		clear(m.completed[n:])
		m.completed = m.completed[:n]
		m.completedHead = 0
	}
}

// compactOutbox drops delivered ids from outboxSeq once they are the majority, so that an
// outbox that is never empty does not make outboxSeq grow without bound.
func (m *Memory) compactOutbox() {
	if len(m.outbox) == 0 {
		clear(m.outboxSeq)
		m.outboxSeq = m.outboxSeq[:0]
		return
	}
	if len(m.outboxSeq) < 64 || len(m.outboxSeq) < 2*len(m.outbox) {
		return
	}
	n := 0
	for _, id := range m.outboxSeq {
		if _, ok := m.outbox[id]; ok {
			m.outboxSeq[n] = id
			n++
		}
	}
	clear(m.outboxSeq[n:])
	m.outboxSeq = m.outboxSeq[:n]
}

func commitCreates(c *Commit, id string) bool {
	for i := range c.Instances {
		if c.Instances[i].Instance.ID == id {
			return true
		}
	}
	return false
}

// LoadLive implements Store.
func (m *Memory) LoadLive(_ context.Context, component string) ([]Instance, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Instance
	for _, en := range m.entries {
		if in := en.rec; in.Component == component && (in.Status == StatusActive || in.IsEntryPoint) {
			out = append(out, *in)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CreatedAt != out[j].CreatedAt {
			return out[i].CreatedAt < out[j].CreatedAt
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Instance implements Store.
func (m *Memory) Instance(_ context.Context, id string) (Instance, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	en, ok := m.entries[id]
	if !ok {
		return Instance{}, fmt.Errorf("instance %s: %w", id, ErrNotFound)
	}
	return *en.rec, nil
}

// Search implements Store. It holds at most a page of instances at a time: the matching
// instances are ranked through a heap bounded by the page size, and only the page is copied.
// The cursor is the position (updatedAt, id) of the last instance of the previous page, as
// the SQL stores do, so that pages do not shift when instances are created meanwhile.
func (m *Memory) Search(_ context.Context, q Query) ([]Instance, string, error) {
	var after *Instance
	if q.Cursor != "" {
		ms, id, err := decodeMemCursor(q.Cursor)
		if err != nil {
			return nil, "", err
		}
		after = &Instance{UpdatedAt: ms, ID: id}
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	// top holds the limit+1 first instances in the order (updatedAt desc, id asc), as a heap
	// whose root is the last of them; one more than the page tells whether a next page exists.
	top := make(pageHeap, 0, min(limit+1, 1024))
	m.mu.RLock()
	for _, en := range m.entries {
		in := en.rec
		if after != nil && !searchBefore(after, in) {
			continue
		}
		if len(top) == limit+1 && !searchBefore(in, top[0]) {
			continue
		}
		if !Matches(in, q) {
			continue
		}
		if len(top) < limit+1 {
			heap.Push(&top, in)
		} else {
			top[0] = in
			heap.Fix(&top, 0)
		}
	}
	m.mu.RUnlock()
	sort.Slice(top, func(i, j int) bool { return searchBefore(top[i], top[j]) })
	next := ""
	if len(top) > limit {
		top = top[:limit]
		last := top[limit-1]
		next = encodeMemCursor(last.UpdatedAt, last.ID)
	}
	out := make([]Instance, len(top))
	for i, in := range top {
		out[i] = *in
	}
	return out, next, nil
}

// searchBefore reports whether a comes before b in Search's order: latest update first, then
// by id.
func searchBefore(a, b *Instance) bool {
	if a.UpdatedAt != b.UpdatedAt {
		return a.UpdatedAt > b.UpdatedAt
	}
	return a.ID < b.ID
}

// pageHeap is a max-heap in Search's order: its root is the instance that comes last.
type pageHeap []*Instance

func (h pageHeap) Len() int           { return len(h) }
func (h pageHeap) Less(i, j int) bool { return searchBefore(h[j], h[i]) }
func (h pageHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pageHeap) Push(x any)        { *h = append(*h, x.(*Instance)) }
func (h *pageHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// encodeMemCursor is the cursor of a page ending with (updated, id): the SQL stores' format.
func encodeMemCursor(updated int64, id string) string { return cursor.Encode(updated, id) }

func decodeMemCursor(c string) (int64, string, error) {
	if n, id, ok := cursor.Decode(c); ok {
		return n, id, nil
	}
	return 0, "", fmt.Errorf("search: cursor %q: %w", c, ErrBadCursor)
}

// Matches reports whether an instance satisfies the filters of q (not Limit and Cursor).
// Stores that filter in memory share it.
func Matches(in *Instance, q Query) bool {
	if q.Component != "" && in.Component != q.Component {
		return false
	}
	if q.Machine != "" && in.Machine != q.Machine {
		return false
	}
	if q.State != "" && in.State != q.State {
		return false
	}
	if q.ParentID != "" && in.ParentID != q.ParentID {
		return false
	}
	if q.Status != "" && in.Status != q.Status {
		return false
	}
	if q.From > 0 && in.UpdatedAt < q.From {
		return false
	}
	if q.To > 0 && in.UpdatedAt > q.To {
		return false
	}
	if q.Text != "" {
		text := strings.ToLower(q.Text)
		if !strings.Contains(strings.ToLower(in.ID), text) {
			b, _ := json.Marshal(in.Data)
			if !strings.Contains(strings.ToLower(string(b)), text) {
				return false
			}
		}
	}
	return true
}

// History implements Store.
func (m *Memory) History(_ context.Context, instanceID string) ([]Event, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	en, ok := m.entries[instanceID]
	if !ok {
		return []Event{}, nil
	}
	out := make([]Event, 0, en.n)
	en.each(func(m *memEvent) { out = append(out, en.event(m)) })
	return out, nil
}

// Correlated implements Store. It scans every event: the memory store keeps no index for
// this rare query, to stay lean.
func (m *Memory) Correlated(_ context.Context, correlationID string) ([]Event, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := []Event{}
	for _, en := range m.entries {
		en.each(func(m *memEvent) {
			if m.CorrelationID == correlationID {
				out = append(out, en.event(m))
			}
		})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].PersistedAt != out[j].PersistedAt {
			return out[i].PersistedAt < out[j].PersistedAt
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// PendingOutbox implements Store.
func (m *Memory) PendingOutbox(_ context.Context, component string, limit int) ([]Message, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Message
	seen := make(map[string]struct{})
	for _, id := range m.outboxSeq {
		msg, ok := m.outbox[id]
		if !ok || (component != "" && msg.Component != component) {
			continue
		}
		if _, dup := seen[id]; dup { // consumed, then written again under the same id
			continue
		}
		seen[id] = struct{}{}
		out = append(out, msg)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

// Ping implements Store.
func (m *Memory) Ping(context.Context) error { return nil }

// Close implements Store.
func (m *Memory) Close() error { return nil }
