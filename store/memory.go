package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Memory is an in-memory Store: the default for tests, `simulate` and `--store memory`.
// It keeps nothing across restarts.
type Memory struct {
	mu        sync.RWMutex
	instances map[string]*Instance
	history   map[string][]Event // by instance id
	byCorr    map[string][]eventRef
	outbox    map[string]Message
	outboxSeq []string // insertion order of outbox ids
	inbox     map[string]struct{}
}

type eventRef struct {
	instanceID string
	index      int
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{
		instances: make(map[string]*Instance),
		history:   make(map[string][]Event),
		byCorr:    make(map[string][]eventRef),
		outbox:    make(map[string]Message),
		inbox:     make(map[string]struct{}),
	}
}

// Commit implements Store.
func (m *Memory) Commit(_ context.Context, c *Commit) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.InboxID != "" {
		if _, dup := m.inbox[c.InboxID]; dup {
			return fmt.Errorf("commit %s: %w", c.InboxID, ErrDuplicate)
		}
	}
	for i := range c.Instances {
		w := &c.Instances[i]
		cur, ok := m.instances[w.Instance.ID]
		switch {
		case w.ExpectVersion < 0 && ok:
			return fmt.Errorf("create instance %s: exists: %w", w.Instance.ID, ErrConflict)
		case w.ExpectVersion >= 0 && !ok:
			return fmt.Errorf("update instance %s: %w", w.Instance.ID, ErrNotFound)
		case w.ExpectVersion >= 0 && cur.Version != w.ExpectVersion:
			return fmt.Errorf("update instance %s: version %d, expected %d: %w",
				w.Instance.ID, cur.Version, w.ExpectVersion, ErrConflict)
		}
	}
	if c.InboxID != "" {
		m.inbox[c.InboxID] = struct{}{}
	}
	for i := range c.Instances {
		w := &c.Instances[i]
		if cur, ok := m.instances[w.Instance.ID]; ok {
			*cur = w.Instance
		} else {
			rec := w.Instance
			m.instances[rec.ID] = &rec
		}
	}
	for _, e := range c.Events {
		h := m.history[e.InstanceID]
		if e.CorrelationID != "" {
			m.byCorr[e.CorrelationID] = append(m.byCorr[e.CorrelationID], eventRef{e.InstanceID, len(h)})
		}
		m.history[e.InstanceID] = append(h, e)
	}
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

// compactOutbox drops delivered ids from outboxSeq once they are the majority, so that a
// never-empty outbox does not make it grow without bound.
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

// LoadLive implements Store.
func (m *Memory) LoadLive(_ context.Context, component string) ([]Instance, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Instance
	for _, in := range m.instances {
		if in.Component == component && (in.Status == StatusActive || in.IsEntryPoint) {
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
	in, ok := m.instances[id]
	if !ok {
		return Instance{}, fmt.Errorf("instance %s: %w", id, ErrNotFound)
	}
	return *in, nil
}

// Search implements Store. The cursor is the offset of the next page.
func (m *Memory) Search(_ context.Context, q Query) ([]Instance, string, error) {
	offset := 0
	if q.Cursor != "" {
		n, err := strconv.Atoi(q.Cursor)
		if err != nil || n < 0 {
			return nil, "", fmt.Errorf("search: bad cursor %q", q.Cursor)
		}
		offset = n
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	m.mu.RLock()
	var all []Instance
	for _, in := range m.instances {
		if Matches(in, q) {
			all = append(all, *in)
		}
	}
	m.mu.RUnlock()
	sort.Slice(all, func(i, j int) bool {
		if all[i].UpdatedAt != all[j].UpdatedAt {
			return all[i].UpdatedAt > all[j].UpdatedAt
		}
		return all[i].ID < all[j].ID
	})
	if offset >= len(all) {
		return nil, "", nil
	}
	all = all[offset:]
	next := ""
	if len(all) > limit {
		all = all[:limit]
		next = strconv.Itoa(offset + limit)
	}
	return all, next, nil
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
	h := m.history[instanceID]
	return append([]Event(nil), h...), nil
}

// Correlated implements Store.
func (m *Memory) Correlated(_ context.Context, correlationID string) ([]Event, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	refs := m.byCorr[correlationID]
	out := make([]Event, 0, len(refs))
	for _, r := range refs {
		out = append(out, m.history[r.instanceID][r.index])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].PersistedAt < out[j].PersistedAt })
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
