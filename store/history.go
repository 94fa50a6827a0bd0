package store

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
)

// Page sizes of HistoryPage.
const (
	// DefaultEventLimit is the page size of a HistoryPage without a Limit.
	DefaultEventLimit = 100
	// MaxEventLimit caps EventPage.Limit: a page is a bounded read whatever the client asks.
	MaxEventLimit = 1000
)

// EventPage selects one page of an instance's history.
type EventPage struct {
	// Limit is the page size: 0 = DefaultEventLimit, capped at MaxEventLimit.
	Limit int
	// Cursor is the nextCursor of the previous page ("" = the first page).
	Cursor string
	// Newest pages from the latest event back (the dashboard's audit trail); the default is
	// oldest first, the order of History.
	Newest bool
}

// HistoryPager is implemented by stores that read one page of an instance's history without
// reading the rest (an indexed range on the instance's version): memory, SQLite, PostgreSQL.
type HistoryPager interface {
	// HistoryPage returns a page of the events of an instance in the order p asks and the
	// cursor of the next page ("" when there is none). Events written without a version
	// (rows of another tool, such as xcomponent-ai, imported into the database) come before
	// every versioned one: they are returned whole with the page that reaches them, which
	// may then hold more than the limit.
	HistoryPage(ctx context.Context, instanceID string, p EventPage) ([]Event, string, error)
}

// EventLimit returns the page size p asks for, defaulted and capped.
func (p EventPage) EventLimit() int {
	switch {
	case p.Limit <= 0:
		return DefaultEventLimit
	case p.Limit > MaxEventLimit:
		return MaxEventLimit
	}
	return p.Limit
}

// EncodeEventCursor returns the cursor of a history page whose last event has version seq.
func EncodeEventCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("v" + strconv.FormatInt(seq, 10)))
}

// DecodeEventCursor returns the version of a cursor EncodeEventCursor produced; ok is false
// for anything else.
func DecodeEventCursor(c string) (seq int64, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 2 || b[0] != 'v' {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b[1:]), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

var _ HistoryPager = (*Memory)(nil)

// HistoryPage implements HistoryPager: a binary search for the cursor's version among the
// events kept (they are in version order), then only the page is converted.
func (m *Memory) HistoryPage(_ context.Context, instanceID string, p EventPage) ([]Event, string, error) {
	after, err := pageStart(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := p.EventLimit()
	m.mu.RLock()
	defer m.mu.RUnlock()
	en, ok := m.entries[instanceID]
	if !ok {
		return []Event{}, "", nil
	}
	// first is the index of the first event past the cursor in the page's direction.
	var first int
	if !p.Newest {
		first = 0
		if after >= 0 {
			first = searchIdx(en.n, func(i int) bool { return en.at(i).Seq > after })
		}
	} else {
		first = en.n - 1
		if after >= 0 {
			first = searchIdx(en.n, func(i int) bool { return en.at(i).Seq >= after }) - 1
		}
	}
	out := make([]Event, 0, min(limit, en.n))
	next := ""
	for i := first; i >= 0 && i < en.n; {
		if len(out) == limit {
			next = EncodeEventCursor(out[len(out)-1].Seq)
			break
		}
		out = append(out, en.event(en.at(i)))
		if p.Newest {
			i--
		} else {
			i++
		}
	}
	return out, next, nil
}

// pageStart decodes a history cursor: -1 for none.
func pageStart(c string) (int64, error) {
	if c == "" {
		return -1, nil
	}
	seq, ok := DecodeEventCursor(c)
	if !ok {
		return 0, fmt.Errorf("history: cursor %q: %w", c, ErrBadCursor)
	}
	return seq, nil
}

// searchIdx is sort.Search without the import cycle risk: the smallest i in [0, n) for which
// f is true, n if none.
func searchIdx(n int, f func(int) bool) int {
	lo, hi := 0, n
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if !f(h) {
			lo = h + 1
		} else {
			hi = h
		}
	}
	return lo
}

// at returns the i-th event kept (0 is the creation event), in O(1) for the ring and in
// O(chunks) for the chunked history (chunks grow to 256 events: a few hundred for 100,000
// events, against a page's binary search of 17 steps).
func (en *memEntry) at(i int) *memEvent {
	if i == 0 {
		return &en.first
	}
	i--
	if en.ring != nil {
		return &en.ring[(en.rstart+i)%len(en.ring)]
	}
	for _, c := range en.hist {
		if i < len(c) {
			return &c[i]
		}
		i -= len(c)
	}
	panic("store: event index out of range")
}
