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
