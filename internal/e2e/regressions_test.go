package e2e

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
)

const queueComponent = `
name: Queue
entryMachine: M
entryMachineMode: multiple
stateMachines:
  - name: M
    initialState: A
    states: [{name: A, type: entry}]
    transitions:
      - {from: A, to: A, event: SLOW, triggeredMethod: block}
      - {from: A, to: A, event: FAST}
`

// TestQueuedEventWhoseCallerGaveUpIsNotApplied: when the caller's context ends while its
// event is queued behind another event of the same instance, Send returns an error (503
// through the API, 504 on the API's request timeout) and the event is never applied. Before
// bf9112c the delivery stayed queued and was applied later: the caller was told it failed,
// and it had not.
func TestQueuedEventWhoseCallerGaveUpIsNotApplied(t *testing.T) {
	comp, err := component.Parse([]byte(queueComponent), "queue.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eng := xc.New(xc.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer eng.Close(context.Background())
	entered, release := make(chan struct{}), make(chan struct{})
	eng.Handle("block", func(ctx context.Context, h *xc.Hook) error {
		close(entered)
		<-release
		return nil
	})
	ctx := context.Background()
	if err := eng.Load(ctx, comp); err != nil {
		t.Fatal(err)
	}
	in, err := eng.Create(ctx, xc.CreateRequest{Component: "Queue"})
	if err != nil {
		t.Fatal(err)
	}
	slow := make(chan error, 1)
	go func() {
		_, err := eng.Send(ctx, in.ID, xc.Event{Type: "SLOW"})
		slow <- err
	}()
	<-entered // the instance is busy: the next event is queued
	gaveUp, cancel := context.WithCancel(ctx)
	cancel()
	_, err = eng.Send(gaveUp, in.ID, xc.Event{Type: "FAST"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("FAST with a cancelled context: %v, want context.Canceled", err)
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := eng.WaitIdle(wctx); err != nil {
		t.Fatal(err)
	}
	got, err := eng.Get(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 {
		t.Errorf("version %d after SLOW (accepted) and FAST (refused to its caller with %q): FAST was applied anyway", got.Version, "context canceled")
	}
}
