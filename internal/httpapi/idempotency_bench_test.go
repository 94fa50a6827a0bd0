package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/postgres"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
)

// pagerOnly is a backend without EventFinder: findEvent pages the history.
type pagerOnly struct {
	Backend
	hp HistoryPager
}

func (p pagerOnly) HistoryPage(ctx context.Context, id string, pg store.EventPage) ([]store.Event, string, error) {
	return p.hp.HistoryPage(ctx, id, pg)
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIdempotentRefusal: the costliest keyed request, an event refused on an instance with
// a long history (XCOMPONENT_IDEM_EVENTS, default 10,000, on PostgreSQL): the handler looks for
// the key's event before answering 409. lookup=id reads it by the primary key
// (store.EventGetter), lookup=pages reads the history newest pages first; key=none is the
// same request without a key. cpu-ns/op is this
// process's CPU (client and server; PostgreSQL's own is not counted).
//
//	go test ./internal/httpapi -run '^$' -bench IdempotentRefusal -benchtime 20x
func BenchmarkIdempotentRefusal(b *testing.B) {
	n := 10_000
	if v := os.Getenv("XCOMPONENT_IDEM_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("XCOMPONENT_IDEM_EVENTS %q", v)
		}
	}
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := postgres.Open(ctx, pgtest.NewNamedDatabase(b, "xc_idem_"), postgres.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	eng := xc.New(xc.Options{Store: st, Logger: quiet})
	b.Cleanup(func() { _ = eng.Close(context.Background()) })
	if err := eng.Load(ctx, parseYAML(b, expenseYAML)); err != nil {
		b.Fatal(err)
	}
	in, err := eng.Create(ctx, xc.CreateRequest{Component: "Expense", Data: map[string]any{"employee": "ann"}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := eng.Send(ctx, in.ID, xc.Event{Type: "SUBMIT"}); err != nil {
		b.Fatal(err)
	}
	for range n {
		if _, err := eng.Send(ctx, in.ID, xc.Event{Type: "NOTE"}); err != nil {
			b.Fatal(err)
		}
	}
	local := NewLocal(eng)
	for _, tc := range []struct {
		name string
		b    Backend
		key  bool
	}{{"key=none", local, false}, {"lookup=id", local, true}, {"lookup=pages", pagerOnly{Backend: local, hp: local.(HistoryPager)}, true}} {
		b.Run(tc.name, func(b *testing.B) {
			srv := httptest.NewServer(New(tc.b, Options{Logger: quiet}))
			defer srv.Close()
			cpu0 := processCPU()
			for i := 0; i < b.N; i++ {
				req, _ := http.NewRequest("POST", srv.URL+"/api/instances/"+in.ID+"/trigger", strings.NewReader(`{"type":"SUBMIT"}`))
				req.Header.Set("Content-Type", "application/json")
				if tc.key {
					req.Header.Set(HeaderIdempotencyKey, "k-"+strconv.Itoa(i))
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusConflict {
					b.Fatalf("status %d, want 409", resp.StatusCode)
				}
			}
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
