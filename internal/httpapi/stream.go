package httpapi

import (
	"bytes"
	"log/slog"
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

// maxSnapshot bounds the instances sent in instances_update on connect, per component.
const maxSnapshot = 1000

// hub fans the backend's runtime events out to stream clients. It subscribes to the backend
// while it has clients, and its dispatch never blocks: a client whose buffer is full is
// dropped.
type hub struct {
	b      Backend
	buffer int
	log    *slog.Logger

	mu      sync.Mutex
	clients map[*client]struct{}
	gen     int    // subscription generation
	cancel  func() // ends the current subscription; nil when none
}

// client is one stream connection.
type client struct {
	component, instance string
	ch                  chan []byte   // SSE messages
	gone                chan struct{} // closed when the client is dropped
	once                sync.Once
}

func (c *client) drop() { c.once.Do(func() { close(c.gone) }) }

func (c *client) wants(ev *xc.RuntimeEvent) bool {
	return (c.component == "" || ev.Component == c.component) && (c.instance == "" || ev.InstanceID == c.instance)
}

func newHub(b Backend, buffer int, log *slog.Logger) *hub {
	return &hub{b: b, buffer: buffer, log: log, clients: map[*client]struct{}{}}
}

// join registers a client, subscribing to the backend if it is the first.
func (h *hub) join(component, instance string) *client {
	c := &client{component: component, instance: instance, ch: make(chan []byte, h.buffer), gone: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clients[c] = struct{}{}
	if h.cancel == nil {
		events, cancel := h.b.Subscribe(hubBuffer)
		h.gen++
		h.cancel = cancel
		go h.run(events, h.gen)
	}
	return c
}

// leave unregisters a client, ending the subscription after the last one.
func (h *hub) leave(c *client) {
	c.drop()
	h.mu.Lock()
	delete(h.clients, c)
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
		delete(h.clients, c)
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
			delete(h.clients, c)
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
	c := s.hub.join(comp, inst)
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
	if err := write(s.snapshot(r, comp, inst)); err != nil {
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

// snapshot is what a client gets on connect: retry delay, components_list and
// instances_update per component.
func (s *server) snapshot(r *http.Request, comp, inst string) []byte {
	var buf bytes.Buffer
	buf.WriteString("retry: 3000\n\n")
	buf.Write(sseMessage("components_list", map[string]any{"components": s.summaries()}))
	ctx, cancel := s.ctx(r)
	defer cancel()
	if inst != "" {
		if in, err := s.b.Instance(ctx, inst); err == nil && (comp == "" || in.ComponentName == comp) {
			buf.Write(sseMessage("instances_update", map[string]any{"componentName": in.ComponentName, "instances": items([]xc.Instance{in})}))
		}
		return buf.Bytes()
	}
	for _, c := range s.b.Components() {
		if comp != "" && c.Name != comp {
			continue
		}
		ins, _, err := s.b.Search(ctx, store.Query{Component: c.Name, Status: store.StatusActive, Limit: maxSnapshot})
		if err != nil {
			s.log.Warn("stream snapshot: search failed", "component", c.Name, "err", err)
			continue
		}
		buf.Write(sseMessage("instances_update", map[string]any{"componentName": c.Name, "instances": items(ins)}))
	}
	return buf.Bytes()
}
