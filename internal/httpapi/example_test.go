package httpapi_test

import (
	"context"
	"log"
	"net"
	"net/http"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/internal/httpapi"
	"github.com/xcomponent/xcomponent/store"
)

// Example wires the API of `xcomponent serve`: one Metrics for the engine (as its Observer)
// and for the handler, and a BaseContext cancelled at shutdown so that streams end.
func Example() {
	metrics := httpapi.NewMetrics()
	eng := xc.New(xc.Options{Store: store.NewMemory(), Observer: metrics})
	// … eng.Load(ctx, comp) for each component file …
	tokens, err := httpapi.ParseTokens("operator=change-me,viewer=read-only")
	if err != nil {
		log.Fatal(err)
	}
	api := httpapi.New(httpapi.NewLocal(eng, httpapi.WithDatabaseType("memory"), httpapi.WithRuntime("serve", "localhost", 3000)),
		httpapi.Options{Metrics: metrics, Tokens: tokens})

	ctx, stop := context.WithCancel(context.Background())
	srv := &http.Server{Addr: ":3000", Handler: api, BaseContext: func(net.Listener) context.Context { return ctx }}
	_ = srv // srv.ListenAndServe(); at shutdown: stop(), srv.Shutdown(…), eng.Close(…)
	stop()
}
