package xcomponent_test

import (
	"context"
	"fmt"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
)

const orderYAML = `
name: Shop
entryMachine: Order
entryMachineMode: multiple
stateMachines:
  - name: Order
    initialState: Created
    states:
      - {name: Created, type: entry}
      - {name: Validated}
      - {name: Shipped, type: final}
    transitions:
      - {from: Created, to: Validated, event: VALIDATE, triggeredMethod: checkStock}
      - {from: Validated, to: Shipped, event: SHIP}
`

// A component loaded from YAML, a hook registered by method name, an instance driven by
// events; the hook's own event is dispatched after its transition commits.
func Example() {
	ctx := context.Background()
	comp, err := component.Parse([]byte(orderYAML), "shop.yaml")
	if err != nil {
		panic(err)
	}
	eng := xc.New(xc.Options{}) // in-memory store, real clock
	defer eng.Close(ctx)

	eng.Handle("checkStock", func(ctx context.Context, h *xc.Hook) error {
		if h.Data["qty"].(int) > 10 {
			return fmt.Errorf("only 10 in stock") // vetoes the transition
		}
		h.Data["reserved"] = true
		h.Send.SendToSelf(xc.Event{Type: "SHIP"})
		return nil
	})
	if err := eng.Load(ctx, comp); err != nil {
		panic(err)
	}

	big, _ := eng.Create(ctx, xc.CreateRequest{Component: "Shop", Data: map[string]any{"qty": 50}})
	_, err = eng.Send(ctx, big.ID, xc.Event{Type: "VALIDATE"})
	fmt.Println("big order:", err)

	small, _ := eng.Create(ctx, xc.CreateRequest{Component: "Shop", Data: map[string]any{"qty": 2}})
	res, _ := eng.Send(ctx, small.ID, xc.Event{Type: "VALIDATE"})
	fmt.Println("small order:", res.PreviousState, "->", res.NewState)

	_ = eng.WaitIdle(ctx) // the SHIP sent by the hook
	got, _ := eng.Get(ctx, small.ID)
	fmt.Println(got.CurrentState, got.Status, got.Context["reserved"])
	// Output:
	// big order: triggeredMethod hook checkStock vetoed the transition: only 10 in stock: event not accepted
	// small order: Created -> Validated
	// Shipped completed true
}
