package distributed

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/google/uuid"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/internal/wiremap"
	"github.com/xcomponent/xcomponent/wire"
)

// publishEvents publishes the engine's runtime events on their fan-out channels, in order,
// until events is closed or ctx ends.
func (r *runtime) publishEvents(ctx context.Context, events <-chan xc.RuntimeEvent) {
	origin := wiremap.Origin{RuntimeID: r.id, RuntimeName: r.cfg.RuntimeName, Component: r.comp.Name}
	for ev := range events {
		out, ok := wiremap.ToWire(ev, origin, wire.Now())
		if !ok {
			continue // not carried by the protocol
		}
		body, err := wire.Encode(out.Envelope)
		if err != nil {
			r.log.Warn("runtime event not encodable, not published", "kind", ev.Kind(), "instance", ev.InstanceID, "err", err)
			continue
		}
		meta := bus.Meta{MessageID: uuid.NewString()}
		if out.CausationID != "" {
			meta.Headers = map[string]string{"causationId": out.CausationID}
		}
		if err := r.bus.Publish(ctx, out.Channel, body, meta); err != nil {
			// The store holds the transition; only the live notification is lost.
			r.publishFailed.Add(1)
			r.log.Warn("runtime event not published", "channel", out.Channel, "instance", ev.InstanceID, "err", err)
		}
	}
}

// logDropped logs the runtime events the publisher missed since the last call (its buffer
// was full: the broker was too slow or unreachable for too long).
func (r *runtime) logDropped() {
	n := r.eng.DroppedEvents()
	if prev := r.dropped.Swap(n); n > prev {
		r.log.Warn("runtime events dropped: not published on the broker (the store has them)", "dropped", n-prev, "total", n)
	}
}

// droppedCollectors count on /metrics the runtime events that did not reach the broker
// (docs/design.md, "Live events"): buffer_full, those a slow subscriber of the engine missed
// (the publisher, or a live stream of the HTTP API); publish_failed, those the broker refused
// or did not confirm in time.
func (r *runtime) droppedCollectors() []prometheus.Collector {
	opts := func(reason string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Name: "live_events_dropped_total",
			Help:        "Runtime events not published on fsm:events:* (the store has them), by reason.",
			ConstLabels: prometheus.Labels{"reason": reason}}
	}
	return []prometheus.Collector{
		prometheus.NewCounterFunc(opts("buffer_full"), func() float64 { return float64(r.eng.DroppedEvents()) }),
		prometheus.NewCounterFunc(opts("publish_failed"), func() float64 { return float64(r.publishFailed.Load()) }),
	}
}
