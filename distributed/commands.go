package distributed

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/wire"
)

// commandIDSpace derives a UUID from a command id that is not one (the store's event ids are
// UUIDs): the same id always gives the same UUID, so dedupe still works.
var commandIDSpace = uuid.MustParse("6f1c5a1e-0b7e-4c38-9a55-3d1f1b0c2a10")

// Retry delays while the store is unreachable.
const (
	minRetry = 100 * time.Millisecond
	maxRetry = 5 * time.Second
)

// commandID returns the id a command is applied under: the AMQP message_id, else the body's
// commandId, else its event's id, as a UUID. "" when the command has none (then no dedupe is
// possible: TS dashboards send no ids).
func commandID(ids ...string) string {
	for _, id := range ids {
		if id = strings.TrimSpace(id); id != "" {
			return asUUID(id)
		}
	}
	return ""
}

// asUUID returns id in canonical form when it is a UUID, else the UUID derived from it.
func asUUID(id string) string {
	if id == "" {
		return ""
	}
	if u, err := uuid.Parse(id); err == nil {
		return u.String()
	}
	return uuid.NewSHA1(commandIDSpace, []byte(id)).String()
}

// handleCommand applies one command of the work queue and says whether to acknowledge it.
//
// Acknowledgement (the bus acknowledges on nil, dead-letters on an error, and leaves the
// message unacknowledged for another consumer when the subscription is closing):
//   - applied, already applied (duplicate id), refused by the business rules (not accepted,
//     unknown instance or machine, invalid context, singleton) or meant for another component:
//     nil, acknowledged (refusals are logged with the command);
//   - undecodable: an error, dead-lettered;
//   - store unreachable (xcomponent.ErrStore) or instance busy: retried here with backoff,
//     holding the message, until it is applied or the runtime stops; on stop the message is
//     left unacknowledged and the broker gives it to another runtime. Returning the error
//     instead would dead-letter a good command, and an outage would empty the queue into the
//     dead-letter queue.
//
// Idempotency: the command id becomes the engine event's id (the creation event's for
// create_instance), so a redelivered command finds its event in the store: before each attempt,
// and after any failure (two runtimes racing on one redelivered command: the loser's commit
// fails on the event id's uniqueness), the store is checked for an event with that id.
func (r *runtime) handleCommand(ctx context.Context, m bus.Message) error {
	var (
		id, outcome string
		err         error
	)
	switch m.Channel {
	case wire.ChannelCreateInstance:
		id, outcome, err = r.handleCreate(ctx, m)
	case wire.ChannelTriggerEvent:
		id, outcome, err = r.handleTrigger(ctx, m)
	default:
		r.log.Warn("command on an unexpected channel acknowledged without effect", "channel", m.Channel, "body", string(m.Body))
		id, outcome = m.MessageID, OutcomeIgnored
	}
	if err != nil && outcome == "" {
		outcome = OutcomeLeft
	}
	if r.cfg.OnCommand != nil {
		r.cfg.OnCommand(m.Channel, id, outcome)
	}
	return err
}

func (r *runtime) handleCreate(ctx context.Context, m bus.Message) (string, string, error) {
	cmd, err := wire.Decode[wire.CreateInstance](m.Body)
	if err != nil {
		r.log.Error("undecodable create_instance command dead-lettered", "messageId", m.MessageID, "body", string(m.Body), "err", err)
		return m.MessageID, OutcomeDeadLettered, err
	}
	if cmd.ComponentName != r.comp.Name {
		return m.MessageID, OutcomeIgnored, nil
	}
	id := commandID(m.MessageID, cmd.CommandID)
	ev := xc.Event{ID: id, CorrelationID: asUUID(firstOf(cmd.CorrelationID, m.CorrelationID)),
		CausationID: asUUID(firstOf(cmd.CausationID, m.Headers["causationId"])),
		Actor:       firstOf(cmd.RuntimeName, cmd.SourceComponent, "broker"), Source: "broker", SourceComponent: cmd.SourceComponent}
	if cmd.Event != nil {
		ev.Type = cmd.Event.Type
		ev.Payload = cmd.Event.Payload
	}
	req := xc.CreateRequest{Component: r.comp.Name, Machine: cmd.MachineName, Data: cmd.Context, Event: ev, ParentID: asUUID(cmd.ParentID)}
	applied := func(ctx context.Context) (bool, error) {
		if id == "" {
			return false, nil
		}
		corr := ev.CorrelationID
		if corr == "" {
			corr = id // the engine makes the creation event the root of its correlation
		}
		evs, err := r.store.Correlated(ctx, corr)
		if err != nil {
			return false, err
		}
		for _, e := range evs {
			if e.ID == id && e.Type == store.EventCreated {
				return true, nil
			}
		}
		return false, nil
	}
	outcome, err := r.apply(ctx, m, "create_instance", id, applied, func(ctx context.Context) error {
		inst, err := r.eng.Create(ctx, req)
		if err == nil {
			r.log.Debug("instance created by command", "instance", inst.ID, "machine", inst.MachineName, "commandId", id)
		}
		return err
	})
	return id, outcome, err
}

func (r *runtime) handleTrigger(ctx context.Context, m bus.Message) (string, string, error) {
	cmd, err := wire.Decode[wire.TriggerEvent](m.Body)
	if err == nil && (cmd.InstanceID == "" || cmd.Event.Type == "") {
		err = errors.New("instanceId and event.type are required")
	}
	if err != nil {
		r.log.Error("invalid trigger_event command dead-lettered", "messageId", m.MessageID, "body", string(m.Body), "err", err)
		return m.MessageID, OutcomeDeadLettered, err
	}
	if cmd.ComponentName != "" && cmd.ComponentName != r.comp.Name {
		return m.MessageID, OutcomeIgnored, nil
	}
	id := commandID(m.MessageID, cmd.CommandID, cmd.Event.ID)
	// Whose instance is it? Without componentName, act only if it is this component's.
	var rec store.Instance
	for attempt := 0; ; attempt++ {
		rec, err = r.store.Instance(ctx, cmd.InstanceID)
		if err == nil || errors.Is(err, store.ErrNotFound) {
			break
		}
		if werr := r.retryWait(ctx, attempt, "trigger_event", id, err); werr != nil {
			return id, OutcomeLeft, werr
		}
	}
	if errors.Is(err, store.ErrNotFound) || rec.Component != r.comp.Name {
		if cmd.ComponentName == "" {
			return id, OutcomeIgnored, nil // another component's instance (or unknown)
		}
		r.log.Warn("trigger_event refused: instance not found in this component", "instance", cmd.InstanceID, "event", cmd.Event.Type, "commandId", id)
		return id, OutcomeRefused, nil
	}
	ev := xc.Event{Type: cmd.Event.Type, Payload: cmd.Event.Payload, ID: id,
		CorrelationID: asUUID(firstOf(cmd.CorrelationID, cmd.Event.CorrelationID, m.CorrelationID)),
		CausationID:   asUUID(firstOf(cmd.CausationID, cmd.Event.CausationID, m.Headers["causationId"])),
		Actor:         firstOf(cmd.Event.Actor, cmd.RuntimeName, "broker"), Source: firstOf(cmd.Event.Source, "broker")}
	applied := func(ctx context.Context) (bool, error) {
		if id == "" {
			return false, nil
		}
		evs, err := r.store.History(ctx, cmd.InstanceID)
		if err != nil {
			return false, err
		}
		for _, e := range evs {
			if e.ID == id {
				return true, nil
			}
		}
		return false, nil
	}
	outcome, err := r.apply(ctx, m, "trigger_event", id, applied, func(ctx context.Context) error {
		_, err := r.eng.Send(ctx, cmd.InstanceID, ev)
		return err
	})
	return id, outcome, err
}

// apply runs do until it succeeds, is refused, or ctx ends (see handleCommand).
func (r *runtime) apply(ctx context.Context, m bus.Message, what, id string, applied func(context.Context) (bool, error), do func(context.Context) error) (string, error) {
	for attempt := 0; ; attempt++ {
		done, err := applied(ctx)
		if err != nil {
			if werr := r.retryWait(ctx, attempt, what, id, fmt.Errorf("dedupe check: %w", err)); werr != nil {
				return OutcomeLeft, werr
			}
			continue
		}
		if done {
			r.log.Info("command already applied: acknowledged without effect", "command", what, "commandId", id, "redelivered", m.Redelivered)
			return OutcomeDuplicate, nil
		}
		err = do(ctx)
		if err == nil {
			return OutcomeApplied, nil
		}
		if ctx.Err() != nil {
			return OutcomeLeft, ctx.Err()
		}
		// Whatever failed, a concurrent delivery of the same command may have applied it.
		if done, cerr := applied(ctx); cerr == nil && done {
			r.log.Info("command applied by another delivery: acknowledged without effect", "command", what, "commandId", id)
			return OutcomeDuplicate, nil
		}
		if errors.Is(err, xc.ErrStore) || errors.Is(err, xc.ErrBusy) || errors.Is(err, xc.ErrClosed) {
			if werr := r.retryWait(ctx, attempt, what, id, err); werr != nil {
				return OutcomeLeft, werr
			}
			continue
		}
		r.log.Warn("command refused: acknowledged without effect", "command", what, "commandId", id, "body", string(m.Body), "err", err)
		return OutcomeRefused, nil
	}
}

// retryWait logs a transient failure and waits before the next attempt; it returns ctx's
// error when the runtime stops meanwhile (the message is then left to another consumer).
func (r *runtime) retryWait(ctx context.Context, attempt int, what, id string, err error) error {
	wait := minRetry << min(attempt, 6)
	wait = min(wait, maxRetry)
	r.log.Warn("command not applied yet, retrying (store unavailable?)", "command", what, "commandId", id, "attempt", attempt+1, "retryIn", wait, "err", err)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
