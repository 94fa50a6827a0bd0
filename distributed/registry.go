package distributed

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/internal/wiremap"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/wire"
)

// maxQueryInstances bounds the instances of one fsm:responses:query answer.
const maxQueryInstances = 10000

// componentJSON is the component definition as announced: the YAML document with its own
// (camelCase) keys, unknown keys kept.
func componentJSON(c *component.Component) (json.RawMessage, error) {
	if c.Raw != nil {
		if b, err := json.Marshal(c.Raw); err == nil {
			return b, nil
		}
	}
	return json.Marshal(c)
}

// onBrokerState is called by the bus on every connection change: re-announce once the
// subscriptions are live again.
func (r *runtime) onBrokerState(connected bool) {
	r.metrics.brokerState(connected)
	if !connected {
		return
	}
	select {
	case r.announceReq <- struct{}{}:
	default:
	}
}

func (r *runtime) isReady() bool {
	r.readyMu.Lock()
	defer r.readyMu.Unlock()
	return r.ready
}

func (r *runtime) heartbeat(status string) wire.Heartbeat {
	return wire.Heartbeat{RuntimeID: r.id, ComponentName: r.comp.Name, Timestamp: wire.Now(),
		RuntimeName: r.cfg.RuntimeName, Status: status}
}

// announce publishes fsm:registry:announce. Host is the runtime name, as xcomponent-ai's
// runtimes send it: its dashboard tells runtimes apart by host, and two replicas may share a
// machine. The machine's hostname travels in our Hostname field.
func (r *runtime) announce(ctx context.Context) error {
	body, err := wire.Encode(wire.Announce{
		RuntimeID: r.id, ComponentName: r.comp.Name, Component: r.compRaw,
		Host: r.cfg.RuntimeName, Hostname: r.host, Port: r.cfg.Port, Timestamp: wire.Now(),
		RuntimeName: r.cfg.RuntimeName, Version: r.comp.Version, Status: "running", Partitions: r.cfg.Partitions,
	})
	if err != nil {
		return err
	}
	return r.bus.Publish(ctx, wire.ChannelAnnounce, body, bus.Meta{MessageID: uuid.NewString()})
}

// registryLoop sends heartbeats and re-announces after reconnections until ctx ends.
func (r *runtime) registryLoop(ctx context.Context) {
	tick := time.NewTicker(r.cfg.HeartbeatInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.announceReq:
			if !r.isReady() {
				continue // the start announces anyway
			}
			if err := r.announce(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("re-announce failed", "err", err)
			} else if err == nil {
				r.log.Info("re-announced after broker reconnection")
			}
		case <-tick.C:
			r.logDropped()
			// A heartbeat that cannot go out within an interval is stale: skip it.
			hctx, cancel := context.WithTimeout(ctx, r.cfg.HeartbeatInterval)
			body, _ := wire.Encode(r.heartbeat("running"))
			err := r.bus.Publish(hctx, wire.ChannelHeartbeat, body, bus.Meta{MessageID: uuid.NewString()})
			cancel()
			if err != nil && ctx.Err() == nil {
				r.log.Warn("heartbeat not sent", "err", err)
			}
		}
	}
}

func (r *runtime) onDiscover(ctx context.Context, m bus.Message) error {
	if err := r.announce(ctx); err != nil {
		if ctx.Err() == nil {
			r.log.Warn("announce on discover failed", "err", err)
		}
		return err
	}
	return nil
}

func (r *runtime) onQueryInstances(ctx context.Context, m bus.Message) error {
	if err := r.onDiscover(ctx, m); err != nil {
		return err
	}
	q, _ := wire.Decode[wire.QueryInstances](m.Body) // its fields only trace the request
	instances, err := r.liveInstances(ctx)
	if err != nil {
		r.log.Warn("query_instances: reading the store failed", "err", err)
		return err
	}
	resp := wire.QueryResponse{Type: wire.TypeInstances, RuntimeID: r.id, ComponentName: r.comp.Name,
		Instances: instances, Timestamp: wire.Now(), RuntimeName: r.cfg.RuntimeName}
	resp.CausationID = q.CommandID
	if resp.CausationID == "" {
		resp.CausationID = m.MessageID
	}
	resp.CorrelationID = m.CorrelationID
	body, err := wire.Encode(resp)
	if err != nil {
		return err
	}
	return r.bus.Publish(ctx, wire.ChannelQueryResponse, body, bus.Meta{MessageID: uuid.NewString(), CorrelationID: m.CorrelationID})
}

// Finished instances listed in a query answer besides the active ones: those completed or
// failed in the last recentFinishedMs, at most maxRecentFinished of each status, newest first.
// A dashboard (re)started after an instance completed still sees it complete.
const (
	recentFinishedMs  = int64(time.Hour / time.Millisecond)
	maxRecentFinished = 500
)

// liveInstances reads from the store, the source of truth shared by every runtime of the
// component (the engine's own live set may lag behind what the other runtimes did), the
// component's active instances and its recently finished ones.
func (r *runtime) liveInstances(ctx context.Context) ([]wire.InstanceSnapshot, error) {
	out := []wire.InstanceSnapshot{}
	now := wire.Now()
	cursor := ""
	for {
		recs, next, err := r.store.Search(ctx, store.Query{Component: r.comp.Name, Status: store.StatusActive, Limit: 500, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		for i := range recs {
			out = append(out, wiremap.Snapshot(xc.View(&recs[i], false, now)))
		}
		if next == "" || len(out) >= maxQueryInstances {
			break
		}
		cursor = next
	}
	for _, status := range []store.Status{store.StatusCompleted, store.StatusError} {
		recs, _, err := r.store.Search(ctx, store.Query{Component: r.comp.Name, Status: status,
			From: now - recentFinishedMs, Limit: maxRecentFinished})
		if err != nil {
			return nil, err
		}
		for i := range recs {
			out = append(out, wiremap.Snapshot(xc.View(&recs[i], false, now)))
		}
	}
	return out, nil
}
