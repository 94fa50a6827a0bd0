package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/store"
)

// The live stream is Server-Sent Events at GET /api/stream (?component=C, ?instance=ID to
// narrow it; ?token=T when auth is on, since EventSource cannot send headers). Each SSE
// message has the runtime event's type as its event name and, as data, the fields of the
// wire.md fsm:events:* envelope's data plus componentName, eventType and timestamp:
//
//	event: state_change
//	data: {"instanceId":"…","machineName":"Order","previousState":"Created","newState":"Paid","event":{…},"context":{…},"pendingTimeouts":[…],"componentName":"Orders","eventType":"state_change","timestamp":1735689600000}
//
// On connect: components_list {components} then, per component, instances_update
// {componentName, instances} (its active instances). Then instance_created, state_change,
// instance_completed, runtime_connected, runtime_disconnected, and the engine's other runtime
// events (event_ignored, timeout_fired, broadcast_completed, …). Comment lines ": heartbeat"
// keep the connection alive. A client that falls StreamBuffer messages behind is dropped
// (the response ends); it may reconnect and reload.

// hubBuffer is the backend subscription's buffer, shared by every stream client.
const hubBuffer = 4096

// maxSnapshot bounds the instances sent in instances_update on connect, per component;
// snapshotPage is how many are read from the store at once.
const (
	maxSnapshot  = 1000
	snapshotPage = 20
)

// hub fans the backend's runtime events out to stream clients. It subscribes to the backend
// while it has clients, and its dispatch never blocks: a client whose buffer is full is
// dropped.
type hub struct {
	b      Backend
	buffer int
	log    *slog.Logger

	// maxTotal and maxPerKey cap the clients (see Options.MaxStreams).
	maxTotal, maxPerKey int

	mu      sync.Mutex
	perKey  map[string]int
	clients map[*client]struct{}
	gen     int    // subscription generation
	cancel  func() // ends the current subscription; nil when none
}

// client is one stream connection.
type client struct {
	component, instance string
	key                 string        // the token's actor, or the client address
	ch                  chan []byte   // SSE messages
	gone                chan struct{} // closed when the client is dropped
	once                sync.Once
}

func (c *client) drop() { c.once.Do(func() { close(c.gone) }) }

func (c *client) wants(ev *xc.RuntimeEvent) bool {
	return (c.component == "" || ev.Component == c.component) && (c.instance == "" || ev.InstanceID == c.instance)
}

func newHub(b Backend, buffer int, log *slog.Logger) *hub {
	return &hub{b: b, buffer: buffer, log: log, clients: map[*client]struct{}{}, perKey: map[string]int{},
		maxTotal: 256, maxPerKey: 16}
}

// join registers a client, subscribing to the backend if it is the first. It refuses a
// client beyond the caps: 503 over the total, 429 over the client's own.
func (h *hub) join(component, instance, key string) (*client, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.clients) >= h.maxTotal {
		return nil, &apiError{status: http.StatusServiceUnavailable,
			msg: fmt.Sprintf("too many live streams open (%d): try again later", h.maxTotal)}
	}
	if h.perKey[key] >= h.maxPerKey {
		return nil, &apiError{status: http.StatusTooManyRequests,
			msg: fmt.Sprintf("too many live streams for this client (%d open): close one first", h.maxPerKey)}
	}
	c := &client{component: component, instance: instance, key: key, ch: make(chan []byte, h.buffer), gone: make(chan struct{})}
	h.perKey[key]++
	h.clients[c] = struct{}{}
	if h.cancel == nil {
		events, cancel := h.b.Subscribe(hubBuffer)
		h.gen++
		h.cancel = cancel
		go h.run(events, h.gen)
	}
	return c, nil
}

// forget removes c from the clients and its key's count; h.mu is held.
func (h *hub) forget(c *client) {
	if _, ok := h.clients[c]; !ok {
		return
	}
	delete(h.clients, c)
	if h.perKey[c.key]--; h.perKey[c.key] <= 0 {
		delete(h.perKey, c.key)
	}
}

// leave unregisters a client, ending the subscription after the last one.
func (h *hub) leave(c *client) {
	c.drop()
	h.mu.Lock()
	h.forget(c)
	var cancel func()
	if len(h.clients) == 0 && h.cancel != nil {
		cancel, h.cancel = h.cancel, nil
	}
	h.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// run dispatches the events of one subscription until it ends (last client left, or the
// backend closed: then every client is dropped).
func (h *hub) run(events <-chan xc.RuntimeEvent, gen int) {
	for ev := range events {
		h.dispatch(&ev)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen != gen || h.cancel == nil {
		return // ended by leave; a newer subscription may be running
	}
	h.cancel = nil
	for c := range h.clients {
		c.drop()
		h.forget(c)
	}
}

func (h *hub) dispatch(ev *xc.RuntimeEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var msg []byte
	for c := range h.clients {
		if !c.wants(ev) {
			continue
		}
		if msg == nil {
			msg = sseMessage(string(ev.Kind()), streamData(ev))
		}
		select {
		case c.ch <- msg:
		default:
			h.log.Warn("stream client too slow: dropped", "component", c.component, "instance", c.instance)
			c.drop()
			h.forget(c)
		}
	}
	if len(h.clients) == 0 && h.cancel != nil {
		h.cancel() // closes events; run ends
		h.cancel = nil
	}
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// sseMessage frames one SSE message. JSON never contains raw newlines, so data is one line.
func sseMessage(event string, data any) []byte {
	b, err := marshal(data)
	if err != nil {
		b, _ = marshal(map[string]string{"error": "unencodable event: " + err.Error()})
	}
	var buf bytes.Buffer
	buf.Grow(len(b) + len(event) + 16)
	buf.WriteString("event: ")
	buf.WriteString(event)
	buf.WriteString("\ndata: ")
	buf.Write(b) // ends with the encoder's newline
	buf.WriteString("\n")
	return buf.Bytes()
}

// handleStream serves the live stream (see the comment at the top of this file).
func (s *server) handleStream(w http.ResponseWriter, r *http.Request) error {
	comp, inst := r.URL.Query().Get("component"), strings.ToLower(r.URL.Query().Get("instance"))
	if comp != "" {
		if _, err := s.component(comp); err != nil {
			return err
		}
	}
	if inst != "" {
		if err := checkID(inst); err != nil {
			return err
		}
	}
	rc := http.NewResponseController(w)
	// The server's ReadTimeout is for reading requests: a stream outlives it, and a read
	// deadline passing would cancel the request context, ending the stream.
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("Connection", "close") // a stream's connection is never reused
	// Subscribe before the snapshot, so that nothing happening meanwhile is missed.
	c, err := s.hub.join(comp, inst, streamKey(w, r))
	if err != nil {
		return err
	}
	defer s.hub.leave(c)
	w.WriteHeader(http.StatusOK)
	write := func(p []byte) error {
		_ = rc.SetWriteDeadline(time.Now().Add(s.opts.StreamWriteTimeout))
		if _, err := w.Write(p); err != nil {
			return err
		}
		return rc.Flush()
	}
	// The server's last flush after the handler must not hang on a client that stopped reading.
	defer func() { _ = rc.SetWriteDeadline(time.Now().Add(s.opts.StreamWriteTimeout)) }()
	if err := s.snapshot(r, comp, inst, write); err != nil {
		return nil // the client is gone; nothing to answer
	}
	tick := time.NewTicker(s.opts.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-s.opts.Closing:
			return nil
		case <-c.gone:
			return nil
		case msg := <-c.ch:
			if err := write(msg); err != nil {
				return nil
			}
		case <-tick.C:
			if err := write([]byte(": heartbeat\n\n")); err != nil {
				return nil
			}
		}
	}
}

// streamKey is who a stream counts against: the token's actor, else the client address.
func streamKey(w http.ResponseWriter, r *http.Request) string {
	if ri := info(w); ri.authd {
		return ri.who.actor
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// snapshot writes what a client gets on connect: retry delay, components_list and
// instances_update per component. It is bounded in bytes (StreamSnapshotBytes for this
// client, instances read from the store a page at a time, a few snapshots built at once) and
// written a component at a time. publicMember, always equal to context, is left out.
func (s *server) snapshot(r *http.Request, comp, inst string, write func([]byte) error) error {
	select {
	case s.snapshots <- struct{}{}:
		defer func() { <-s.snapshots }()
	case <-r.Context().Done():
		return r.Context().Err()
	}
	var head bytes.Buffer
	head.WriteString("retry: 3000\n\n")
	head.Write(sseMessage("components_list", map[string]any{"components": s.summaries()}))
	if err := write(head.Bytes()); err != nil {
		return err
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	budget := s.opts.StreamSnapshotBytes
	if inst != "" {
		if in, err := s.b.Instance(ctx, inst); err == nil && (comp == "" || in.ComponentName == comp) {
			msg, _ := instancesUpdate(in.ComponentName, []xc.Instance{in}, &budget)
			return write(msg)
		}
		return nil
	}
	for _, c := range s.b.Components() {
		if comp != "" && c.Name != comp {
			continue
		}
		var ins []xc.Instance
		cursor, sent := "", 0
		for sent < maxSnapshot {
			page, next, err := s.b.Search(ctx, store.Query{Component: c.Name, Status: store.StatusActive,
				Limit: min(snapshotPage, maxSnapshot-sent), Cursor: cursor})
			if err != nil {
				s.log.Warn("stream snapshot: search failed", "component", c.Name, "err", err)
				break
			}
			ins = append(ins, page...)
			sent += len(page)
			if next == "" || len(page) == 0 || snapshotSize(ins) > budget {
				break
			}
			cursor = next
		}
		msg, truncated := instancesUpdate(c.Name, ins, &budget)
		if truncated {
			s.log.Warn("stream snapshot truncated", "component", c.Name, "limitBytes", s.opts.StreamSnapshotBytes)
		}
		if err := write(msg); err != nil {
			return err
		}
	}
	return nil
}

// snapshotSize is an estimate of the encoded size of ins (their contexts dominate).
func snapshotSize(ins []xc.Instance) int {
	n := 0
	for i := range ins {
		b, _ := json.Marshal(ins[i].Context)
		n += len(b) + 256
	}
	return n
}

// instancesUpdate encodes the instances_update message of one component with as many of
// ins as *budget bytes hold (at least none); it reports whether some were left out.
func instancesUpdate(component string, ins []xc.Instance, budget *int) ([]byte, bool) {
	var buf bytes.Buffer
	name, _ := marshal(component)
	buf.WriteString(`{"componentName":`)
	buf.Write(bytes.TrimSpace(name))
	buf.WriteString(`,"instances":[`)
	truncated, n := false, 0
	for i := range ins {
		in := ins[i]
		in.PublicMember = nil // equal to context
		b, err := marshal(item(in))
		if err != nil {
			continue
		}
		b = bytes.TrimSpace(b)
		if len(b) > *budget {
			truncated = true
			break
		}
		*budget -= len(b)
		if n > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b)
		n++
	}
	buf.WriteString("]")
	if truncated {
		buf.WriteString(`,"truncated":true`)
	}
	buf.WriteString("}")
	return sseMessage("instances_update", json.RawMessage(buf.Bytes())), truncated
}
