package xcomponent_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	xc "github.com/xcomponent/xcomponent"
)

func TestDefaultHookServesMethodsWithoutHandler(t *testing.T) {
	src := hooksComponent
	var defaulted, handled, missing []string
	eng := xc.New(xc.Options{Manual: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		DefaultHook: func(_ context.Context, h *xc.Hook) error {
			defaulted = append(defaulted, string(h.Kind)+":"+h.Method)
			if h.Event.Payload["veto"] == true {
				return errors.New("default says no")
			}
			if h.Kind == xc.HookTriggered {
				h.Data["byDefault"] = true
				h.Send.SendToSelf(xc.Event{Type: "NEXT"})
			}
			return nil
		},
		MissingHook: func(h *xc.Hook) { missing = append(missing, h.Method) },
	})
	t.Cleanup(func() { _ = eng.Close(context.Background()) })
	// A registered handler wins over the default.
	eng.Handle("enterB", func(_ context.Context, h *xc.Hook) error {
		handled = append(handled, h.Method)
		return nil
	})
	ctx := context.Background()
	if err := eng.Load(ctx, parse(t, src)); err != nil {
		t.Fatal(err)
	}
	in, err := eng.Create(ctx, xc.CreateRequest{Component: "Hooks", Machine: "M"})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := eng.Send(ctx, in.ID, xc.Event{Type: "GO", Payload: map[string]any{"veto": true}}); !errors.Is(err, xc.ErrNotAccepted) || !strings.Contains(err.Error(), "default says no") {
		t.Fatalf("veto by the default hook: %v", err)
	}
	defaulted = nil
	if _, err := eng.Send(ctx, in.ID, xc.Event{Type: "GO"}); err != nil {
		t.Fatal(err)
	}
	if err := eng.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := eng.Get(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.CurrentState != "C" || got.Context["byDefault"] != true {
		t.Fatalf("after GO: %+v", got)
	}
	if want := []string{"onExit:leaveA", "triggeredMethod:onGo"}; !slices.Equal(defaulted, want) {
		t.Fatalf("default hook calls: %v, want %v", defaulted, want)
	}
	if !slices.Equal(handled, []string{"enterB"}) {
		t.Fatalf("registered handler calls: %v", handled)
	}
	if len(missing) != 0 {
		t.Fatalf("MissingHook called although a default hook exists: %v", missing)
	}
}

func TestMissingHookWithoutDefault(t *testing.T) {
	src := `
name: Hooks
stateMachines:
  - name: M
    initialState: A
    states:
      - {name: A}
      - {name: B, onEntry: enterB}
    transitions:
      - {from: A, to: B, event: GO, triggeredMethod: onGo}
`
	var missing []string
	eng := xc.New(xc.Options{Manual: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		MissingHook: func(h *xc.Hook) { missing = append(missing, h.Method) }})
	t.Cleanup(func() { _ = eng.Close(context.Background()) })
	ctx := context.Background()
	if err := eng.Load(ctx, parse(t, src)); err != nil {
		t.Fatal(err)
	}
	in, err := eng.Create(ctx, xc.CreateRequest{Component: "Hooks", Machine: "M"})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := eng.Send(ctx, in.ID, xc.Event{Type: "GO"}); err != nil || res.NewState != "B" {
		t.Fatalf("GO: %+v %v", res, err)
	}
	if !slices.Equal(missing, []string{"onGo", "enterB"}) {
		t.Fatalf("MissingHook calls: %v", missing)
	}
}
