package busbackend

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/internal/httpapi"
	"github.com/xcomponent/xcomponent/wire"
)

// The operator actions over the bus (httpapi.Operator): our command channels
// fsm:commands:terminate_instance and fsm:commands:retry_hook (docs/wire.md), published to the
// instance's partition so that they take their turn behind the instance's queued events, and
// answered on fsm:responses:command like create and trigger.

var _ httpapi.Operator = (*Backend)(nil)

// Terminate implements httpapi.Operator: publishes fsm:commands:terminate_instance and waits
// for the runtime's reply.
func (b *Backend) Terminate(ctx context.Context, comp, id string, req xc.OperatorRequest) (xc.Result, error) {
	return b.operate(ctx, wire.ChannelTerminateInstance, comp, id, req)
}

// RetryHook implements httpapi.Operator: publishes fsm:commands:retry_hook and waits for the
// runtime's reply.
func (b *Backend) RetryHook(ctx context.Context, comp, id string, req xc.OperatorRequest) (xc.Result, error) {
	return b.operate(ctx, wire.ChannelRetryHook, comp, id, req)
}

// operate sends an operator command for instance id (of component comp when set). Whether the
// action applies (an ended instance cannot be terminated, no failed hook to retry …) is the
// runtime's to say: its refusal comes back with the reason. The runtimes of xcomponent-ai know
// no such command and would never answer: when none of ours is up for the component, the
// answer is ErrNotImplemented (501) at once rather than a timeout.
func (b *Backend) operate(ctx context.Context, channel, comp, id string, req xc.OperatorRequest) (xc.Result, error) {
	in, err := b.Instance(ctx, id)
	if err != nil {
		return xc.Result{}, err
	}
	if comp != "" && in.ComponentName != comp {
		return xc.Result{}, fmt.Errorf("instance %s not found in component %s: %w", id, comp, xc.ErrNotFound)
	}
	ours, err := b.checkRuntime(in.ComponentName)
	if err != nil {
		return xc.Result{}, err
	}
	if !ours {
		return xc.Result{}, fmt.Errorf("the runtimes up for component %s are xcomponent-ai runtimes, which know no %s command: %w",
			in.ComponentName, channel, httpapi.ErrNotImplemented)
	}
	cid := firstOf(req.ID, uuid.NewString())
	cmd := wire.OperatorCommand{ComponentName: in.ComponentName, InstanceID: id, Actor: req.Actor, Reason: req.Reason,
		Timestamp: wire.Millis(b.clk.Now()), RuntimeName: "dashboard"}
	cmd.CommandID, cmd.CorrelationID = cid, req.CorrelationID
	w := &waiter{commandID: cid, channel: channel, component: in.ComponentName, instanceID: id, replyOnly: req.ID != "", ch: make(chan outcome, 1)}
	o, err := b.command(ctx, w, cmd, true)
	if err != nil {
		return xc.Result{}, err
	}
	return xc.Result{Instance: o.in, PreviousState: firstOf(o.prev, in.CurrentState), NewState: firstOf(o.next, o.in.CurrentState), EventID: cid}, nil
}
