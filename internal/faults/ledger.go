package faults

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Outcome is what a client learnt of one command it sent.
type Outcome int

// Outcomes of a command, as its sender saw them.
const (
	// Pending: sent, no answer recorded yet.
	Pending Outcome = iota
	// Acked: the system said it is applied (HTTP 2xx, a command reply "applied"/"duplicate").
	// It must be in the store exactly once.
	Acked
	// Unanswered: no answer (connection cut, process killed): it may or may not be applied,
	// at most once.
	Unanswered
	// Refused: the system said it is not applied (4xx, a reply "refused", a dead letter). It
	// must not be in the store.
	Refused
)

// Ledger is what the clients of a scenario know: every command they sent, keyed by a unique
// key that the store's rows carry (a payload token, a command id), in sending order per
// stream (a stream is one sender, whose commands go to one instance one after the other).
// Safe for concurrent use.
type Ledger struct {
	mu      sync.Mutex
	order   []string // keys in the order they were first sent
	cmds    map[string]*command
	streams map[string][]string
}

type command struct {
	stream   string
	outcome  Outcome
	instance string // from the acknowledgement, when it says
	version  int64  // from the acknowledgement, when it says (0: not said)
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{cmds: map[string]*command{}, streams: map[string][]string{}}
}

// Sent records a command about to be sent on stream ("" when order does not matter).
func (l *Ledger) Sent(stream, key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.cmds[key]; ok {
		return // sent again (a retry, a duplicate delivery): one command
	}
	l.cmds[key] = &command{stream: stream}
	l.order = append(l.order, key)
	if stream != "" {
		l.streams[stream] = append(l.streams[stream], key)
	}
}

// Ack records that the command was acknowledged as applied, on instance at version when the
// answer said so ("" and 0 otherwise).
func (l *Ledger) Ack(key, instance string, version int64) {
	l.set(key, Acked, func(c *command) { c.instance, c.version = instance, version })
}

// Unanswered records that the command got no answer.
func (l *Ledger) Unanswered(key string) { l.set(key, Unanswered, nil) }

// Refused records that the command was answered "not applied".
func (l *Ledger) Refused(key string) { l.set(key, Refused, nil) }

func (l *Ledger) set(key string, o Outcome, f func(*command)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.cmds[key]
	if c == nil {
		c = &command{}
		l.cmds[key] = c
		l.order = append(l.order, key)
	}
	if c.outcome == Acked && o != Acked {
		return // an acknowledgement is final
	}
	c.outcome = o
	if f != nil {
		f(c)
	}
}

// Counts returns how many commands were sent, acknowledged, left unanswered and refused.
func (l *Ledger) Counts() (sent, acked, unanswered, refused int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.cmds {
		switch c.outcome {
		case Acked:
			acked++
		case Unanswered:
			unanswered++
		case Refused:
			refused++
		}
	}
	return len(l.cmds), acked, unanswered, refused
}

// Verdict is what Judge found. The guarantees hold when LostAcked, AppliedTwice,
// AppliedRefused, Foreign, OutOfOrder and Inconsistent are all zero.
type Verdict struct {
	Sent, Acked, Unanswered, Refused int
	// Applied is the number of sent commands found in the store (at least once).
	Applied int
	// AppliedUnanswered were applied although their sender got no answer (in flight at a
	// crash): allowed, at most once.
	AppliedUnanswered int
	// LostAcked were acknowledged and are not in the store.
	LostAcked int
	// AppliedTwice are in the store more than once.
	AppliedTwice int
	// AppliedRefused are in the store although the answer said they were not applied.
	AppliedRefused int
	// Foreign are rows with a key that no client sent.
	Foreign int
	// OutOfOrder are commands of a stream applied before an earlier one of the same stream.
	OutOfOrder int
	// Inconsistent is the number of instances at odds with their event log
	// (State.Inconsistent), over the whole store.
	Inconsistent int
	// Problems says what is wrong (the first few of each kind).
	Problems []string
}

// OK says whether every guarantee held.
func (v Verdict) OK() bool {
	return v.LostAcked == 0 && v.AppliedTwice == 0 && v.AppliedRefused == 0 && v.Foreign == 0 &&
		v.OutOfOrder == 0 && v.Inconsistent == 0
}

// Judge compares the ledger with the store. key gives the ledger key of an event row ("" for
// rows no client command caused: creations by the system, timers…, which are not counted).
func Judge(l *Ledger, s *State, key func(Event) string) Verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	var v Verdict
	const maxPer = 5
	problems := map[string]int{}
	add := func(kind, format string, args ...any) {
		problems[kind]++
		if problems[kind] <= maxPer {
			v.Problems = append(v.Problems, fmt.Sprintf(format, args...))
		}
	}
	rows := map[string][]Event{}
	ids := make([]string, 0, len(s.Events))
	for id := range s.Events {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		for _, e := range s.Events[id] {
			k := key(e)
			if k == "" {
				continue
			}
			if _, ok := l.cmds[k]; !ok {
				v.Foreign++
				add("foreign", "instance %s seq %d: %s %s (key %s) was never sent", id, e.Seq, e.Type, e.ID, k)
				continue
			}
			rows[k] = append(rows[k], e)
		}
	}
	for _, k := range l.order {
		c := l.cmds[k]
		v.Sent++
		rs := rows[k]
		switch c.outcome {
		case Acked:
			v.Acked++
		case Unanswered:
			v.Unanswered++
		case Refused:
			v.Refused++
		}
		if len(rs) > 0 {
			v.Applied++
		}
		if len(rs) > 1 {
			v.AppliedTwice++
			add("twice", "%s applied %d times: %s seq %d and %s seq %d", k, len(rs), rs[0].Instance, rs[0].Seq, rs[1].Instance, rs[1].Seq)
		}
		switch {
		case c.outcome == Acked && len(rs) == 0:
			v.LostAcked++
			add("lost", "%s acknowledged (instance %s version %d) and not in the store", k, c.instance, c.version)
		case c.outcome == Acked && (c.instance != "" && rs[0].Instance != c.instance || c.version != 0 && rs[0].Seq != c.version):
			add("ackmismatch", "%s acknowledged as %s v%d, stored as %s v%d", k, c.instance, c.version, rs[0].Instance, rs[0].Seq)
			v.LostAcked++
		case c.outcome == Refused && len(rs) > 0:
			v.AppliedRefused++
			add("refused", "%s answered 'not applied' and applied at %s seq %d", k, rs[0].Instance, rs[0].Seq)
		case c.outcome != Acked && len(rs) > 0:
			v.AppliedUnanswered++
		}
	}
	for stream, keys := range l.streams {
		var last *Event
		lastKey := ""
		for _, k := range keys {
			rs := rows[k]
			if len(rs) == 0 {
				continue
			}
			e := rs[0]
			if last != nil && e.Instance == last.Instance && e.Seq <= last.Seq {
				v.OutOfOrder++
				add("order", "stream %s: %s applied at seq %d, before its earlier %s (seq %d)", stream, k, e.Seq, lastKey, last.Seq)
			}
			last, lastKey = &e, k
		}
	}
	inc := s.Inconsistent()
	v.Inconsistent = len(inc)
	for i, msg := range inc {
		if i < maxPer {
			v.Problems = append(v.Problems, msg)
		}
	}
	return v
}

// ByToken is the key of an event for clients that put a unique token in every payload
// ({"tok": …}).
func ByToken(e Event) string { return e.Token() }

// ByEventID is the key of an event for clients whose command id becomes the event's id.
func ByEventID(e Event) string {
	if e.Seq == 0 {
		return ""
	}
	return e.ID
}

// SaysNotApplied says whether an error answer claims that nothing was applied ("not applied",
// "nothing applied"): a client may then retry safely, so the judge holds the system to it
// (Refused).
func SaysNotApplied(body string) bool {
	return strings.Contains(body, "not applied") || strings.Contains(body, "nothing applied")
}
