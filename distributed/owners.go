package distributed

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/wire"
)

// Runtimes with an embedded store (DATABASE_URL unset: a SQLite file, or memory) on different
// machines do not share their instances: each owns the instances it created. A command of the
// component's partitions reaches any of them, so one that finds no such instance in its own
// store hands the command on, through a fan-out channel of the component, to every runtime of
// it; the one that holds the instance applies it (and answers), the others drop it. Runtimes
// started in one folder share the SQLite file and find every instance: they never forward.
//
// What this does not give: a command for an instance whose owner is down is applied by nobody
// (the dashboard's request times out), and the instances of a dead runtime are unavailable
// until it restarts on its file. A shared PostgreSQL (DATABASE_URL) has neither limit.

// headerForwardedBy marks a command handed on to the owners (the forwarding runtime's id): it
// is never forwarded again.
const headerForwardedBy = "xc-forwarded-by"

// ownerChannel is the fan-out channel of component's forwarded commands.
func ownerChannel(component string) string { return "xcomponent:owners:" + component }

// embeddedStore says whether spec names a store that may be this runtime's alone.
func embeddedStore(spec string) bool {
	return spec == "memory" || strings.HasPrefix(spec, "sqlite:")
}

// forwardsToOwner says whether a command refused with err is to be handed to the owners: an
// unknown instance, an embedded store, a command not forwarded already, and other runtimes of
// the component alive (alone, this runtime refuses it: not found).
func (r *runtime) forwardsToOwner(m bus.Message, err error) bool {
	if !r.owners || !errors.Is(err, xc.ErrNotFound) || m.Headers[headerForwardedBy] != "" {
		return false
	}
	p := r.peerSet.Load()
	if p == nil {
		return false
	}
	live, _ := p.live(time.Now())
	return len(live) > 1
}

// forwardToOwner publishes the command m on the owners' channel, retrying while the broker
// is unreachable, until ctx ends (then the command is left for another consumer).
func (r *runtime) forwardToOwner(ctx context.Context, m bus.Message) error {
	headers := maps.Clone(m.Headers)
	if headers == nil {
		headers = map[string]string{}
	}
	headers[headerForwardedBy] = r.id
	headers[bus.HeaderCommand] = firstOf(headers[bus.HeaderCommand], m.Channel)
	meta := bus.Meta{MessageID: m.MessageID, CorrelationID: m.CorrelationID, Headers: headers}
	for attempt := 0; ; attempt++ {
		err := r.bus.Publish(ctx, ownerChannel(r.comp.Name), m.Body, meta)
		if err == nil {
			r.log.Debug("command for an instance this runtime does not hold: handed to its owner", "messageId", m.MessageID)
			return nil
		}
		if werr := r.retryWait(ctx, attempt, "forward to the owner", m.MessageID, err); werr != nil {
			return werr
		}
	}
}

// onForwarded applies a forwarded command when this runtime holds its instance.
func (r *runtime) onForwarded(ctx context.Context, m bus.Message) error {
	switch m.Headers[bus.HeaderCommand] {
	case wire.ChannelTriggerEvent, wire.ChannelTerminateInstance, wire.ChannelRetryHook:
	default:
		return nil
	}
	if m.Headers[headerForwardedBy] == r.id {
		return nil
	}
	var cmd struct {
		InstanceID string `json:"instanceId"`
	}
	if err := json.Unmarshal(m.Body, &cmd); err != nil || !r.exists(ctx, cmd.InstanceID) {
		return nil // not ours (or unreadable: its first receiver dead-lettered it)
	}
	return r.handleCommand(ctx, m)
}
