// Package xcomponent is a runtime for business state machines written in YAML.
//
// A component (one YAML file, see package component) holds state machines; an Engine runs
// their instances: it enforces that only declared transitions happen, runs hooks, fires
// timers, routes events by business properties, lets machines and components talk to each
// other and records every transition in a store.
//
//	comp, _ := component.LoadFile("order.yaml")
//	eng := xcomponent.New(xcomponent.Options{})
//	eng.Handle("reserveStock", func(ctx context.Context, h *xcomponent.Hook) error { … })
//	_ = eng.Load(ctx, comp)
//	inst, _ := eng.Create(ctx, xcomponent.CreateRequest{Component: "Orders", Machine: "Order"})
//	res, err := eng.Send(ctx, inst.ID, xcomponent.Event{Type: "VALIDATE"})
//
// Events to one instance are processed one at a time in arrival order; different instances
// run concurrently. A transition runs to completion: whatever it sends is dispatched after it
// is committed.
package xcomponent

// Lock order. The engine's mutexes, and which may be taken while holding which (a lock not
// listed under another is never taken while holding it):
//
//	compRuntime.createMu        serialises creations of entry-machine instances; held across
//	                            the store commit that creates one, and the registration after
//	  → Engine.mu               components and live instances (read-mostly)
//	      → machineRuntime.mu   a machine's state sets and routing indexes
//	  → machineRuntime.mu
//	  → timerQueue.mu           the timer heap; held while setting the clock timer
//	      → the clock's lock (clock.Fake)
//	  → subscribers.mu          runtime event subscribers (emit holds it while sending,
//	                            without blocking)
//	timerPoller.mu → the clock's lock
//
// Leaves, taken alone: instance.mu (an instance's mailbox), Engine.idleMu (pending count),
// Engine.fifoMu (the manual-mode queue), Engine.hooksMu (handlers). The store's own locks
// are below all of these: the engine calls the store holding at most createMu. No engine lock
// is held while a hook runs, nor while a Remote delivers; a synchronous listener (xcomponenttest)
// runs in the goroutine that emits, possibly under createMu, which is why it must not call
// the engine.
