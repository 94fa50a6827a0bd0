package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/store"
)

// Idempotency keys (IETF draft-ietf-httpapi-idempotency-key-header): a client that did not get
// the answer of a write (a timeout, a dropped connection) sends it again with the same
// Idempotency-Key, and the write is applied at most once.
//
// No table of keys is kept: the key, scoped to the caller (its token, or "anonymous" when auth
// is off), the endpoint and the target (component for a create, instance otherwise), gives the
// command's ids by UUIDv5 (deriveID). The engine applies an id once (the store's inbox, the
// event id of the history), and so do the distributed runtimes (the command id is the derived
// id). A retry that finds its id applied is answered from what is recorded: the instance as it
// is now, and for an event the transition recorded under the id, with Idempotent-Replayed:
// true. A retry whose first attempt was refused finds nothing applied and is evaluated anew.
const (
	// HeaderIdempotencyKey is the request header naming a write.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderIdempotentReplayed is set to "true" on the answer of a write applied before.
	HeaderIdempotentReplayed = "Idempotent-Replayed"
	// maxIdempotencyKey bounds a key (characters).
	maxIdempotencyKey = 255
)

// idemSpace is the UUIDv5 namespace of the ids derived from idempotency keys.
var idemSpace = uuid.MustParse("6f0b8f5e-52a5-4c1f-9d3e-1f4f3b0a7c21")

// ErrInProgress: a request with the same idempotency key is being processed → 409 (the draft's
// answer to a concurrent retry). A backend that cannot wait for the first one's outcome returns
// it (the distributed dashboard, one waiter per command id).
var ErrInProgress = errors.New("a request with this Idempotency-Key is in progress")

// idemKey is the Idempotency-Key of a request with the scope of its caller.
type idemKey struct {
	key, scope string
}

// idempotencyKey reads and checks the Idempotency-Key of r (nil when absent): 1 to 255
// printable ASCII characters, given once, as is or as a structured-field string ("…").
func idempotencyKey(w http.ResponseWriter, r *http.Request) (*idemKey, error) {
	vals := r.Header.Values(HeaderIdempotencyKey)
	if len(vals) == 0 {
		return nil, nil
	}
	if len(vals) > 1 {
		return nil, badRequest("%s: given %d times, want one key", HeaderIdempotencyKey, len(vals))
	}
	key := vals[0]
	if len(key) >= 2 && key[0] == '"' && key[len(key)-1] == '"' {
		k, err := strconv.Unquote(key)
		if err != nil {
			return nil, badRequest("%s: malformed quoted string", HeaderIdempotencyKey)
		}
		key = k
	}
	if key == "" || len(key) > maxIdempotencyKey {
		return nil, badRequest("%s: %d characters, want 1 to %d", HeaderIdempotencyKey, len(key), maxIdempotencyKey)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c > 0x7e {
			return nil, badRequest("%s: character %d is not printable ASCII", HeaderIdempotencyKey, i+1)
		}
	}
	scope := anonymous.actor
	if ri := info(w); ri.authd {
		scope = ri.who.scope
	}
	return &idemKey{key: key, scope: scope}, nil
}

// id is the id the key gives to the command of endpoint route on target: the same for every
// retry, different for another caller, endpoint, target or key.
func (k *idemKey) id(route, target string) string {
	return deriveID(k.scope, route, target, k.key)
}

// deriveID is the UUIDv5 of (scope, route, target, key); no part holds a newline.
func deriveID(scope, route, target, key string) string {
	return uuid.NewSHA1(idemSpace, []byte(scope+"\n"+route+"\n"+target+"\n"+key)).String()
}

// replayable says whether err may mean that a keyed command was applied before: a duplicate
// id, or a refusal (the instance moved on, or ended, since the first attempt).
func replayable(err error) bool {
	return errors.Is(err, xc.ErrDuplicate) || errors.Is(err, xc.ErrNotAccepted) || errors.Is(err, xc.ErrNotFound) ||
		errors.Is(err, xc.ErrSingleton)
}

// errKeyReused answers a key sent again with another request (the draft's 422).
func errKeyReused(what string) error {
	return &apiError{status: http.StatusUnprocessableEntity,
		msg: HeaderIdempotencyKey + " already used for another request (" + what + " differs): use a new key for a new request"}
}

// EventFinder is implemented by backends that read one event of an instance by its id (the
// local backend and the dashboard over a store.EventGetter: the SQL stores' primary key).
// Others have their history read, newest pages first.
type EventFinder interface {
	Event(ctx context.Context, instanceID, eventID string) (store.Event, bool, error)
}

// findEvent returns the event eventID of an instance's history: by id when the backend can,
// else newest pages first (a retry comes soon after its first attempt).
func (s *server) findEvent(ctx context.Context, instanceID, eventID string) (store.Event, bool, error) {
	if f, ok := s.b.(EventFinder); ok {
		return f.Event(ctx, instanceID, eventID)
	}
	p := store.EventPage{Limit: store.MaxEventLimit, Newest: true}
	for {
		evs, next, err := s.historyPage(ctx, instanceID, p)
		if err != nil {
			return store.Event{}, false, err
		}
		for _, e := range evs {
			if e.ID == eventID {
				return e, true, nil
			}
		}
		if next == "" || len(evs) == 0 {
			return store.Event{}, false, nil
		}
		p.Cursor = next
	}
}

// replayCreate answers a keyed create that failed with err: when the instance the key names
// exists, it was created by an earlier attempt and is the answer (unless that attempt asked
// for another machine or context: 422); otherwise err stands.
func (s *server) replayCreate(ctx context.Context, req xc.CreateRequest, err error) (xc.Instance, error) {
	if !replayable(err) {
		return xc.Instance{}, err
	}
	in, gerr := s.b.Instance(ctx, req.InstanceID)
	if gerr != nil {
		return xc.Instance{}, err
	}
	if in.ComponentName != req.Component || (req.Machine != "" && in.MachineName != req.Machine) {
		return xc.Instance{}, errKeyReused("machine")
	}
	data := req.Data
	if c, cerr := s.component(in.ComponentName); cerr == nil {
		if m := c.Machine(in.MachineName); m != nil {
			if clean, ferrs := m.ValidateContext(data); len(ferrs) == 0 {
				data = clean // coerced as the first attempt's was
			}
		}
	}
	if ev, found, ferr := s.findEvent(ctx, in.ID, req.Event.ID); ferr == nil && found && ev.Type == store.EventCreated {
		// The data recorded at creation holds every field sent (defaults may add others).
		if !sameFields(ev.Data, data) {
			return xc.Instance{}, errKeyReused("context")
		}
	}
	return in, nil
}

// replayEvent answers a keyed event or operator action sent to instance id (of component comp
// when set) that failed with err: when the history holds the event the key names, it was
// applied by an earlier attempt, and the answer is that transition with the instance as it is
// now (unless that attempt sent another event type or payload: 422); otherwise err stands. A
// duplicate (the backend knows the id applied) is replayed even when the history does not
// show the event (a dashboard without database).
func (s *server) replayEvent(ctx context.Context, comp, id string, ev xc.Event, err error) (xc.Result, error) {
	if !replayable(err) {
		return xc.Result{}, err
	}
	rec, found, ferr := s.findEvent(ctx, id, ev.ID)
	if ferr != nil || (!found && !errors.Is(err, xc.ErrDuplicate)) {
		return xc.Result{}, err
	}
	in, gerr := s.b.Instance(ctx, id)
	if gerr != nil || (comp != "" && in.ComponentName != comp) {
		return xc.Result{}, err
	}
	res := xc.Result{Instance: in, EventID: ev.ID, PreviousState: in.CurrentState, NewState: in.CurrentState}
	if found && rec.Type != "" { // a dashboard without database may know the id only
		if rec.Type != ev.Type {
			return xc.Result{}, errKeyReused("event type")
		}
		operator := ev.Type == xc.EventTerminated || ev.Type == xc.EventHookRetried // the engine writes their payload
		if !operator && (!sameFields(rec.Payload, ev.Payload) || !sameFields(ev.Payload, rec.Payload)) {
			return xc.Result{}, errKeyReused("payload")
		}
		res.PreviousState, res.NewState = rec.FromState, rec.ToState
		if rec.Type == xc.EventHookRetried && rec.Note != "" {
			// The first attempt was answered 409: the hook ran again and failed (recorded).
			return xc.Result{}, fmt.Errorf("the hook retried by an earlier request with this %s failed again: %s: %w",
				HeaderIdempotencyKey, rec.Note, xc.ErrHookFailed)
		}
	}
	return res, nil
}

// sameFields says whether got holds every field of sent with the same JSON value (numbers
// compared as JSON decodes them: the SQL stores give them back as float64).
func sameFields(got, sent map[string]any) bool {
	for k, v := range sent {
		g, ok := got[k]
		if !ok || canonical(g) != canonical(v) {
			return false
		}
	}
	return true
}

// canonical is v as JSON after a JSON round trip (numbers as float64, keys sorted).
func canonical(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	var back any
	if json.Unmarshal(b, &back) != nil {
		return string(b)
	}
	b, _ = json.Marshal(back)
	return string(b)
}

// replayed marks the answer of a write applied before.
func replayed(w http.ResponseWriter) { w.Header().Set(HeaderIdempotentReplayed, "true") }
