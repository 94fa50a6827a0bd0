// Package xcomponenttest runs engines for tests and simulations on a virtual clock, the way
// temporal's testsuite and river's rivertest do for theirs:
//
//	eng := xcomponenttest.NewManual(xcomponent.Options{})
//	_ = eng.Load(ctx, comp)
//	inst, _ := eng.Create(ctx, xcomponent.CreateRequest{Component: "Orders"})
//	_ = eng.AdvanceTo(ctx, eng.Clock.Now().Add(7*24*time.Hour)) // timeouts fire, in order
//
// A manual engine has no background goroutine: queued events and due timers are processed
// only by Settle, AdvanceTo and the calls that send events, in a deterministic order, so
// that results do not depend on scheduling (`xcomponent simulate` runs on one).
package xcomponenttest

import (
	"context"
	"fmt"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/clock"
	"github.com/xcomponent/xcomponent/internal/testmode"
)

// Engine is an engine on a virtual clock, with what drives it.
type Engine struct {
	*xc.Engine
	// Clock is the engine's clock: AdvanceTo moves it.
	Clock *clock.Fake
	drv   *testmode.Driver[xc.RuntimeEvent]
}

// Options add to xcomponent.Options what only tests and simulations use.
type Options struct {
	// Listen, when set, is called synchronously with every runtime event, in the goroutine
	// that produced it (in a manual engine: the caller's, in order). It must be quick and
	// must not call the engine.
	Listen func(xc.RuntimeEvent)
}

// New returns an engine that processes events in the background as usual, on a virtual
// clock: opts.Clock when it is a *clock.Fake, else a new one at the current time.
func New(opts xc.Options, topts ...Options) *Engine { return newEngine(opts, false, topts) }

// NewManual returns an engine in manual mode on a virtual clock (see the package
// documentation and New).
func NewManual(opts xc.Options, topts ...Options) *Engine { return newEngine(opts, true, topts) }

func newEngine(opts xc.Options, manual bool, topts []Options) *Engine {
	fake, ok := opts.Clock.(*clock.Fake)
	if !ok {
		if opts.Clock != nil {
			panic(fmt.Sprintf("xcomponenttest: Options.Clock is a %T, not a *clock.Fake", opts.Clock))
		}
		fake = clock.NewFake(time.Now())
		opts.Clock = fake
	}
	drv := &testmode.Driver[xc.RuntimeEvent]{Manual: manual}
	for _, o := range topts {
		if o.Listen != nil {
			drv.Listen = o.Listen
		}
	}
	opts.Testing = drv
	return &Engine{Engine: xc.New(opts), Clock: fake, drv: drv}
}

// Settle processes, in manual mode, every queued event and every timer already due, until
// nothing is left; otherwise it waits for them (WaitIdle).
func (e *Engine) Settle(ctx context.Context) error { return e.drv.Settle(ctx) }

// NextDeadline returns the earliest pending timer deadline.
func (e *Engine) NextDeadline() (time.Time, bool) { return e.drv.NextDeadline() }

// AdvanceTo moves the clock to t: each due timer fires at its own deadline, in order, and
// what it causes settles before the next one.
func (e *Engine) AdvanceTo(ctx context.Context, t time.Time) error {
	for {
		if err := e.Settle(ctx); err != nil {
			return err
		}
		next, ok := e.NextDeadline()
		if !ok || next.After(t) {
			break
		}
		if next.After(e.Clock.Now()) {
			e.Clock.Set(next)
		}
		e.drv.FireDue()
	}
	e.Clock.Set(t)
	return e.Settle(ctx)
}

// Advance is AdvanceTo the clock's time plus d.
func (e *Engine) Advance(ctx context.Context, d time.Duration) error {
	return e.AdvanceTo(ctx, e.Clock.Now().Add(d))
}
