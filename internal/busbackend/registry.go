package busbackend

import (
	"bytes"
	"context"
	"sort"
	"time"

	"github.com/google/uuid"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/internal/httpapi"
	"github.com/xcomponent/xcomponent/internal/redact"
	"github.com/xcomponent/xcomponent/wire"
)

// forgetAfter: a runtime lost or stopped for forgetAfter × LostAfter (10 min by default) is
// removed from the registry.
const forgetAfter = 10

// Runtime statuses shown in /api/runtimes.
const (
	StatusUp      = "up"      // heard from within LostAfter
	StatusLost    = "lost"    // silent for LostAfter
	StatusStopped = "stopped" // announced its shutdown
)

// runtimeEntry is what the registry knows of one runtime.
type runtimeEntry struct {
	id, name, component, host string
	port                      int
	lastSeen                  time.Time
	stopped                   bool
	// lost is the status last reported on the feed (runtime_disconnected sent).
	lost bool
	// ours: the runtime announced our additions (it shares the database, sends replies).
	ours bool
}

func (r *runtimeEntry) status(now time.Time, lostAfter time.Duration) string {
	switch {
	case r.stopped:
		return StatusStopped
	case now.Sub(r.lastSeen) >= lostAfter:
		return StatusLost
	default:
		return StatusUp
	}
}

// compEntry is an announced component: its definition and the announce it was parsed from.
type compEntry struct {
	def *component.Component
	raw []byte
}

// Runtimes implements httpapi.Backend: every runtime heard of, by component then name.
func (b *Backend) Runtimes(context.Context) ([]httpapi.Runtime, error) {
	now := b.clk.Now()
	b.mu.Lock()
	counts := map[string]int{}
	for _, e := range b.instances {
		if e.in.Status == "active" {
			counts[e.runtimeID]++
		}
	}
	out := make([]httpapi.Runtime, 0, len(b.runtimes))
	for _, r := range b.runtimes {
		out = append(out, httpapi.Runtime{RuntimeID: r.id, RuntimeName: r.name, ComponentName: r.component,
			Host: r.host, Port: r.port, LastSeen: r.lastSeen.UnixMilli(), Status: r.status(now, b.cfg.LostAfter),
			Instances: counts[r.id]})
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].ComponentName != out[j].ComponentName {
			return out[i].ComponentName < out[j].ComponentName
		}
		if out[i].RuntimeName != out[j].RuntimeName {
			return out[i].RuntimeName < out[j].RuntimeName
		}
		return out[i].RuntimeID < out[j].RuntimeID
	})
	return out, nil
}

// upRuntimes counts the runtimes of a component that are up.
func (b *Backend) upRuntimes(comp string) (up int, ours bool) {
	now := b.clk.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.runtimes {
		if r.component == comp && r.status(now, b.cfg.LostAfter) == StatusUp {
			up++
			ours = ours || r.ours
		}
	}
	return up, ours
}

// sighting is a sign of life of a runtime: an announce (with its address) or any other
// message it sent.
type sighting struct {
	id, name, component string
	// announce: host, port and ours are known.
	announce bool
	host     string
	port     int
	ours     bool
}

// seen records a sign of life of a runtime. A runtime never seen before is reported
// (runtime_connected) and fsm:commands:query_instances is sent for it, once per runtime id
// (wire.md's loop-avoidance rule); a runtime that comes back (after lost or stopped) is up
// again: runtime_connected.
func (b *Backend) seen(s sighting) {
	if s.id == "" {
		return
	}
	b.mu.Lock()
	r, known := b.runtimes[s.id]
	if !known {
		r = &runtimeEntry{id: s.id}
		b.runtimes[s.id] = r
	}
	wasDown := known && (r.stopped || r.lost)
	if s.name != "" {
		r.name = s.name
	}
	if s.component != "" {
		r.component = s.component
	}
	if s.announce {
		r.host, r.port, r.ours = s.host, s.port, s.ours
	}
	// The dashboard's clock decides liveness: runtimes' clocks may disagree with it.
	r.lastSeen = b.clk.Now()
	r.stopped, r.lost = false, false
	if !known || wasDown {
		ev := runtimeEvent(httpapi.EvRuntimeConnected, r, StatusUp)
		b.mu.Unlock()
		b.feed.emit(ev)
	} else {
		b.mu.Unlock() // the common case: every event and reply of a known runtime comes here
	}
	if !known {
		b.log.Info("runtime discovered", "runtime", s.id, "name", s.name, "component", s.component)
		go b.queryInstances(s.id)
	}
}

func runtimeEvent(kind xc.RuntimeEventKind, r *runtimeEntry, status string) xc.RuntimeEvent {
	return xc.RuntimeEvent{Component: r.component, Timestamp: wire.Now(), Data: httpapi.BackendEvent{Name: kind,
		Fields: map[string]any{"runtimeId": r.id, "runtimeName": r.name, "componentName": r.component,
			"host": r.host, "port": r.port, "status": status, "lastSeen": r.lastSeen.UnixMilli()}}}
}

// queryInstances asks every runtime for its instances (they answer on fsm:responses:query).
func (b *Backend) queryInstances(runtimeID string) {
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.CommandTimeout)
	defer cancel()
	body, err := wire.Encode(wire.QueryInstances{Type: wire.TypeQueryInstances, Timestamp: wire.Millis(b.clk.Now())})
	if err == nil {
		err = b.cfg.Bus.Publish(ctx, wire.ChannelQueryInstances, body, bus.Meta{MessageID: uuid.NewString()})
	}
	if err != nil && b.ctx.Err() == nil {
		b.log.Warn("query_instances not sent", "newRuntime", runtimeID, "err", err)
	}
}

func (b *Backend) onAnnounce(_ context.Context, m bus.Message) error {
	a, err := wire.Decode[wire.Announce](m.Body)
	if err != nil || a.RuntimeID == "" || a.ComponentName == "" {
		b.log.Warn("announce ignored: undecodable or without runtimeId/componentName", "body", truncate(m.Body), "err", err)
		return nil
	}
	b.mu.Lock()
	ce := b.components[a.ComponentName]
	changed := len(a.Component) > 0 && (ce == nil || !bytes.Equal(ce.raw, a.Component))
	if a.Partitions > 0 {
		b.partitions[a.ComponentName] = a.Partitions
	}
	b.mu.Unlock()
	if changed {
		b.learnComponent(a)
	}
	// xcomponent-ai runtimes send no runtimeName: their announce carries the runtime name in host.
	b.seen(sighting{id: a.RuntimeID, name: firstOf(a.RuntimeName, a.Host), component: a.ComponentName, announce: true,
		host: firstOf(a.Hostname, a.Host), port: a.Port, ours: a.RuntimeName != "" || a.Status != ""})
	return nil
}

// learnComponent parses an announced component definition (a new one, or one that changed)
// and makes it known; a definition that does not load is logged and ignored.
func (b *Backend) learnComponent(a wire.Announce) {
	def, err := component.Parse(a.Component, "announce of runtime "+a.RuntimeID)
	if err != nil {
		b.log.Warn("announced component not loadable: ignored", "component", a.ComponentName, "runtime", a.RuntimeID, "err", err)
		return
	}
	if def.Name != a.ComponentName {
		b.log.Warn("announced component name differs from componentName: ignored", "componentName", a.ComponentName, "definition", def.Name)
		return
	}
	b.mu.Lock()
	b.components[def.Name] = &compEntry{def: def, raw: append([]byte(nil), a.Component...)}
	b.mu.Unlock()
	b.log.Info("component announced", "component", def.Name, "runtime", a.RuntimeID, "machines", len(def.StateMachines))
	b.feed.emit(xc.RuntimeEvent{Component: def.Name, Timestamp: wire.Now(), Data: httpapi.BackendEvent{Name: "component_announced",
		Fields: map[string]any{"componentName": def.Name, "runtimeId": a.RuntimeID}}})
}

func (b *Backend) onHeartbeat(_ context.Context, m bus.Message) error {
	h, err := wire.Decode[wire.Heartbeat](m.Body)
	if err != nil || h.RuntimeID == "" {
		b.log.Warn("heartbeat ignored: undecodable or without runtimeId", "body", truncate(m.Body), "err", err)
		return nil
	}
	b.seen(sighting{id: h.RuntimeID, name: h.RuntimeName, component: h.ComponentName})
	return nil
}

func (b *Backend) onShutdown(_ context.Context, m bus.Message) error {
	h, err := wire.Decode[wire.Shutdown](m.Body)
	if err != nil || h.RuntimeID == "" {
		b.log.Warn("shutdown ignored: undecodable or without runtimeId", "body", truncate(m.Body), "err", err)
		return nil
	}
	b.mu.Lock()
	r := b.runtimes[h.RuntimeID]
	if r == nil {
		r = &runtimeEntry{id: h.RuntimeID, name: h.RuntimeName, component: h.ComponentName}
		b.runtimes[h.RuntimeID] = r
	}
	r.lastSeen, r.stopped = b.clk.Now(), true
	ev := runtimeEvent(httpapi.EvRuntimeDisconnected, r, StatusStopped)
	b.mu.Unlock()
	b.log.Info("runtime stopped", "runtime", h.RuntimeID, "name", h.RuntimeName, "component", h.ComponentName)
	b.feed.emit(ev)
	return nil
}

// scheduleSweep arms the next check for runtimes that went silent.
func (b *Backend) scheduleSweep() {
	// Every second (a scan of the registry): a lost runtime is reported on the stream, and so
	// in the UI, within a second of reaching LostAfter.
	every := min(time.Second, b.cfg.LostAfter/4)
	if every < 100*time.Millisecond {
		every = 100 * time.Millisecond
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.sweep = b.clk.AfterFunc(every, func() {
		b.sweepLost()
		b.scheduleSweep()
	})
}

// sweepLost reports the runtimes that became lost since the last sweep.
func (b *Backend) sweepLost() {
	now := b.clk.Now()
	var evs []xc.RuntimeEvent
	b.mu.Lock()
	for id, r := range b.runtimes {
		// Runtimes gone for good are forgotten after a while, so that restarts do not pile up
		// in the panel (a runtime id is never reused: a restarted runtime is a new entry).
		if (r.lost || r.stopped) && now.Sub(r.lastSeen) >= forgetAfter*b.cfg.LostAfter {
			delete(b.runtimes, id)
			continue
		}
		if !r.lost && !r.stopped && r.status(now, b.cfg.LostAfter) == StatusLost {
			r.lost = true
			evs = append(evs, runtimeEvent(httpapi.EvRuntimeDisconnected, r, StatusLost))
			b.log.Warn("runtime lost: no heartbeat", "runtime", r.id, "name", r.name, "component", r.component, "silentFor", now.Sub(r.lastSeen).Round(time.Second))
		}
	}
	b.mu.Unlock()
	for _, ev := range evs {
		b.feed.emit(ev)
	}
}

func maskURL(raw string) string {
	if raw == "" {
		return "none"
	}
	return redact.URL(raw)
}

func truncate(b []byte) string {
	const n = 512
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
