package distributed

import (
	"context"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/internal/wiremap"
	"github.com/xcomponent/xcomponent/wire"
)

// CrossComponentQueue is the durable work queue through which the runtimes of a component
// receive fsm:commands:cross_component_event messages, competing: each message is handled by
// one runtime of the component, acknowledged after its deliveries are committed.
func CrossComponentQueue(component string) string {
	return "xcomponent." + component + ".cross_component_events"
}

// crossIDSpace derives the id of a cross-component event that carries none (xcomponent-ai
// runtimes send neither a message_id nor a commandId) from its body: a redelivered message has
// the same body, hence the same id, and reaches no instance twice.
var crossIDSpace = uuid.MustParse("3b0f6e55-6a43-4f5e-9d1c-8f0d2c6a7b21")

// handleCrossComponentEvent delivers one fsm:commands:cross_component_event to the live
// instances of this runtime's component that it targets (see xcomponent.Engine.Route), and
// says whether to acknowledge it:
//   - delivered, or meant for another component: nil (acknowledged);
//   - undecodable or never applicable (no target component, unknown machine, unknown
//     operator): an error, dead-lettered, logged with the reason;
//   - a delivery could not be committed (store unreachable, instance busy): retried here with
//     backoff until it is delivered or the runtime stops; then it is left unacknowledged for
//     another runtime. Each instance gets it once however often it is delivered (the engine's
//     per-target idempotency ids).
func (r *runtime) handleCrossComponentEvent(ctx context.Context, m bus.Message) error {
	cmd, err := wire.DecodeExact[wire.CrossComponentEvent](m.Body)
	if err == nil && (cmd.TargetComponent == "" || cmd.Event.Type == "") {
		err = errors.New("targetComponent and event.type are required")
	}
	if err == nil {
		err = checkRuleValues(&cmd)
	}
	if err != nil {
		r.log.ErrorContext(ctx, "invalid cross_component_event dead-lettered", "messageId", m.MessageID, "body", string(m.Body), "err", err)
		r.crossOutcome(m, "", OutcomeDeadLettered)
		return err
	}
	if cmd.TargetComponent != r.comp.Name {
		r.crossOutcome(m, "", OutcomeIgnored)
		return nil
	}
	msg := r.crossMessage(m, cmd)
	for attempt := 0; ; attempt++ {
		res, err := r.eng.Route(ctx, msg)
		switch {
		case err == nil:
			r.log.DebugContext(ctx, "cross-component event delivered", "id", msg.ID, "event", msg.Event.Type, "from", cmd.SourceComponent,
				"matched", res.Matched, "processed", res.Processed)
			r.crossOutcome(m, msg.ID, OutcomeApplied)
			return nil
		case errors.Is(err, xc.ErrInvalidMessage), errors.Is(err, xc.ErrNotFound):
			r.log.ErrorContext(ctx, "cross_component_event that can never be applied dead-lettered", "id", msg.ID, "body", string(m.Body), "err", err)
			r.crossOutcome(m, msg.ID, OutcomeDeadLettered)
			return err
		case ctx.Err() != nil:
			r.crossOutcome(m, msg.ID, OutcomeLeft)
			return ctx.Err()
		}
		wait := backoff(attempt)
		r.log.WarnContext(ctx, "cross-component event not delivered yet, retrying", "id", msg.ID, "attempt", attempt+1, "retryIn", wait, "err", err)
		if !sleepCtx(ctx, wait) {
			r.crossOutcome(m, msg.ID, OutcomeLeft)
			return ctx.Err()
		}
	}
}

// checkRuleValues applies the engine's data checks to the values the rules of cmd compare
// with (decoded exactly, see wire.DecodeExact): a number becomes the float64 instance data
// hold, an integer beyond 2^53 or a NUL character is refused, as in data. Without it the
// memory index (float64) and PostgreSQL's exact numeric comparison would disagree on
// 9007199254740993.
func checkRuleValues(cmd *wire.CrossComponentEvent) error {
	values := make(map[string]any, len(cmd.MatchingRules)+len(cmd.MatchContext))
	for i, r := range cmd.MatchingRules {
		values["matchingRules["+strconv.Itoa(i)+"].value"] = r.Value
	}
	for k, v := range cmd.MatchContext {
		values["matchContext."+k] = v
	}
	clean, err := xc.CheckData(values)
	if err != nil {
		return fmt.Errorf("cross_component_event: %w", err)
	}
	for i := range cmd.MatchingRules {
		cmd.MatchingRules[i].Value = clean["matchingRules["+strconv.Itoa(i)+"].value"]
	}
	for k := range cmd.MatchContext {
		cmd.MatchContext[k] = clean["matchContext."+k]
	}
	return nil
}

func (r *runtime) crossOutcome(m bus.Message, id, outcome string) {
	if r.cfg.OnCommand != nil {
		if id == "" {
			id = m.MessageID
		}
		r.cfg.OnCommand(m.Channel, id, outcome)
	}
}

// crossMessage turns a cross_component_event into the engine's routed message
// (wiremap.CrossFromWire), with its ids: the message id (derived from the body when the
// sender gave none) and the correlation and causation ids, from the command or the headers.
func (r *runtime) crossMessage(m bus.Message, cmd wire.CrossComponentEvent) xc.Message {
	id := firstNonEmpty(m.MessageID, cmd.CommandID, cmd.Event.ID)
	if id == "" {
		sum := sha1.Sum(m.Body)
		id = uuid.NewSHA1(crossIDSpace, sum[:]).String()
	} else {
		id = toUUID(id)
	}
	return wiremap.CrossFromWire(cmd, r.comp.Name, wiremap.CrossIDs{ID: id,
		CorrelationID: toUUID(firstNonEmpty(cmd.CorrelationID, cmd.Event.CorrelationID, m.CorrelationID)),
		CausationID:   toUUID(firstNonEmpty(cmd.CausationID, cmd.Event.CausationID, m.Headers["causationId"]))})
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

// toUUID returns id in canonical form when it is a UUID, else a UUID derived from it ("" stays
// ""): the store keeps correlation and causation ids in UUID columns.
func toUUID(id string) string {
	if id == "" {
		return ""
	}
	if u, err := uuid.Parse(id); err == nil {
		return u.String()
	}
	return uuid.NewSHA1(crossIDSpace, []byte(id)).String()
}

// startCrossComponent consumes the component's cross-component events: up to Prefetch at a
// time, concurrently except those of one source instance (kept in their order); bounded by the
// command TTL and maximum length, like the command queues, so that the queue of a component
// with no runtime does not grow without end.
func (r *runtime) startCrossComponent(ctx context.Context) (bus.Subscription, error) {
	queue := CrossComponentQueue(r.comp.Name)
	sub, err := r.bus.ConsumeWith(ctx, queue, bus.ConsumeOptions{
		Bindings:   []string{wire.ChannelCrossComponentEvent},
		MessageTTL: r.cfg.CommandTTL, MaxLength: r.cfg.CommandMaxLength, Prefetch: r.cfg.Prefetch,
		OrderKey: crossOrderKey,
	}, r.handler(queueCross, -1, r.handleCrossComponentEvent))
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", queue, err)
	}
	r.log.Info("consuming cross-component events", "queue", queue)
	return sub, nil
}

// crossOrderKey keeps the events of one source instance in order; messages without a source
// (or undecodable) are ordered by their body.
func crossOrderKey(m bus.Message) string {
	var head struct {
		SourceComponent  string `json:"sourceComponent"`
		SourceInstanceID string `json:"sourceInstanceId"`
	}
	if err := json.Unmarshal(m.Body, &head); err == nil && head.SourceInstanceID != "" {
		return head.SourceComponent + "/" + head.SourceInstanceID
	}
	sum := sha1.Sum(m.Body)
	return string(sum[:])
}
