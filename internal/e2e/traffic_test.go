package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// ack is an acknowledged event: the 200 answer of POST …/events.
type ack struct {
	token, instance, eventID, newState string
	version                            int64
}

// sender is one client goroutine: it sends events to one instance, one after the other (so
// their order is its order), each with a unique token in its payload, and records what
// happened to each.
type sender struct {
	id       string // r<round>-c<k>
	instance string
	via      string   // the server it talked to
	sent     []string // tokens, in sending order
	acks     []ack
	unknown  []string             // no HTTP answer (transport error): may or may not have applied
	rejected map[string]rejection // token -> its non-200 answer
}

// rejection is a non-200 answer.
type rejection struct {
	status int
	body   string
}

// traffic is a set of senders running concurrently.
type traffic struct {
	senders  []*sender
	acks     atomic.Int64
	stopping atomic.Bool // set before the server is stopped: errors are expected from then on
	wg       sync.WaitGroup

	mu         sync.Mutex
	unexpected []string // errors seen while the server was supposed to be up
}

// eventType is the event a sender sends as its n-th: mostly TICK (flips the state), every
// third a BUMP (self-loop).
func eventType(n int) string {
	if n%3 == 2 {
		return "BUMP"
	}
	return "TICK"
}

// startTraffic starts one sender per (instance, k < perInstance), all on client c. Each sends
// up to limit events (0: until the server goes away).
func startTraffic(c *client, via, round string, instances []string, perInstance, limit int) *traffic {
	tr := &traffic{}
	return tr.add(c, via, round, instances, perInstance, limit)
}

// add starts more senders on tr (another server, for the multi-process test).
func (tr *traffic) add(c *client, via, round string, instances []string, perInstance, limit int) *traffic {
	for k := range perInstance {
		for i, id := range instances {
			s := &sender{id: fmt.Sprintf("%s-%s-c%d", round, via, k*len(instances)+i), instance: id, via: via, rejected: map[string]rejection{}}
			tr.senders = append(tr.senders, s)
			tr.wg.Add(1)
			go func() {
				defer tr.wg.Done()
				tr.run(c, s, limit)
			}()
		}
	}
	return tr
}

func (tr *traffic) run(c *client, s *sender, limit int) {
	for n := 0; limit == 0 || n < limit; n++ {
		tok := fmt.Sprintf("%s-n%d", s.id, n)
		s.sent = append(s.sent, tok)
		ans, status, raw, err := c.send(s.instance, eventType(n), map[string]any{"tok": tok, "n": n})
		switch {
		case err != nil:
			s.unknown = append(s.unknown, tok)
			if !tr.stopping.Load() {
				tr.fail("%s: %s: %v", s.id, tok, err)
			}
			return
		case status == http.StatusOK:
			s.acks = append(s.acks, ack{token: tok, instance: s.instance, eventID: ans.EventID,
				newState: ans.NewState, version: ans.Instance.Version})
			tr.acks.Add(1)
		default:
			s.rejected[tok] = rejection{status: status, body: string(raw)}
			if tr.stopping.Load() {
				return
			}
			tr.fail("%s: %s: HTTP %d: %s", s.id, tok, status, raw)
		}
	}
}

func (tr *traffic) fail(format string, args ...any) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.unexpected) < 20 {
		tr.unexpected = append(tr.unexpected, fmt.Sprintf(format, args...))
	}
}

// wait waits for every sender to end.
func (tr *traffic) wait() { tr.wg.Wait() }

// checkNoErrors fails the test if a request failed while the server was up.
func (tr *traffic) checkNoErrors(t testing.TB) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, u := range tr.unexpected {
		t.Errorf("request failed while the server was up: %s", u)
	}
}

// counts returns how many events were acknowledged, left without answer, rejected.
func (tr *traffic) counts() (acked, unknown, rejected int) {
	for _, s := range tr.senders {
		acked += len(s.acks)
		unknown += len(s.unknown)
		rejected += len(s.rejected)
	}
	return
}

// ledger is what the clients know, over every round of a test.
type ledger struct {
	senders []*sender
}

func (l *ledger) add(tr *traffic) { l.senders = append(l.senders, tr.senders...) }

// outcome of one token as the client saw it.
type outcome int

const (
	acked outcome = iota + 1
	unanswered
	rejectedStatus
)

// verify checks the store against the ledger, for the given instances (the server must be
// stopped, or idle):
//   - every instance's history is a chain 1..version, exactly once each (checkChain);
//   - every acknowledged event is in fsm_events exactly once, with the id, version and state
//     its answer gave;
//   - every transition row is one the clients sent, at most once (none applied twice), and
//     it is acknowledged unless its request got no answer or a 5xx that does not say "not
//     applied" (with strict, it must be acknowledged);
//   - the events of one sender appear in its sending order.
//
// It returns the version of each instance and what it counted.
func (l *ledger) verify(t testing.TB, b backend, instances []string, strict bool) verdict {
	t.Helper()
	evs := b.readEvents(t)
	snaps := b.readSnapshots(t)
	type sentInfo struct {
		s   *sender
		idx int
		out outcome
		ack *ack
	}
	tokens := map[string]*sentInfo{}
	for _, s := range l.senders {
		for i, tok := range s.sent {
			tokens[tok] = &sentInfo{s: s, idx: i}
		}
		for i := range s.acks {
			tokens[s.acks[i].token].out, tokens[s.acks[i].token].ack = acked, &s.acks[i]
		}
		for _, tok := range s.unknown {
			tokens[tok].out = unanswered
		}
		for tok := range s.rejected {
			tokens[tok].out = rejectedStatus
		}
	}
	v := verdict{versions: map[string]int64{}}
	seen := map[string]*eventRow{} // token -> row
	byEventID := map[string]*eventRow{}
	for _, id := range instances {
		hist := evs[id]
		snap, ok := snaps[id]
		v.versions[id] = checkChain(t, id, hist, snap, ok)
		for i := range hist {
			row := &hist[i]
			byEventID[row.ID] = row
			if row.Seq == 0 {
				continue
			}
			tok := row.token()
			info := tokens[tok]
			if info == nil {
				t.Errorf("instance %s seq %d: event %s (token %q) was never sent by a client", id, row.Seq, row.ID, tok)
				continue
			}
			if prev := seen[tok]; prev != nil {
				t.Errorf("token %s applied twice: seq %d and seq %d of %s", tok, prev.Seq, row.Seq, id)
				continue
			}
			seen[tok] = row
			if info.s.instance != id {
				t.Errorf("token %s sent to %s landed on %s", tok, info.s.instance, id)
			}
			switch info.out {
			case acked:
			case unanswered:
				v.appliedUnanswered++
				if strict {
					t.Errorf("instance %s seq %d: token %s applied but its request got no answer", id, row.Seq, tok)
				}
			case rejectedStatus:
				rej := info.s.rejected[tok]
				switch {
				case rej.status >= 500 && !strict && !strings.Contains(rej.body, "not applied"):
					// A 5xx may leave the outcome unknown (connection lost during COMMIT).
				default:
					t.Errorf("instance %s seq %d: token %s applied although its request got HTTP %d %s", id, row.Seq, tok, rej.status, rej.body)
				}
			default:
				t.Errorf("instance %s seq %d: token %s applied while its sender never finished sending it", id, row.Seq, tok)
			}
		}
	}
	nacks := 0
	for _, s := range l.senders {
		var lastSeq int64 = -1
		lastTok := ""
		for _, a := range s.acks {
			nacks++
			row := byEventID[a.eventID]
			switch {
			case row == nil:
				t.Errorf("acknowledged event %s (token %s, version %d of %s) is not in fsm_events", a.eventID, a.token, a.version, a.instance)
			case row.Instance != a.instance || row.Seq != a.version || row.To != a.newState || row.token() != a.token:
				t.Errorf("acknowledged event %s: answer said %s v%d %s (token %s), fsm_events has %s v%d %s (token %s)",
					a.eventID, a.instance, a.version, a.newState, a.token, row.Instance, row.Seq, row.To, row.token())
			}
		}
		for _, tok := range s.sent {
			row := seen[tok]
			if row == nil {
				continue
			}
			if row.Seq <= lastSeq {
				t.Errorf("sender %s: %s applied at seq %d, before its earlier %s (seq %d): order not kept", s.id, tok, row.Seq, lastTok, lastSeq)
			}
			lastSeq, lastTok = row.Seq, tok
		}
	}
	v.applied, v.acked = len(seen), nacks
	t.Logf("%s: %d instances, %d transitions in fsm_events, %d acknowledged by the API, %d applied without an answer (in flight at the stop)",
		b.name, len(instances), v.applied, v.acked, v.appliedUnanswered)
	return v
}

// verdict is what ledger.verify found.
type verdict struct {
	versions          map[string]int64
	applied           int // transitions in fsm_events
	acked             int // acknowledged events (all found)
	appliedUnanswered int // applied although the request got no answer
}
