package sqlstore

import (
	"encoding/json"
	"fmt"
	"reflect"
	"unsafe"

	"github.com/xcomponent/xcomponent/store"
)

// EncodeMap is the JSON text of a data or payload map; a nil map is "{}".
func EncodeMap(m map[string]any) (string, error) {
	if m == nil {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	return string(b), err
}

// EncodeTimers is the JSON text of the pending_timeouts column; no timer is "[]".
func EncodeTimers(ts []store.Timer) (string, error) {
	if len(ts) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(ts)
	return string(b), err
}

// DecodeMap decodes a data or payload column; NULL, "null" and "{}" are an empty map.
func DecodeMap(b []byte) (map[string]any, error) {
	m := map[string]any{}
	if len(b) == 0 || string(b) == "null" || string(b) == "{}" {
		return m, nil
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeInstanceJSON sets in.Data and in.Timers from the context and pending_timeouts columns.
func DecodeInstanceJSON(in *store.Instance, data, timers []byte) error {
	return DecodeInstanceJSONInterned(in, data, timers, nil)
}

// DecodeInstanceJSONInterned is DecodeInstanceJSON with the context decoded by
// DecodeMapInterned (a nil Interner interns nothing).
func DecodeInstanceJSONInterned(in *store.Instance, data, timers []byte, i *Interner) error {
	return DecodeInstanceJSONReusing(in, nil, data, timers, i)
}

// DecodeInstanceJSONReusing is DecodeInstanceJSONInterned with the context decoded into
// reuse when it can be (DecodeMapReusing).
func DecodeInstanceJSONReusing(in *store.Instance, reuse map[string]any, data, timers []byte, i *Interner) error {
	var err error
	if in.Data, err = DecodeMapReusing(reuse, data, i); err != nil {
		return fmt.Errorf("instance %s context: %w", in.ID, err)
	}
	if len(timers) > 0 && string(timers) != "[]" && string(timers) != "null" {
		if in.Timers, err = DecodeTimers(timers, i); err != nil {
			return fmt.Errorf("instance %s pending_timeouts: %w", in.ID, err)
		}
	}
	return nil
}

// Deref returns *s, or "" for NULL.
func Deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ScanEvent reads one row of Dialect.SelectEvents.
func ScanEvent(r Scanner) (store.Event, error) {
	var (
		e                                                                    store.Event
		comp, from, to, src, corr, cause, actor, source, note, trace, reason *string
		seq                                                                  *int64
		payload, data                                                        []byte
	)
	if err := r.Scan(&e.ID, &e.InstanceID, &comp, &e.Machine, &e.Type, &payload, &from, &to, &data, &src,
		&corr, &cause, &actor, &source, &seq, &e.PersistedAt, &note, &trace, &reason); err != nil {
		return e, err
	}
	e.Component, e.FromState, e.ToState, e.SourceComponent = Deref(comp), Deref(from), Deref(to), Deref(src)
	e.CorrelationID, e.CausationID, e.Actor, e.Source, e.Note = Deref(corr), Deref(cause), Deref(actor), Deref(source), Deref(note)
	e.TraceID, e.Reason = Deref(trace), Deref(reason)
	if seq != nil {
		e.Seq = *seq
	}
	var err error
	if e.Payload, err = DecodeMap(payload); err != nil {
		return e, fmt.Errorf("event %s payload: %w", e.ID, err)
	}
	if e.Data, err = DecodeMap(data); err != nil {
		return e, fmt.Errorf("event %s context: %w", e.ID, err)
	}
	return e, nil
}

// MapEncoder encodes the data maps of one commit, each distinct map once: a transition's
// snapshot row and its history event carry the same context map (the engine shares it), and
// encoding it once halves the JSON work of a commit — the larger the context, the more it
// saves. A map is recognised by identity, so a map changed between two calls must not be
// encoded through the same MapEncoder (a commit's maps do not change while it is written).
// The zero value is ready; Reset forgets the maps, keeping the storage.
type MapEncoder struct {
	seen []encodedMap
}

type encodedMap struct {
	p    unsafe.Pointer
	json string
}

// Encode is EncodeMap, with the JSON of a map already encoded by e returned again.
func (e *MapEncoder) Encode(m map[string]any) (string, error) {
	if m == nil {
		return "{}", nil
	}
	p := reflect.ValueOf(m).UnsafePointer()
	for _, s := range e.seen {
		if s.p == p {
			return s.json, nil
		}
	}
	j, err := EncodeMap(m)
	if err != nil {
		return "", err
	}
	e.seen = append(e.seen, encodedMap{p, j})
	return j, nil
}

// Reset forgets the maps encoded so far.
func (e *MapEncoder) Reset() {
	clear(e.seen)
	e.seen = e.seen[:0]
}
