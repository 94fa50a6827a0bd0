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
// until events is closed or ctx ends: transient without confirms when the bus can
// (bus.TransientPublisher); else, with a bus that pipelines (bus.AsyncPublisher), up to
// maxUnconfirmedEvents events are in flight, their confirms awaited in order by a second
// goroutine, instead of one confirm round trip per event.
func (r *runtime) publishEvents(ctx context.Context, events <-chan xc.RuntimeEvent) {
	type inFlight struct {
		wait              func(context.Context) error
		channel, instance string
	}
	// Transient and unconfirmed when the bus can (bus.TransientPublisher): the events are
	// notifications of what the store holds, a consumer detects a lost one by the version
	// and re-reads the instance, and the broker then spends no confirm and no persistence on
	// each of them.
	transient, _ := r.bus.(bus.TransientPublisher)
	async, _ := r.bus.(bus.AsyncPublisher)
	confirms := make(chan inFlight, maxUnconfirmedEvents)
	confirmed := make(chan struct{})
	go func() {
		defer close(confirmed)
		for p := range confirms {
			if err := p.wait(ctx); err != nil {
				r.publishFailed.Add(1)
				r.log.Warn("runtime event not confirmed by the broker", "channel", p.channel, "instance", p.instance, "err", err)
			}
		}
	}()
	defer func() {
		close(confirms)
		<-confirmed
	}()
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
		if transient != nil {
			if err := transient.PublishTransient(ctx, out.Channel, body, meta); err != nil {
				r.publishFailed.Add(1)
				r.log.Warn("runtime event not published", "channel", out.Channel, "instance", ev.InstanceID, "err", err)
			}
			continue
		}
		if async != nil {
			wait, err := async.PublishAsync(ctx, out.Channel, body, meta)
			if err == nil {
				confirms <- inFlight{wait: wait, channel: out.Channel, instance: ev.InstanceID}
				continue
			}
			r.publishFailed.Add(1)
			r.log.Warn("runtime event not published", "channel", out.Channel, "instance", ev.InstanceID, "err", err)
			continue
		}
		if err := r.bus.Publish(ctx, out.Channel, body, meta); err != nil {
			// The store holds the transition; only the live notification is lost.
			r.publishFailed.Add(1)
			r.log.Warn("runtime event not published", "channel", out.Channel, "instance", ev.InstanceID, "err", err)
		}
	}
}

// maxUnconfirmedEvents bounds the runtime events published and not yet confirmed.
const maxUnconfirmedEvents = 1024

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
