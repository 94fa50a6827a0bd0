package xcomponenttest_test

import (
	"context"
	"fmt"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/xcomponenttest"
)

const approval = `
name: Approval
stateMachines:
  - name: Request
    initialState: Pending
    states: [{name: Pending}, {name: Expired, type: error}]
    transitions:
      - {from: Pending, to: Expired, event: EXPIRE, type: timeout, timeoutMs: 604800000}
`

// A week passes in no time: the timeout fires at its deadline.
func Example() {
	ctx := context.Background()
	comp, err := component.Parse([]byte(approval), "approval.yaml")
	if err != nil {
		panic(err)
	}
	eng := xcomponenttest.NewManual(xc.Options{})
	defer eng.Close(ctx)
	if err := eng.Load(ctx, comp); err != nil {
		panic(err)
	}
	inst, _ := eng.Create(ctx, xc.CreateRequest{Component: "Approval", Machine: "Request"})
	_ = eng.Advance(ctx, 7*24*time.Hour-time.Second)
	before, _ := eng.Get(ctx, inst.ID)
	_ = eng.Advance(ctx, time.Second)
	after, _ := eng.Get(ctx, inst.ID)
	fmt.Println(before.CurrentState, "→", after.CurrentState)
	// Output: Pending → Expired
}
