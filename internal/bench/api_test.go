package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/server"
	"github.com/xcomponent/xcomponent/store"
)

// BenchmarkAPIEvent: one event through the REST API (POST
// /api/components/Bench/instances/:id/events {"type":"FLIP"}), what `xcomponent serve` does
// for each request of xcload: the server's handler chain (host check, routing, auth, request
// log at warn level, metrics), the body decoded, the engine's Send and its store commit, the
// answer encoded. Each of the clients drives its own instance, one request at a time.
//
// handler=direct calls the handler in the benchmark's goroutines (no sockets: what this
// repository's code costs); handler=tcp goes through net/http over loopback with keep-alive
// connections, client included. cpu-µs/op is the process's CPU time (user+system, every
// goroutine: client, server, store committers) per event, the figure that stays meaningful
// when the machine is shared.
//
//	go test ./internal/bench -run '^$' -bench APIEvent -benchtime 20000x
func BenchmarkAPIEvent(b *testing.B) {
	comp, err := component.Parse([]byte(toggle), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"memory", "sqlite", "postgres"} {
		b.Run("store="+name, func(b *testing.B) {
			var st store.Store = store.NewMemory()
			if name != "memory" {
				st = openStore(b, name)
			}
			quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
			metrics := server.NewMetrics()
			eng := xc.New(xc.Options{Store: st, Logger: quiet, Observer: metrics})
			b.Cleanup(func() { _ = eng.Close(context.Background()) })
			if err := eng.Load(context.Background(), comp); err != nil {
				b.Fatal(err)
			}
			h := server.Handler(eng, 0, server.Options{Logger: quiet, Metrics: metrics, DatabaseType: name})
			for _, mode := range []string{"direct", "tcp"} {
				for _, n := range []int{16, 256} {
					b.Run(fmt.Sprintf("handler=%s/clients=%d", mode, n), func(b *testing.B) {
						ids := createInstances(b, eng, n)
						if mode == "direct" {
							benchDirect(b, h, ids)
						} else {
							benchTCP(b, h, ids)
						}
					})
				}
			}
		})
	}
}

func createInstances(b *testing.B, eng *xc.Engine, n int) []string {
	b.Helper()
	ids := make([]string, n)
	for i := range ids {
		in, err := eng.Create(context.Background(), xc.CreateRequest{Component: "Bench", Machine: "Toggle"})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = in.ID
	}
	return ids
}

const eventBody = `{"type":"FLIP"}`

// benchDirect sends b.N events through h.ServeHTTP, spread over one goroutine per instance.
func benchDirect(b *testing.B, h http.Handler, ids []string) {
	reqs := make([]*http.Request, len(ids))
	for i, id := range ids {
		r, err := http.NewRequest(http.MethodPost, "http://127.0.0.1/api/components/Bench/instances/"+id+"/events", nil)
		if err != nil {
			b.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/json")
		r.RemoteAddr = "127.0.0.1:40000"
		reqs[i] = r
	}
	runClients(b, len(ids), func(g int) error {
		r := *reqs[g]
		r.Body = io.NopCloser(strings.NewReader(eventBody))
		w := &benchWriter{}
		h.ServeHTTP(w, &r)
		if w.status != http.StatusOK {
			return fmt.Errorf("status %d: %s", w.status, w.body.String())
		}
		return nil
	})
}

// benchTCP sends b.N events to h served by net/http on a loopback port.
func benchTCP(b *testing.B, h http.Handler, ids []string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := (&server.Transport{}).Server(h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: len(ids), MaxConnsPerHost: len(ids)}}
	b.Cleanup(client.CloseIdleConnections)
	base := "http://" + ln.Addr().String() + "/api/components/Bench/instances/"
	runClients(b, len(ids), func(g int) error {
		resp, err := client.Post(base+ids[g]+"/events", "application/json", strings.NewReader(eventBody))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// runClients runs b.N calls of send over n goroutines (send(g) for goroutine g) and reports
// events/s and the process's CPU time per event.
func runClients(b *testing.B, n int, send func(g int) error) {
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		first atomic.Value
	)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for g := range n {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := send(g); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	cpu := cpuTime() - cpu0
	if err, _ := first.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}

// benchWriter is a minimal http.ResponseWriter.
type benchWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *benchWriter) Header() http.Header {
	if w.header == nil {
		w.header = http.Header{}
	}
	return w.header
}

func (w *benchWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *benchWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(p)
}
