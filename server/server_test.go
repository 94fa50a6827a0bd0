package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/server"
)

const shop = `
name: Shop
entryMachine: Order
entryMachineMode: multiple
stateMachines:
  - name: Order
    initialState: Created
    states: [{name: Created}, {name: Priced}]
    transitions:
      - {from: Created, to: Priced, event: PRICE, triggeredMethod: price}
`

// An embedded engine with a Go hook, served over HTTP with auth, then shut down by ctx.
func TestServeEmbeddedEngine(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	metrics := server.NewMetrics()
	eng := xc.New(xc.Options{Observer: metrics, Logger: quiet})
	defer eng.Close(context.Background())
	eng.Handle("price", func(_ context.Context, h *xc.Hook) error {
		h.Data["total"] = 42
		return nil
	})
	comp, err := component.Parse([]byte(shop), "shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Load(ctx, comp); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := server.ParseTokens("operator=secret")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- server.Serve(ctx, ln, eng, server.Options{Metrics: metrics, Tokens: tokens, Logger: quiet})
	}()
	base := "http://" + ln.Addr().String()
	call := func(method, path, body, token string) (int, map[string]any) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		return res.StatusCode, out
	}
	if code, _ := call("GET", "/api/components", "", ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	code, created := call("POST", "/api/components/Shop/instances", `{}`, "secret")
	if code != 201 {
		t.Fatalf("create: %d %v", code, created)
	}
	id := created["instanceId"].(string)
	code, res := call("POST", fmt.Sprintf("/api/instances/%s/trigger", id), `{"event":"PRICE"}`, "secret")
	if code != 200 || res["newState"] != "Priced" || res["instance"].(map[string]any)["context"].(map[string]any)["total"] != float64(42) {
		t.Fatalf("trigger: %d %v", code, res)
	}
	// A live stream is open; the shutdown must end it rather than wait for it.
	sreq, _ := http.NewRequest("GET", base+"/api/stream", nil)
	sreq.Header.Set("Authorization", "Bearer secret")
	stream, err := http.DefaultClient.Do(sreq)
	if err != nil || stream.StatusCode != 200 {
		t.Fatalf("stream: %v %v", err, stream)
	}
	defer stream.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop")
	}
}
