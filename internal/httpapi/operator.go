package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	xc "github.com/xcomponent/xcomponent"
)

// maxReason bounds the reason an operator gives with an action (characters).
const maxReason = 1000

// Operator is implemented by backends that can apply the operator actions (docs/semantics.md,
// "Operator actions"): the local engine, the distributed dashboard. A backend without it
// answers 501 to them. comp, when set, must be the instance's component (else not found).
type Operator interface {
	// Terminate ends an instance on an operator's request (xcomponent.Engine.Terminate).
	Terminate(ctx context.Context, comp, instanceID string, req xc.OperatorRequest) (xc.Result, error)
	// RetryHook runs an instance's failed onEntry hook again (xcomponent.Engine.RetryHook).
	RetryHook(ctx context.Context, comp, instanceID string, req xc.OperatorRequest) (xc.Result, error)
}

// ErrNotImplemented: the backend, or the runtime holding the instance, does not implement the
// action (an xcomponent-ai runtime knows no terminate command) → 501.
var ErrNotImplemented = errors.New("not implemented")

// operatorBody is the body of the terminate and retry endpoints; it may be empty.
type operatorBody struct {
	Reason string `json:"reason"`
}

// checkReason checks the reason given with an operator action.
func checkReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	if !utf8.ValidString(reason) {
		return "", badRequest("reason: not valid UTF-8")
	}
	if n := utf8.RuneCountInString(reason); n > maxReason {
		return "", badRequest("reason: %d characters, at most %d", n, maxReason)
	}
	if strings.IndexByte(reason, 0) >= 0 {
		return "", badRequest("reason: must not contain a NUL character")
	}
	return reason, nil
}

func (s *server) handleTerminate(w http.ResponseWriter, r *http.Request) error {
	return s.operatorAction(w, r, "terminate", Operator.Terminate)
}

func (s *server) handleRetry(w http.ResponseWriter, r *http.Request) error {
	return s.operatorAction(w, r, "retry", Operator.RetryHook)
}

// operatorAction applies an operator action to instance {id} of component {component}.
func (s *server) operatorAction(w http.ResponseWriter, r *http.Request, route string,
	act func(Operator, context.Context, string, string, xc.OperatorRequest) (xc.Result, error)) error {
	c, err := s.component(r.PathValue("component"))
	if err != nil {
		return err
	}
	id := pathID(r)
	if err := checkID(id); err != nil {
		return err
	}
	var body operatorBody
	if err := s.decode(w, r, &body, true); err != nil {
		return err
	}
	reason, err := checkReason(body.Reason)
	if err != nil {
		return err
	}
	op, ok := s.b.(Operator)
	if !ok {
		return &apiError{status: http.StatusNotImplemented, msg: "this backend does not implement operator actions"}
	}
	key, err := idempotencyKey(w, r)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	req := xc.OperatorRequest{Actor: actor(w), Reason: reason}
	// ev is the audit entry the action records (its id, for a keyed request).
	ev := xc.Event{Type: xc.EventTerminated}
	if route == "retry" {
		ev.Type = xc.EventHookRetried
	}
	if key != nil {
		req.ID = key.id(route, id)
		ev.ID = req.ID
		if route == "retry" {
			// A retried hook runs before its commit finds the id applied: look first, so
			// that a retry of the request does not run the hook again.
			if res, rerr := s.replayEvent(ctx, c.Name, id, ev, xc.ErrNotAccepted); rerr == nil {
				replayed(w)
				return s.writeEncoded(w, http.StatusOK, func(b []byte) ([]byte, error) { return appendEventAnswer(b, &res) })
			}
		}
	}
	res, err := act(op, ctx, c.Name, id, req)
	if err != nil && key != nil {
		if res, err = s.replayEvent(ctx, c.Name, id, ev, err); err == nil {
			replayed(w)
		}
	}
	if err != nil {
		return err
	}
	return s.writeEncoded(w, http.StatusOK, func(b []byte) ([]byte, error) { return appendEventAnswer(b, &res) })
}

// Terminate implements Operator.
func (l *local) Terminate(ctx context.Context, comp, id string, req xc.OperatorRequest) (xc.Result, error) {
	if err := l.checkComponent(ctx, comp, id); err != nil {
		return xc.Result{}, err
	}
	return l.eng.Terminate(ctx, id, req)
}

// RetryHook implements Operator.
func (l *local) RetryHook(ctx context.Context, comp, id string, req xc.OperatorRequest) (xc.Result, error) {
	if err := l.checkComponent(ctx, comp, id); err != nil {
		return xc.Result{}, err
	}
	return l.eng.RetryHook(ctx, id, req)
}
