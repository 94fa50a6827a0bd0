package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/store"
)

// Listing limits.
const (
	defaultLimit = 100
	maxLimit     = 1000
	maxQueryText = 256
	maxCursor    = 512
)

// instanceItem is an instance as lists show it: the engine's view with its id also as
// instanceId (xcomponent-ai's dashboards read either).
type instanceItem struct {
	xc.Instance
	InstanceID string `json:"instanceId"`
}

func item(in xc.Instance) instanceItem { return instanceItem{Instance: in, InstanceID: in.ID} }

// ---- commands ----

// eventRef is an event given as a string ("E") or as an object ({type, payload}).
type eventRef struct {
	Type    string
	Payload map[string]any
	set     bool
}

func (e *eventRef) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	e.set = true
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &e.Type)
	}
	var obj struct {
		Type    string         `json:"type"`
		Event   string         `json:"event"`
		Payload map[string]any `json:"payload"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return badRequest("event: want a string or an object {type, payload}")
	}
	e.Type, e.Payload = obj.Type, obj.Payload
	if e.Type == "" {
		e.Type = obj.Event
	}
	return nil
}

type createBody struct {
	MachineName string         `json:"machineName"`
	Context     map[string]any `json:"context"`
	// Event, optional, is recorded as what triggered the creation.
	Event eventRef `json:"event"`
	// Reason, optional, is why the operator creates it (audit trail).
	Reason string `json:"reason"`
}

// handleCreate creates an instance; its context is checked against the machine's
// contextSchema (422 with the fields at fault).
func (s *server) handleCreate(w http.ResponseWriter, r *http.Request) error {
	c, err := s.component(r.PathValue("component"))
	if err != nil {
		return err
	}
	var body createBody
	if err := s.decode(w, r, &body, true); err != nil {
		return err
	}
	if body.MachineName == "" && c.EntryMachine == "" {
		return badRequest("machineName is required: component %s has no entryMachine", c.Name)
	}
	if body.MachineName != "" {
		if err := checkName("machineName", body.MachineName); err != nil {
			return err
		}
	}
	if body.Event.set {
		if err := checkName("event type", body.Event.Type); err != nil {
			return err
		}
	}
	reason, err := checkReason(body.Reason)
	if err != nil {
		return err
	}
	key, err := idempotencyKey(w, r)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	req := xc.CreateRequest{
		Component: c.Name, Machine: body.MachineName, Data: body.Context, Validate: true,
		Event: xc.Event{Type: body.Event.Type, Payload: body.Event.Payload, Actor: actor(w), Source: xc.SourceAPI, Reason: reason},
	}
	if key != nil {
		// The creation event and the instance get ids of the key: a retry creates nothing
		// more, and finds the instance.
		req.Event.ID, req.InstanceID = key.id("create", c.Name), key.id("create-instance", c.Name)
	}
	in, err := s.b.Create(ctx, req)
	if err != nil && key != nil {
		if in, err = s.replayCreate(ctx, req, err); err == nil {
			replayed(w)
		}
	}
	if err != nil {
		return err
	}
	return s.writeEncoded(w, http.StatusCreated, func(b []byte) ([]byte, error) { return appendCreateAnswer(b, &in) })
}

// eventBody is the body of the event endpoints: {type: "E"} or {event: "E"}, payload.
type eventBody struct {
	Type    string         `json:"type"`
	Event   eventRef       `json:"event"`
	Payload map[string]any `json:"payload"`
	// Reason, optional, is why the operator sends it (audit trail).
	Reason string `json:"reason"`
}

// decodeEvent reads an event body. The common body ({"type": "E"}, maybe a payload) takes
// json.Unmarshal, cheaper than a Decoder; anything it does not take as is (an error, an
// event given as an object) goes through decode, whose answers it keeps.
func (s *server) decodeEvent(w http.ResponseWriter, r *http.Request) (eventBody, error) {
	var body eventBody
	bp, err := s.readBody(w, r)
	if err != nil {
		return body, err
	}
	defer s.bufs.put(bp)
	var fast struct {
		Type    string          `json:"type"`
		Event   json.RawMessage `json:"event"`
		Payload json.RawMessage `json:"payload"`
		Reason  string          `json:"reason"`
	}
	if json.Unmarshal(*bp, &fast) == nil && fast.Event == nil && decodePayload(fast.Payload, &body.Payload) {
		body.Type, body.Reason = fast.Type, fast.Reason
		return body, nil
	}
	body = eventBody{}
	return body, decodeBody(*bp, &body, false, s.opts.MaxBodyBytes)
}

// decodePayload decodes a payload object with numbers kept exact (UseNumber); it reports
// false for anything else than an object or null.
func decodePayload(raw json.RawMessage, p *map[string]any) bool {
	if raw == nil || string(raw) == "null" {
		return true
	}
	if raw[0] != '{' {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(p) == nil
}

func (b *eventBody) event() (xc.Event, error) {
	typ, payload := b.Type, b.Payload
	if typ == "" {
		typ = b.Event.Type
	}
	if payload == nil {
		payload = b.Event.Payload
	}
	if typ == "" {
		return xc.Event{}, badRequest(`missing event type: send {"type": "NAME"} or {"event": "NAME"}`)
	}
	if err := checkName("event type", typ); err != nil {
		return xc.Event{}, err
	}
	reason, err := checkReason(b.Reason)
	if err != nil {
		return xc.Event{}, err
	}
	return xc.Event{Type: typ, Payload: payload, Reason: reason}, nil
}

func (s *server) handleComponentEvent(w http.ResponseWriter, r *http.Request) error {
	c, err := s.component(r.PathValue("component"))
	if err != nil {
		return err
	}
	return s.send(w, r, c.Name)
}

func (s *server) handleTrigger(w http.ResponseWriter, r *http.Request) error {
	return s.send(w, r, "")
}

// send delivers the event of the body to instance {id}; comp, when set, must be its component.
func (s *server) send(w http.ResponseWriter, r *http.Request, comp string) error {
	id := pathID(r)
	if err := checkID(id); err != nil {
		return err
	}
	body, err := s.decodeEvent(w, r)
	if err != nil {
		return err
	}
	ev, err := body.event()
	if err != nil {
		return err
	}
	ev.Actor, ev.Source = actor(w), xc.SourceAPI
	key, err := idempotencyKey(w, r)
	if err != nil {
		return err
	}
	if key != nil {
		ev.ID = key.id("event", id) // both event routes: the same instance, the same event
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	res, err := s.b.Send(ctx, comp, id, ev)
	if err != nil && key != nil {
		if res, err = s.replayEvent(ctx, comp, id, ev, err); err == nil {
			replayed(w)
		}
	}
	if err != nil {
		return err
	}
	return s.writeEncoded(w, http.StatusOK, func(b []byte) ([]byte, error) { return appendEventAnswer(b, &res) })
}

type broadcastBody struct {
	MachineName  string   `json:"machineName"`
	Event        eventRef `json:"event"`
	CurrentState string   `json:"currentState"`
	Reason       string   `json:"reason"`
}

func (s *server) handleBroadcast(w http.ResponseWriter, r *http.Request) error {
	c, err := s.component(r.PathValue("component"))
	if err != nil {
		return err
	}
	var body broadcastBody
	if err := s.decode(w, r, &body, false); err != nil {
		return err
	}
	if err := checkName("machineName", body.MachineName); err != nil {
		return err
	}
	if err := checkName("event type", body.Event.Type); err != nil {
		return err
	}
	if body.CurrentState != "" {
		if err := checkName("currentState", body.CurrentState); err != nil {
			return err
		}
	}
	reason, err := checkReason(body.Reason)
	if err != nil {
		return err
	}
	if r.Header.Get(HeaderIdempotencyKey) != "" {
		// The instances a broadcast reaches are those in the state when it runs: a retry
		// would reach others. POST /api/events with instanceIds takes a key.
		return badRequest("%s is not supported on broadcast: send the event to a list of instances with POST /api/events (instanceIds), which takes one", HeaderIdempotencyKey)
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	res, err := s.b.Broadcast(ctx, xc.BroadcastRequest{Component: c.Name, Machine: body.MachineName, State: body.CurrentState,
		Event: xc.Event{Type: body.Event.Type, Payload: body.Event.Payload, Actor: actor(w), Source: xc.SourceAPI, Reason: reason}})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

// ---- reads ----

// query reads the list filters: component, machine, state, status, q, from, to, limit, cursor.
func query(v url.Values) (store.Query, error) {
	q := store.Query{Component: v.Get("component"), Machine: v.Get("machine"), State: v.Get("state"),
		Text: v.Get("q"), Cursor: v.Get("cursor"), Limit: defaultLimit}
	for name, val := range map[string]string{"component": q.Component, "machine": q.Machine, "state": q.State} {
		if val != "" {
			if err := checkName(name, val); err != nil {
				return q, err
			}
		}
	}
	if len(q.Text) > maxQueryText {
		return q, badRequest("q is longer than %d bytes", maxQueryText)
	}
	if strings.IndexByte(q.Text, 0) >= 0 { // PostgreSQL refuses NUL: a client error, not a 503
		return q, badRequest("q must not contain a NUL character")
	}
	if len(q.Cursor) > maxCursor {
		return q, badRequest("invalid cursor")
	}
	switch st := v.Get("status"); st {
	case "", "all":
	case string(store.StatusActive), string(store.StatusCompleted), string(store.StatusError), string(store.StatusTerminated):
		q.Status = store.Status(st)
	default:
		return q, badRequest("status %q: want active, completed, error, terminated or all", truncate(st, 32))
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return q, badRequest("limit %q: want a positive integer", truncate(l, 32))
		}
		q.Limit = min(n, maxLimit)
	}
	var err error
	if q.From, err = timeParam(v, "from"); err != nil {
		return q, err
	}
	if q.To, err = timeParam(v, "to"); err != nil {
		return q, err
	}
	return q, nil
}

// timeParam reads a time filter: ms epoch, RFC 3339 or a date (YYYY-MM-DD, UTC). A date as
// the upper bound ("to") means the end of that day.
func timeParam(v url.Values, name string) (int64, error) {
	s := v.Get(name)
	if s == "" {
		return 0, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && ms >= 0 {
		return ms, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMilli(), nil
		}
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		if name == "to" {
			t = t.Add(24*time.Hour - time.Millisecond)
		}
		return t.UnixMilli(), nil
	}
	return 0, badRequest("%s %q: want ms since the epoch, RFC 3339 or YYYY-MM-DD", name, truncate(s, 40))
}

func (s *server) list(w http.ResponseWriter, r *http.Request, comp string) error {
	q, err := query(r.URL.Query())
	if err != nil {
		return err
	}
	if comp != "" {
		q.Component = comp
	}
	alts, err := whereConds(r.URL.Query())
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	var ins []xc.Instance
	var next string
	if alts != nil {
		ins, next, err = s.searchWhere(ctx, q, alts, whereValues(r.URL.Query()))
	} else {
		ins, next, err = s.b.Search(ctx, q)
	}
	if err != nil {
		return err
	}
	return s.writeEncoded(w, http.StatusOK, func(b []byte) ([]byte, error) { return appendListAnswer(b, ins, next) })
}

func (s *server) handleInstances(w http.ResponseWriter, r *http.Request) error {
	return s.list(w, r, "")
}

func (s *server) handleComponentInstances(w http.ResponseWriter, r *http.Request) error {
	c, err := s.component(r.PathValue("component"))
	if err != nil {
		return err
	}
	return s.list(w, r, c.Name)
}

// instanceRef names a related instance (parent, child).
type instanceRef struct {
	ID            string       `json:"id"`
	ComponentName string       `json:"componentName,omitempty"`
	MachineName   string       `json:"machineName"`
	CurrentState  string       `json:"currentState,omitempty"`
	Status        store.Status `json:"status,omitempty"`
}

func ref(in xc.Instance) *instanceRef {
	return &instanceRef{ID: in.ID, ComponentName: in.ComponentName, MachineName: in.MachineName,
		CurrentState: in.CurrentState, Status: in.Status}
}

// handleInstance answers one instance with its pending timeouts, parent and children.
func (s *server) handleInstance(w http.ResponseWriter, r *http.Request) error {
	id := pathID(r)
	if err := checkID(id); err != nil {
		return err
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	in, err := s.b.Instance(ctx, id)
	if err != nil {
		return err
	}
	var parent *instanceRef
	if in.ParentInstanceID != "" {
		if p, err := s.b.Instance(ctx, in.ParentInstanceID); err == nil {
			parent = ref(p)
		} else {
			parent = &instanceRef{ID: in.ParentInstanceID, MachineName: in.ParentMachineName}
		}
	}
	children, err := s.children(ctx, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct {
		instanceItem
		Parent   *instanceRef  `json:"parent"`
		Children []instanceRef `json:"children"`
	}{item(in), parent, children})
}
