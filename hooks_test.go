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
	"github.com/xcomponent/xcomponent/xcomponenttest"
)

func TestDefaultHookServesMethodsWithoutHandler(t *testing.T) {
	src := hooksComponent
	var defaulted, handled []string
	eng := xcomponenttest.NewManual(xc.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
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
	if notes := noHandlerNotes(t, eng.Engine, in.ID); len(notes) != 0 {
		t.Fatalf("hooks without handler noted although a default hook exists: %v", notes)
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
	eng := xcomponenttest.NewManual(xc.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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
	if notes := noHandlerNotes(t, eng.Engine, in.ID); !slices.Equal(notes, []string{"triggeredMethod onGo: no handler; onEntry enterB: no handler"}) {
		t.Fatalf("audit trail notes: %v", notes)
	}
}

// noHandlerNotes returns the notes of an instance's history that speak of missing handlers.
func noHandlerNotes(t *testing.T, eng *xc.Engine, id string) []string {
	t.Helper()
	evs, err := eng.Store().History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		if strings.Contains(ev.Note, "no handler") {
			out = append(out, ev.Note)
		}
	}
	return out
}
