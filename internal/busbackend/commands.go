package busbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/google/uuid"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/internal/httpapi"
	"github.com/xcomponent/xcomponent/internal/telemetry"
	"github.com/xcomponent/xcomponent/internal/wiremap"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/wire"
)

// waiter is a command waiting for its answer: the runtime's CommandReply, or the runtime
// event it caused (runtimes that send no reply).
type waiter struct {
	commandID string
	seq       uint64 // registration order: the oldest waiter matches first
	channel   string // wire.ChannelCreateInstance, ChannelTriggerEvent, ChannelTerminateInstance, ChannelRetryHook
	component string
	// create: the machine and the context sent (each value as canonical JSON), to recognise
	// the instance_created of a runtime that sends neither reply nor ids.
	machine string
	ctxJSON map[string]string
	// trigger: the instance and event type.
	instanceID, eventType string
	// replyOnly: the command id is the caller's (an Idempotency-Key's), maybe sent before; a
	// runtime event carrying it may be the earlier attempt's, so only the reply answers it.
	replyOnly bool
	// attempt is this publication's id (bus.HeaderAttempt): a reply naming another attempt
	// answers the same command id sent by another dashboard, or earlier.
	attempt string

	once sync.Once
	ch   chan outcome // buffered 1
}

// outcome is what became of a command.
type outcome struct {
	in         xc.Instance
	prev, next string
	runtime    string
	err        error
}

func (w *waiter) finish(o outcome) { w.once.Do(func() { w.ch <- o }) }

// Create implements httpapi.Backend: publishes fsm:commands:create_instance and waits for the
// created instance.
func (b *Backend) Create(ctx context.Context, req xc.CreateRequest) (xc.Instance, error) {
	// The runtimes decode commands as float64: refuse here what they would change or could
	// not store (integers beyond 2^53, NUL characters), as a single runtime does.
	var err error
	if req.Data, err = xc.CheckData(req.Data); err != nil {
		return xc.Instance{}, err
	}
	if err := xc.CheckEvent(&req.Event); err != nil {
		return xc.Instance{}, err
	}
	b.mu.Lock()
	ce := b.components[req.Component]
	b.mu.Unlock()
	if ce == nil {
		return xc.Instance{}, fmt.Errorf("component %s: %w", req.Component, xc.ErrNotFound)
	}
	machine := firstOf(req.Machine, ce.def.EntryMachine)
	m := ce.def.Machine(machine)
	if m == nil {
		return xc.Instance{}, fmt.Errorf("machine %s not found in component %s: %w", machine, req.Component, xc.ErrNotFound)
	}
	data := req.Data
	if req.Validate {
		clean, ferrs := m.ValidateContext(data)
		if len(ferrs) > 0 {
			ce := &xc.ContextError{Machine: machine}
			for _, f := range ferrs {
				ce.Fields = append(ce.Fields, xc.FieldError(f))
			}
			return xc.Instance{}, ce
		}
		data = clean
	}
	if data == nil {
		data = map[string]any{}
	}
	ours, err := b.checkRuntime(req.Component)
	if err != nil {
		return xc.Instance{}, err
	}
	if req.Event.ID != "" && !ours {
		return xc.Instance{}, errNoIdempotency(req.Component)
	}
	// A request with its own ids (an Idempotency-Key) keeps them: the command id is the
	// creation's event id, the instance id the one it names.
	id := firstOf(req.Event.ID, uuid.NewString())
	cmd := wire.CreateInstance{ComponentName: req.Component, MachineName: machine, Context: data,
		Timestamp: wire.Millis(b.clk.Now()), RuntimeName: firstOf(req.Event.Actor, "dashboard")}
	cmd.CommandID, cmd.CorrelationID = id, firstOf(req.Event.CorrelationID, id)
	if req.Event.Type != "" {
		cmd.Event = &wire.Event{Type: req.Event.Type, Payload: req.Event.Payload}
	}
	cj, err := canonicalFields(data)
	if err != nil {
		return xc.Instance{}, fmt.Errorf("context: %w: %v", httpapi.ErrInvalid, err)
	}
	w := &waiter{commandID: id, channel: wire.ChannelCreateInstance, component: req.Component, machine: machine, ctxJSON: cj,
		replyOnly: req.Event.ID != "", ch: make(chan outcome, 1)}
	if ours {
		// Our runtimes create the instance under the id the command names: its commands all go
		// to one partition, and its instance_created is recognised by id.
		cmd.InstanceID = firstOf(req.InstanceID, bus.CreateInstanceID(id))
		w.instanceID = cmd.InstanceID
	}
	o, err := b.command(ctx, w, cmd, ours)
	if err != nil {
		return xc.Instance{}, err
	}
	return o.in, nil
}

// Send implements httpapi.Backend: publishes fsm:commands:trigger_event and waits for the
// transition (or the refusal).
func (b *Backend) Send(ctx context.Context, comp, id string, ev xc.Event) (xc.Result, error) {
	if err := xc.CheckEvent(&ev); err != nil {
		return xc.Result{}, err
	}
	// The live view answers the checks below without a database read; only a refusal is
	// confirmed against the database (the view may lag behind it), and an instance the view
	// does not hold is read from it.
	in, cached := b.cached(id)
	if !cached {
		var err error
		if in, err = b.Instance(ctx, id); err != nil {
			return xc.Result{}, err
		}
	}
	err := b.acceptable(comp, in, ev.Type)
	if err != nil && cached {
		if in, err = b.Instance(ctx, id); err != nil {
			return xc.Result{}, err
		}
		err = b.acceptable(comp, in, ev.Type)
	}
	if err != nil {
		return xc.Result{}, err
	}
	ours, err := b.checkRuntime(in.ComponentName)
	if err != nil {
		return xc.Result{}, err
	}
	if ev.ID != "" && !ours {
		return xc.Result{}, errNoIdempotency(in.ComponentName)
	}
	cid := firstOf(ev.ID, uuid.NewString())
	cmd := wire.TriggerEvent{ComponentName: in.ComponentName, InstanceID: id,
		Event:     wire.Event{Type: ev.Type, Payload: ev.Payload, ID: cid, Actor: ev.Actor, Source: firstOf(string(ev.Source), string(xc.SourceAPI))},
		Timestamp: wire.Millis(b.clk.Now())}
	cmd.CommandID, cmd.CorrelationID = cid, ev.CorrelationID
	w := &waiter{commandID: cid, channel: wire.ChannelTriggerEvent, component: in.ComponentName, instanceID: id, eventType: ev.Type,
		replyOnly: ev.ID != "", ch: make(chan outcome, 1)}
	o, err := b.command(ctx, w, cmd, ours)
	if err != nil {
		return xc.Result{}, err
	}
	return xc.Result{Instance: o.in, PreviousState: firstOf(o.prev, in.CurrentState), NewState: firstOf(o.next, o.in.CurrentState), EventID: cid}, nil
}

// errNoIdempotency refuses a command with its own id (an Idempotency-Key) when only
// xcomponent-ai runtimes serve the component: they dedupe no command id.
func errNoIdempotency(comp string) error {
	return fmt.Errorf("the runtimes up for component %s are xcomponent-ai runtimes, which do not apply a command id once: %s is not supported: %w",
		comp, httpapi.HeaderIdempotencyKey, httpapi.ErrNotImplemented)
}

// acceptable says why an event of type typ cannot be applied to in: not in component comp
// (when set), not active, or no transition for it from its state in the definition (no
// runtime would take it).
func (b *Backend) acceptable(comp string, in xc.Instance, typ string) error {
	if comp != "" && in.ComponentName != comp {
		return fmt.Errorf("instance %s not found in component %s: %w", in.ID, comp, xc.ErrNotFound)
	}
	if in.Status != store.StatusActive {
		return fmt.Errorf("instance %s is %s (state %s): %w", in.ID, in.Status, in.CurrentState, xc.ErrNotAccepted)
	}
	b.mu.Lock()
	ce := b.components[in.ComponentName]
	b.mu.Unlock()
	if ce != nil {
		if m := ce.def.Machine(in.MachineName); m != nil && m.State(in.CurrentState) != nil && len(m.Candidates(in.CurrentState, typ)) == 0 {
			return fmt.Errorf("no transition from %s on %s in machine %s: %w", in.CurrentState, typ, in.MachineName, xc.ErrNotAccepted)
		}
	}
	return nil
}

// Broadcast implements httpapi.Backend: the event is sent, one trigger_event each, to the
// live instances of the machine (in State when given); Processed counts the transitions the
// runtimes confirmed.
func (b *Backend) Broadcast(ctx context.Context, req xc.BroadcastRequest) (xc.BroadcastResult, error) {
	if err := xc.CheckEvent(&req.Event); err != nil {
		return xc.BroadcastResult{}, err
	}
	b.mu.Lock()
	ce := b.components[req.Component]
	b.mu.Unlock()
	if ce == nil {
		return xc.BroadcastResult{}, fmt.Errorf("component %s: %w", req.Component, xc.ErrNotFound)
	}
	if ce.def.Machine(req.Machine) == nil {
		return xc.BroadcastResult{}, fmt.Errorf("machine %s not found in component %s: %w", req.Machine, req.Component, xc.ErrNotFound)
	}
	if _, err := b.checkRuntime(req.Component); err != nil {
		return xc.BroadcastResult{}, err
	}
	var targets []xc.Instance
	cursor := ""
	for {
		ins, next, err := b.Search(ctx, store.Query{Component: req.Component, Machine: req.Machine, State: req.State,
			Status: store.StatusActive, Limit: 500, Cursor: cursor})
		if err != nil {
			return xc.BroadcastResult{}, err
		}
		targets = append(targets, ins...)
		if next == "" {
			break
		}
		cursor = next
	}
	res := xc.BroadcastResult{Matched: len(targets)}
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, 32)
	)
	for _, in := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func(id string) {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := b.Send(ctx, req.Component, id, req.Event); err == nil {
				mu.Lock()
				res.Processed++
				mu.Unlock()
			}
		}(in.ID)
	}
	wg.Wait()
	return res, nil
}

// checkRuntime fails with ErrUnavailable when the broker is down or no runtime of comp is up;
// ours says whether one of the runtimes up is ours (partitioned command queues, replies).
func (b *Backend) checkRuntime(comp string) (ours bool, err error) {
	if !b.cfg.Bus.Connected() {
		return false, fmt.Errorf("broker not connected: %w", httpapi.ErrUnavailable)
	}
	up, ours := b.upRuntimes(comp)
	if up == 0 {
		return false, fmt.Errorf("no runtime of component %s is up: %w", comp, httpapi.ErrUnavailable)
	}
	return ours, nil
}

// command publishes cmd with w's command id and waits for its outcome, at most
// CommandTimeout; then the database, when there is one, says whether it was applied
// (outcomeFromStore), else the answer is ErrTimeout. For our runtimes (partitioned) it goes
// straight to the instance's partition; otherwise (xcomponent-ai runtimes) on the protocol's
// command channel.
func (b *Backend) command(parent context.Context, w *waiter, cmd any, partitioned bool) (outcome, error) {
	body, err := wire.Encode(cmd)
	if err != nil {
		return outcome{}, fmt.Errorf("encode command: %w: %v", httpapi.ErrInvalid, err)
	}
	ctx, cancel := context.WithTimeout(parent, b.cfg.CommandTimeout)
	defer cancel()
	w.attempt = uuid.NewString() // before the waiter is visible to onReply
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return outcome{}, fmt.Errorf("dashboard stopping: %w", httpapi.ErrUnavailable)
	}
	if b.waiters[w.commandID] != nil {
		// The same command id (an Idempotency-Key) already awaits its answer here.
		b.mu.Unlock()
		return outcome{}, fmt.Errorf("command %s: %w", w.commandID, httpapi.ErrInProgress)
	}
	b.seq++
	w.seq = b.seq
	b.waiters[w.commandID] = w
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		if b.waiters[w.commandID] == w { // a match removed it, and a retry may have come since
			delete(b.waiters, w.commandID)
		}
		b.mu.Unlock()
	}()
	// The runtime's consumer joins the trace of the HTTP request, when it is traced.
	meta := bus.Meta{MessageID: w.commandID, CorrelationID: w.commandID,
		Headers: telemetry.Inject(ctx, map[string]string{bus.HeaderAttempt: w.attempt})}
	if partitioned {
		err = b.batch.PublishCommand(ctx, w.component, w.instanceID, w.channel, body, meta)
	} else {
		err = b.cfg.Bus.Publish(ctx, w.channel, body, meta)
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			// A publication cut by a connection loss may have reached the broker before it
			// and been applied: the database knows.
			if o, ok := b.outcomeFromStore(parent, w); ok {
				return o, o.err
			}
			return outcome{}, fmt.Errorf("%s not confirmed by the broker in %s: %w", w.channel, b.cfg.CommandTimeout, httpapi.ErrUnavailable)
		}
		return outcome{}, fmt.Errorf("publish %s: %w: %v", w.channel, httpapi.ErrUnavailable, err)
	}
	select {
	case o := <-w.ch:
		return o, o.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// The answer may be lost (the dashboard's queues gone with the broker): the
			// database the runtimes share knows whether the command was applied.
			if o, ok := b.outcomeFromStore(parent, w); ok {
				return o, o.err
			}
			return outcome{}, fmt.Errorf("command %s (%s): no runtime of %s answered within %s: %w", w.commandID, w.channel, w.component, b.cfg.CommandTimeout, httpapi.ErrTimeout)
		}
		return outcome{}, ctx.Err()
	}
}

// onReply handles fsm:responses:command: the answer to one of our commands.
//
// The reply's instance is decoded only when the reply is ours and still awaited: not for
// another dashboard's command, nor when the command's state_change (our runtimes publish one
// too) came first and answered it; its context is the costly part of the reply to decode.
func (b *Backend) onReply(_ context.Context, m bus.Message) error {
	var head replyHead
	err := json.Unmarshal(m.Body, &head)
	if err != nil || head.CommandID == "" {
		b.log.Warn("command reply ignored: undecodable or without commandId", "body", truncate(m.Body), "err", err)
		return nil
	}
	r := head.CommandReply
	b.seen(sighting{id: r.RuntimeID, name: r.RuntimeName, component: r.ComponentName})
	b.mu.Lock()
	w := b.waiters[r.CommandID]
	b.mu.Unlock()
	if w == nil || (r.Attempt != "" && r.Attempt != w.attempt) {
		// Another dashboard's command (or the same id sent by another dashboard or
		// earlier: an Idempotency-Key retried), or answered already.
		return nil
	}
	if len(head.Instance) > 0 && string(head.Instance) != "null" {
		if r.Instance, err = wire.Decode[*wire.InstanceSnapshot](head.Instance); err != nil {
			b.log.Warn("command reply ignored: undecodable instance", "body", truncate(m.Body), "err", err)
			return nil
		}
	}
	rname := b.runtimeName(r.RuntimeID, r.RuntimeName)
	switch r.Status {
	case wire.ReplyApplied, wire.ReplyDuplicate:
		var in xc.Instance
		if r.Instance != nil {
			in = b.fromSnapshot(r.ComponentName, r.RuntimeID, r.Timestamp, r.Instance)
		} else if w.instanceID != "" {
			in, _ = b.cached(w.instanceID)
		}
		if w.channel == wire.ChannelCreateInstance && in.ID != "" {
			b.trail(store.Event{ID: r.CommandID, InstanceID: in.ID}, rname)
		} else if w.channel != wire.ChannelCreateInstance {
			b.trail(store.Event{ID: r.CommandID, InstanceID: w.instanceID}, rname)
		}
		o := outcome{in: in, prev: r.PreviousState, next: in.CurrentState, runtime: rname}
		if r.Status == wire.ReplyDuplicate && w.replyOnly {
			// Applied before (an Idempotency-Key's retry): the API answers it from the record.
			// A command id of ours applied before can only be a redelivery of this very
			// command (its first reply lost): applied, as it says.
			o.err = fmt.Errorf("command %s already applied (runtime %s): %w (%w)", r.CommandID, rname, xc.ErrNotAccepted, xc.ErrDuplicate)
		}
		w.finish(o)
	case wire.ReplyRefused:
		if r.Instance != nil { // a retried hook that failed again: recorded, the instance changed
			b.fromSnapshot(r.ComponentName, r.RuntimeID, r.Timestamp, r.Instance)
		}
		w.finish(outcome{err: refusal(r)})
	case wire.ReplyDeadLettered:
		w.finish(outcome{err: fmt.Errorf("command dead-lettered by runtime %s: %s: %w", rname, r.Error, httpapi.ErrInvalid)})
	default:
		b.log.Warn("command reply with an unknown status ignored", "status", r.Status, "commandId", r.CommandID)
	}
	return nil
}

// replyHead is a wire.CommandReply with its instance left undecoded (the shallower field
// wins in encoding/json).
type replyHead struct {
	wire.CommandReply
	Instance json.RawMessage `json:"instance,omitempty"`
}

// refusal maps a refused reply to the API's errors (wire.CommandReply.Code).
func refusal(r wire.CommandReply) error {
	reason := firstOf(r.Error, "refused by runtime "+firstOf(r.RuntimeName, r.RuntimeID))
	switch r.Code {
	case "not_found":
		return fmt.Errorf("%s: %w", reason, xc.ErrNotFound)
	case "invalid":
		return fmt.Errorf("%s: %w", reason, httpapi.ErrInvalid)
	case "unavailable":
		return fmt.Errorf("%s: %w", reason, httpapi.ErrUnavailable)
	case "conflict":
		return fmt.Errorf("%s: %w", reason, xc.ErrSingleton)
	case "hook_failed":
		return fmt.Errorf("%s: %w", reason, xc.ErrHookFailed)
	default:
		return fmt.Errorf("%s: %w", reason, xc.ErrNotAccepted)
	}
}

// fromSnapshot applies a reply's instance to the live view and returns the view's instance.
func (b *Backend) fromSnapshot(comp, runtimeID string, ts int64, s *wire.InstanceSnapshot) xc.Instance {
	if ts == 0 {
		ts = wire.Now()
	}
	v := wiremap.InstanceView(comp, *s, ts)
	b.apply(update{runtimeID: runtimeID, component: comp, foreign: b.isForeign(runtimeID), ts: ts, id: v.ID,
		machine: v.MachineName, state: v.CurrentState, context: v.Context, status: v.Status,
		timeouts: v.PendingTimeouts, setTimeouts: true, version: v.Version})
	in, _ := b.cached(s.ID)
	// The reply's snapshot is the instance right after the command, whatever the view holds.
	in.CurrentState, in.Context, in.Version = v.CurrentState, v.Context, max(in.Version, v.Version)
	return in
}

// matchCreated finishes the create waiting for this instance_created: the one whose command
// id the event carries, or whose instance id it named, else (runtimes that send no ids, e.g.
// xcomponent-ai's) the oldest create of the same component, machine and context.
func (b *Backend) matchCreated(inc wiremap.Incoming, d xc.InstanceCreated) {
	b.mu.Lock()
	var w *waiter
	for _, id := range []string{inc.Trace.CommandID, inc.Trace.CorrelationID, inc.Trace.CausationID} {
		if x := b.waiters[id]; id != "" && x != nil && x.channel == wire.ChannelCreateInstance && !x.replyOnly {
			w = x
			break
		}
	}
	if w == nil {
		for _, x := range b.waiters {
			if x.channel == wire.ChannelCreateInstance && x.instanceID != "" && x.instanceID == d.InstanceID && !x.replyOnly {
				w = x
				break
			}
		}
	}
	if w == nil {
		got, err := canonicalFields(d.Context)
		if err == nil {
			for _, x := range b.waiters {
				if x.channel == wire.ChannelCreateInstance && x.instanceID == "" && x.component == inc.Event.Component &&
					x.machine == d.MachineName && contains(got, x.ctxJSON) && (w == nil || x.seq < w.seq) {
					w = x
				}
			}
		}
	}
	if w != nil {
		delete(b.waiters, w.commandID) // one instance answers one create
	}
	var in xc.Instance
	if e := b.instances[d.InstanceID]; e != nil && w != nil {
		in = b.view(e)
	}
	b.mu.Unlock()
	if w == nil {
		return
	}
	rname := b.runtimeName(inc.RuntimeID, inc.RuntimeName)
	b.trail(store.Event{ID: w.commandID, InstanceID: d.InstanceID}, rname)
	w.finish(outcome{in: in, next: in.CurrentState, runtime: rname})
}

// matchStateChange finishes the trigger that caused this state_change: the one whose command
// id is the event's id, else (no ids) the oldest trigger of that event type on that instance.
func (b *Backend) matchStateChange(inc wiremap.Incoming, d xc.StateChanged) {
	b.mu.Lock()
	var w *waiter
	for _, id := range []string{d.Event.ID, inc.Trace.CommandID} {
		if x := b.waiters[id]; id != "" && x != nil && x.channel == wire.ChannelTriggerEvent && !x.replyOnly {
			w = x
			break
		}
	}
	if w == nil && d.Event.ID == "" && inc.Trace.CommandID == "" {
		for _, x := range b.waiters {
			if x.channel == wire.ChannelTriggerEvent && x.instanceID == d.InstanceID && x.eventType == d.Event.Type &&
				(w == nil || x.seq < w.seq) {
				w = x
			}
		}
	}
	if w != nil {
		delete(b.waiters, w.commandID)
	}
	var in xc.Instance
	if e := b.instances[d.InstanceID]; e != nil && w != nil {
		in = b.view(e)
	}
	b.mu.Unlock()
	if w == nil {
		return
	}
	// The event's own snapshot, whatever newer news the view may hold already.
	in.CurrentState, in.Context = d.NewState, d.Context
	if d.Version > 0 {
		in.Version = d.Version
	}
	w.finish(outcome{in: in, prev: d.PreviousState, next: d.NewState, runtime: b.runtimeName(inc.RuntimeID, inc.RuntimeName)})
}

// canonicalFields is each value of v as canonical JSON (after a JSON round trip: numbers as
// float64, map keys sorted), so that a context sent and the same context received compare
// equal field by field.
func canonicalFields(v map[string]any) (map[string]string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(back))
	for k, v := range back {
		c, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		out[k] = string(c)
	}
	return out, nil
}

// contains says whether got has every field of sent with the same value: the runtime may add
// fields of its own (defaults, bookkeeping) to the context it was given.
func contains(got, sent map[string]string) bool {
	for k, v := range sent {
		if got[k] != v {
			return false
		}
	}
	return true
}
