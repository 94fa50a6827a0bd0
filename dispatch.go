package xcomponent

import (
	"context"
	"errors"
	"fmt"

	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
)

// Remote delivers what a local engine cannot: messages for components it does not host.
type Remote interface {
	// Deliver delivers m to another process. nil means delivered: the engine marks the outbox
	// message sent. ErrRelayed means the Remote took m over and marks it sent itself
	// (store.Commit.Consumed) once the other side has it; until then it stays in the outbox,
	// so a crash loses nothing. Any other error leaves m in the outbox, delivered again at the
	// next Load of its component.
	Deliver(ctx context.Context, m Message) error
}

// ErrRelayed is what a Remote's Deliver returns when it took a message over and will mark it
// sent in the outbox itself once delivered (see Remote).
var ErrRelayed = errors.New("message taken over by the relay")

// dispatch delivers a committed message: locally when the target is here, else through the
// Remote. It runs in the goroutine that committed the transition, message after message, so
// that effects happen in the order they were produced (a creation before the cascade that
// targets the new instance). Events are queued, not awaited; the message is settled when its
// effect commits.
func (e *Engine) dispatch(m Message) {
	ctx := e.baseCtx
	switch m.Kind {
	case msgSend:
		inst := e.lookupOrLoad(ctx, m.InstanceID)
		if inst == nil || (m.Component != "" && inst.mr.comp.def.Name != m.Component) {
			if m.Component != "" && e.componentRuntime(m.Component) == nil && e.remote != nil {
				e.forward(ctx, m)
				return
			}
			e.log.Warn("event to unknown instance dropped", "instance", m.InstanceID, "event", m.Event.Type, "origin", m.Origin)
			e.consume(ctx, m.ID)
			return
		}
		e.enqueue(&delivery{inst: inst, ev: m.Event, consumed: m.ID})
	case msgCreate:
		cr := e.componentRuntime(m.Component)
		if cr == nil {
			e.forward(ctx, m)
			return
		}
		e.createFromMessage(ctx, cr, m)
	case msgBroadcast:
		cr := e.componentRuntime(m.Component)
		if cr == nil {
			e.forward(ctx, m)
			return
		}
		e.dispatchRouted(ctx, cr, m)
	default:
		e.log.Error("outbox: unknown message kind dropped", "id", m.ID, "kind", m.Kind)
		e.consume(ctx, m.ID)
	}
}

func (e *Engine) forward(ctx context.Context, m Message) {
	if e.remote == nil {
		e.log.Warn("message for a component that is not loaded dropped", "component", m.Component, "kind", m.Kind, "origin", m.Origin)
		e.consume(ctx, m.ID)
		return
	}
	err := e.remote.Deliver(ctx, m)
	switch {
	case errors.Is(err, ErrRelayed): // the relay marks it sent once delivered
	case err != nil:
		// The message stays in the outbox; it is redelivered at the next start.
		e.log.Error("remote delivery failed", "component", m.Component, "kind", m.Kind, "id", m.ID, "err", err)
		return
	default:
		e.consume(ctx, m.ID)
	}
	if m.Origin == SourceCrossComponent {
		e.emit(RuntimeEvent{Component: m.SourceComponent, InstanceID: m.SourceInstanceID, Data: CrossComponentSent{
			Delivery: CrossForwarded, TargetComponent: m.Component, TargetMachine: m.Machine, SourceComponent: m.SourceComponent,
			Event: m.Event, MessageKind: m.Kind}})
	}
}

// createFromMessage creates the instance a message asks for, settling the message in the same
// commit so that a redelivery cannot create it twice.
func (e *Engine) createFromMessage(ctx context.Context, cr *compRuntime, m Message) {
	if e.tracer == nil {
		_, _ = e.createMessage(ctx, cr, m, nil)
		return
	}
	ctx, span := e.tracer.Start(ctx, SpanCreate, m.Event.TraceParent)
	info := SpanInfo{Component: cr.def.Name, Machine: m.Machine, Event: m.Event.Type, EventID: m.ID}
	rec, err := e.createMessage(ctx, cr, m, span)
	if rec != nil {
		info.Machine, info.InstanceID, info.To = rec.Machine, rec.ID, rec.State
	}
	info.Outcome, info.Err = outcomeOf(err), err
	span.End(&info)
}

// createMessage is createFromMessage; span, when not nil, is its creation span.
func (e *Engine) createMessage(ctx context.Context, cr *compRuntime, m Message, span Span) (*store.Instance, error) {
	machine := m.Machine
	if machine == "" {
		machine = cr.def.EntryMachine
	}
	mr := cr.machines[machine]
	if mr == nil {
		e.log.WarnContext(ctx, "create for unknown machine dropped", "component", cr.def.Name, "machine", machine)
		e.consume(ctx, m.ID)
		return nil, fmt.Errorf("create for unknown machine %s: %w", machine, ErrNotFound)
	}
	singleton := machine == cr.def.EntryMachine && cr.def.EntryMachineMode == component.EntrySingleton
	if singleton {
		cr.createMu.Lock()
		defer cr.createMu.Unlock()
		if cr.entryExists {
			e.log.WarnContext(ctx, "create refused: singleton exists", "component", cr.def.Name, "machine", machine)
			e.consume(ctx, m.ID)
			return nil, ErrSingleton
		}
	}
	// The message id becomes the creation event's id: a redelivered message cannot create a
	// second instance (the event id is unique).
	rec, created := e.newInstanceRecord(cr, mr, copyMap(m.Data), e.nowMs(), creation{
		eventID: m.ID, causationID: m.Event.CausationID, correlationID: m.Event.CorrelationID,
		trigger: m.Event.Type, actor: m.Event.Actor, source: m.Origin, sourceComponent: m.SourceComponent,
		parentID: m.ParentID, parentMachine: m.ParentMachine, entryPoint: singleton,
	})
	created.TraceID = spanTraceID(span)
	c := &store.Commit{
		Events:    []store.Event{created},
		Instances: []store.InstanceWrite{{Instance: rec, ExpectVersion: -1}},
		Consumed:  []string{m.ID},
	}
	if err := e.commit(ctx, c); err != nil {
		if errors.Is(err, store.ErrEntryPointExists) { // another process created it first
			e.log.WarnContext(ctx, "create refused: singleton exists", "component", cr.def.Name, "machine", machine)
			cr.entryExists = true // createMu is held
			e.consume(ctx, m.ID)
			return rec, ErrSingleton
		}
		e.log.ErrorContext(ctx, "create from message", "component", cr.def.Name, "machine", machine, "err", err)
		return rec, err
	}
	if _, err := e.register(cr, rec); err != nil {
		e.log.ErrorContext(ctx, "register created instance", "instance", rec.ID, "err", err)
		return rec, err
	}
	if singleton {
		cr.entryExists = true // createMu is held
	}
	e.emitCreated(rec)
	if m.Origin == SourceCrossComponent {
		e.emit(RuntimeEvent{Component: m.SourceComponent, InstanceID: m.SourceInstanceID, Data: CrossComponentSent{
			Delivery: CrossCreated, TargetComponent: cr.def.Name, TargetMachine: machine, SourceComponent: m.SourceComponent,
			Event: m.Event, CreatedInstanceID: rec.ID}})
	}
	return rec, nil
}

// redeliverOutbox dispatches messages committed before a restart but not yet delivered.
func (e *Engine) redeliverOutbox(ctx context.Context, comp string) error {
	msgs, err := e.store.PendingOutbox(ctx, comp, 0)
	if err != nil {
		return fmt.Errorf("load component %s: outbox: %w", comp, err)
	}
	for _, sm := range msgs {
		m, err := decodeMessage(sm)
		if err != nil {
			e.log.Error("outbox: undecodable message dropped", "id", sm.ID, "body", string(sm.Body), "err", err)
			e.consume(ctx, sm.ID)
			continue
		}
		e.dispatch(m)
	}
	return nil
}

// Redeliver dispatches again a message read from the outbox of a component loaded here — one
// a process that shares the store committed but did not deliver before it died (Load does the
// same at start). It is idempotent: the delivery settles the outbox row in the commit of its
// effect, and a row already settled makes that commit fail as a duplicate, applying nothing.
func (e *Engine) Redeliver(m Message) {
	if e.closed.Load() {
		return
	}
	e.dispatch(m)
}
