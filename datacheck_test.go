package xcomponent_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/xcomponenttest"
)

// TestHookDataWithNULRefusedOnEveryStore: a hook (a webhook's answer) that sets a string
// with a NUL refuses the transition the same way on every store, instead of failing the
// commit on PostgreSQL as if the store were down; the instance is unchanged.
func TestHookDataWithNULRefusedOnEveryStore(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"memory", "sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			st := openStore(t, name)
			eng := xcomponenttest.NewManual(xc.Options{Store: st, Logger: quietLog()})
			t.Cleanup(func() { _ = eng.Close(ctx) })
			eng.Handle("onGo", func(_ context.Context, h *xc.Hook) error {
				h.Data["fromHook"] = map[string]any{"list": []any{"ok", "bad\x00"}}
				return nil
			})
			if err := eng.Load(ctx, parse(t, hooksComponent)); err != nil {
				t.Fatal(err)
			}
			in, err := eng.Create(ctx, xc.CreateRequest{Component: "Hooks", Machine: "M"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = eng.Send(ctx, in.ID, xc.Event{Type: "GO"})
			var ce *xc.ContextError
			if !errors.As(err, &ce) || !errors.Is(err, xc.ErrNotAccepted) || errors.Is(err, xc.ErrStore) ||
				!strings.Contains(err.Error(), "fromHook.list[1]") {
				t.Fatalf("hook data with NUL: %v, want a refusal naming fromHook.list[1]", err)
			}
			got, err := eng.Get(ctx, in.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.CurrentState != "A" || got.Version != 0 || got.Context["fromHook"] != nil {
				t.Fatalf("instance changed: %+v", got)
			}
		})
	}
}
