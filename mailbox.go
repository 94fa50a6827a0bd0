package xcomponent

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/xcomponent/xcomponent/store"
)

// delivery is one event on its way to one instance.
type delivery struct {
	inst *instance
	ev   Event
	// routed: delivered by routing (broadcast, cascade, cross-component): only transitions
	// whose matching rules pass are candidates.
	routed bool
	// consumed is the outbox message this delivery settles, committed with its effect.
	consumed string
	// inbox makes the delivery idempotent (fan-out deliveries of one outbox message).
	inbox string
	// timer is the arming that fired, for timer deliveries.
	timer *store.Timer
	// fresh is the instance's record as a timer claim read it from the store: newer than the
	// engine's when another process changed the instance.
	fresh *store.Instance
	// op, when set, makes the delivery an operator action (Terminate, RetryHook) rather than
	// an event: it takes its turn in the instance's queue like one.
	op opKind
	// done, when set, receives the outcome.
	done func(Result, error)
	// next is the delivery queued after this one on the same instance.
	next *delivery
	// span is the delivery's transition span while it is processed (tracing on), else nil.
	span Span
	// state arbitrates between a waiting caller that gives up and the goroutine that takes
	// the delivery from the queue: exactly one of them wins (deliveryQueued → taken or
	// cancelled), so an event whose caller was told it failed is never applied.
	state atomic.Int32
}

const (
	deliveryQueued int32 = iota
	deliveryTaken
	deliveryCancelled
)

// Send delivers an event to one instance and waits for the outcome: the transition it fired,
// or an error wrapping ErrNotAccepted (with the reason), ErrNotFound or ErrStore. The payload
// map must not be modified after the call.
func (e *Engine) Send(ctx context.Context, instanceID string, ev Event) (Result, error) {
	if e.closed.Load() {
		return Result{}, ErrClosed
	}
	if err := cleanEvent(&ev); err != nil {
		return Result{}, err
	}
	inst := e.lookupOrLoad(ctx, instanceID)
	if inst == nil {
		return Result{}, e.missingInstance(ctx, instanceID)
	}
	// An event that comes with its own id (a command redelivered by a broker, a retried
	// request) is applied at most once: its id goes through the store's inbox.
	inbox := ev.ID
	e.fillIDs(&ev)
	if ev.Source == "" {
		ev.Source = SourceAPI
	}
	if e.tracer != nil && ev.TraceParent == "" {
		ev.TraceParent = e.tracer.TraceParent(ctx) // kept if the event waits in a queue
	}
	if e.manual {
		if err := e.settle(ctx); err != nil {
			return Result{}, err
		}
		return e.process(ctx, &delivery{inst: inst, ev: ev, inbox: inbox})
	}
	return e.deliver(ctx, inst, ev, false, inbox, nil)
}

// deliver processes an event in the calling goroutine when the instance is idle (the
// delivery then stays on this goroutine's stack), else queues it and waits.
func (e *Engine) deliver(ctx context.Context, inst *instance, ev Event, routed bool, inbox string, fresh *store.Instance) (Result, error) {
	inst.mu.Lock()
	if !inst.running {
		inst.running = true
		inst.mu.Unlock()
		d := delivery{inst: inst, ev: ev, routed: routed, inbox: inbox, fresh: fresh}
		e.addPending(1)
		res, err := e.process(ctx, &d)
		e.release(inst)
		e.addPending(-1)
		return res, err
	}
	inst.mu.Unlock()
	return e.deliverWait(ctx, &delivery{inst: inst, ev: ev, routed: routed, inbox: inbox, fresh: fresh})
}

// deliverWait processes d in the calling goroutine when its instance is idle, else queues it
// behind the instance's other events and waits.
func (e *Engine) deliverWait(ctx context.Context, d *delivery) (Result, error) {
	inst := d.inst
	inst.mu.Lock()
	if !inst.running {
		inst.running = true
		inst.mu.Unlock()
		e.addPending(1)
		res, err := e.process(ctx, d)
		e.release(inst)
		e.addPending(-1)
		return res, err
	}
	inst.mu.Unlock()
	type outcome struct {
		res Result
		err error
	}
	ch := make(chan outcome, 1)
	d.done = func(r Result, err error) { ch <- outcome{r, err} }
	e.enqueue(d)
	select {
	case o := <-ch:
		return o.res, o.err
	case <-ctx.Done():
		if d.state.CompareAndSwap(deliveryQueued, deliveryCancelled) {
			return Result{}, fmt.Errorf("event %s to instance %s: given up while queued, not applied: %w", d.ev.Type, inst.ID(), ctx.Err())
		}
		o := <-ch // already being processed: its outcome is the answer
		return o.res, o.err
	}
}

// release ends a turn of processing on inst: a drainer takes over if events arrived meanwhile.
func (e *Engine) release(inst *instance) {
	inst.mu.Lock()
	if inst.head == nil {
		inst.running = false
		inst.mu.Unlock()
		return
	}
	inst.mu.Unlock()
	e.wg.Add(1)
	go e.drain(inst)
}

// enqueue queues d for asynchronous processing.
func (e *Engine) enqueue(d *delivery) {
	e.addPending(1)
	if e.manual {
		e.fifoMu.Lock()
		e.fifo = append(e.fifo, d)
		e.fifoMu.Unlock()
		return
	}
	inst := d.inst
	inst.mu.Lock()
	if inst.tail == nil {
		inst.head = d
	} else {
		inst.tail.next = d
	}
	inst.tail = d
	if inst.running {
		inst.mu.Unlock()
		return
	}
	inst.running = true
	inst.mu.Unlock()
	e.wg.Add(1)
	go e.drain(inst)
}

// drain processes an instance's queue until it is empty.
func (e *Engine) drain(inst *instance) {
	defer e.wg.Done()
	for {
		inst.mu.Lock()
		d := inst.head
		if d == nil {
			inst.running = false
			inst.mu.Unlock()
			return
		}
		inst.head, d.next = d.next, nil
		if inst.head == nil {
			inst.tail = nil
		}
		inst.mu.Unlock()
		if !d.state.CompareAndSwap(deliveryQueued, deliveryTaken) {
			e.addPending(-1) // its caller gave up
			continue
		}
		res, err := e.process(e.baseCtx, d)
		if d.done != nil {
			d.done(res, err)
		}
		e.addPending(-1)
	}
}

func (e *Engine) missingInstance(ctx context.Context, id string) error {
	rec, err := e.store.Instance(ctx, id)
	if err == nil && rec.Status != store.StatusActive {
		return fmt.Errorf("instance %s is %s: %w", id, rec.Status, ErrNotAccepted)
	}
	return fmt.Errorf("instance %s not found: %w", id, ErrNotFound)
}

// settleLimit bounds one Settle call, so that a zero-delay auto loop ends with an error.
const settleLimit = 1_000_000

// settle processes, in manual mode, every queued event and every timer already due, until
// nothing is left. In the normal mode it is WaitIdle.
func (e *Engine) settle(ctx context.Context) error {
	if !e.manual {
		return e.WaitIdle(ctx)
	}
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if n == settleLimit {
			return fmt.Errorf("settle: still busy after %d deliveries (an auto or timeout transition looping without delay?)", n)
		}
		e.fifoMu.Lock()
		if len(e.fifo) == 0 {
			e.fifoMu.Unlock()
			if e.timers.fireDue() > 0 {
				continue
			}
			return nil
		}
		d := e.fifo[0]
		e.fifo[0] = nil
		e.fifo = e.fifo[1:]
		e.fifoMu.Unlock()
		if !d.state.CompareAndSwap(deliveryQueued, deliveryTaken) {
			e.addPending(-1)
			continue
		}
		res, err := e.process(ctx, d)
		if d.done != nil {
			d.done(res, err)
		}
		e.addPending(-1)
	}
}
