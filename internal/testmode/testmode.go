// Package testmode is how package xcomponenttest reaches what an engine keeps from its
// public API: manual mode, a synchronous listener, and the functions that drive its timers.
package testmode

import (
	"context"
	"time"
)

// Driver is given to xcomponent.New by xcomponenttest (Options.Testing). Manual and Listen
// are read by New; New fills in the functions.
type Driver[E any] struct {
	// Manual turns off background processing: queued events and due timers are processed
	// only by Settle and the calling goroutine, in a deterministic order.
	Manual bool
	// Listen, when set, is called synchronously with every runtime event, in the goroutine
	// that produced it. It must be quick and must not call the engine.
	Listen func(E)

	// Settle processes (manual mode) or waits for (normal mode) every queued event and
	// every timer already due, until nothing is left.
	Settle func(ctx context.Context) error
	// FireDue fires one batch of due timers and returns how many it took.
	FireDue func() int
	// NextDeadline returns the earliest pending timer deadline.
	NextDeadline func() (time.Time, bool)
}
