package xcomponent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

// armState returns the timers of a state just entered: one per timeout or auto transition
// leaving it, due timeoutMs from now.
func armState(s *component.State, keep []store.Timer, cause *Event, now int64) []store.Timer {
	if len(s.Timed) == 0 && len(keep) == 0 {
		return nil
	}
	out := make([]store.Timer, 0, len(s.Timed))
	for _, t := range s.Timed {
		if k := findTimer(keep, t.Index); k != nil {
			out = append(out, *k)
			continue
		}
		out = append(out, newTimer(t, cause, now))
	}
	return out
}

func newTimer(t *component.Transition, cause *Event, now int64) store.Timer {
	kind := store.TimerTimeout
	if t.Type == component.Auto {
		kind = store.TimerAuto
	}
	tm := store.Timer{Event: t.Event, TargetState: t.To, DueAt: now + t.TimeoutMs, TotalMs: t.TimeoutMs,
		Kind: kind, Transition: t.Index, ArmedAt: now}
	if cause != nil {
		tm.CausationID = cause.ID
		tm.CorrelationID = cause.CorrelationID
	}
	return tm
}

func findTimer(ts []store.Timer, transition int) *store.Timer {
	for i := range ts {
		if ts[i].Transition == transition {
			return &ts[i]
		}
	}
	return nil
}

// hasTimer reports whether ts holds the arming t, still pending.
func hasTimer(ts []store.Timer, t *store.Timer) bool {
	for i := range ts {
		if !ts[i].Spent && ts[i].Transition == t.Transition && ts[i].DueAt == t.DueAt {
			return true
		}
	}
	return false
}

// nextTimers computes the timers after transition t (docs/semantics.md, "Time"): leaving a state
// cancels its timers and arms the target's; a self-loop restarts them (a periodic tick for
// timeout and auto self-loops), except timeouts with resetOnTransition false: they keep their
// deadline, and once fired they stay spent until the state is left.
func nextTimers(target *component.State, rec *store.Instance, t *component.Transition, fired *store.Timer, cause *Event, now int64) []store.Timer {
	if t.To != rec.State {
		return armState(target, nil, cause, now)
	}
	if len(target.Timed) == 0 {
		return nil
	}
	var keep []store.Timer
	for _, tm := range rec.Timers {
		tr := findTransition(target.Timed, tm.Transition)
		if tr == nil || tr.Type != component.Timeout || tr.ResetOnTransition {
			continue // restarts
		}
		if fired != nil && tm.Transition == fired.Transition && tm.DueAt == fired.DueAt {
			tm.Spent = true
		}
		keep = append(keep, tm)
	}
	return armState(target, keep, cause, now)
}

func findTransition(ts []*component.Transition, index int) *component.Transition {
	for _, t := range ts {
		if t.Index == index {
			return t
		}
	}
	return nil
}

// errTimerGone: a timer delivery found its arming no longer pending (fired or cancelled by a
// transition, here or in another process). Nothing happens, and nothing is reported.
var errTimerGone = fmt.Errorf("timer no longer armed: %w", ErrNotAccepted)

// timerEvent is the event a timer delivers. Its id is derived from the arming (instance,
// transition, deadline, when and by which event it was armed), so that every attempt to fire
// one arming — this process's queue, a claim after another process died — carries the same
// id: the audit trail can hold it once only. It is shaped like a UUIDv7 whose time is the
// deadline.
func timerEvent(instanceID string, t *store.Timer) Event {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%d|%d|%d|%s|%s", instanceID, t.Transition, t.DueAt, t.ArmedAt, t.CausationID, t.Event)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	var b [16]byte
	ms := uint64(t.DueAt)
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	copy(b[6:], sum[:10])
	b[6] = 0x70 | b[6]&0x0f
	b[8] = 0x80 | b[8]&0x3f
	var id [36]byte
	hex.Encode(id[0:8], b[0:4])
	id[8] = '-'
	hex.Encode(id[9:13], b[4:6])
	id[13] = '-'
	hex.Encode(id[14:18], b[6:8])
	id[18] = '-'
	hex.Encode(id[19:23], b[8:10])
	id[23] = '-'
	hex.Encode(id[24:36], b[10:16])
	ev := Event{Type: t.Event, Source: SourceTimer, Actor: string(SourceTimer), ID: string(id[:]),
		CausationID: t.CausationID, CorrelationID: t.CorrelationID}
	if ev.CorrelationID == "" {
		ev.CorrelationID = ev.ID
	}
	return ev
}
