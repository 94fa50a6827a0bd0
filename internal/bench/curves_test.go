package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/internal/serve"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/postgres"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/store/sqlite"
)

// Cost curves (docs/benchmarks.md "Cost curves"): what a transition, a routed broadcast, an
// idle instance and a restore cost as the number of live instances grows. The sizes are
// XCOMPONENT_CURVE_SIZES (comma-separated; default 1000,10000,100000 — add 1000000 for the
// 1M row, which needs a few GiB of memory and minutes of setup).

const curveComponent = `
name: Curve
entryMachine: Account
entryMachineMode: multiple
stateMachines:
  - name: Account
    initialState: Open
    states: [{name: Open, type: entry}, {name: Frozen}]
    transitions:
      - {from: Open, to: Frozen, event: FREEZE}
      - {from: Frozen, to: Open, event: FREEZE}
      - from: Open
        to: Open
        event: CREDIT
        matchingRules: [{eventProperty: accountId, instanceProperty: accountId}]
`

func curveSizes(b *testing.B) []int {
	spec := os.Getenv("XCOMPONENT_CURVE_SIZES")
	if spec == "" {
		spec = "1000,10000,100000"
	}
	var out []int
	for f := range strings.SplitSeq(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("XCOMPONENT_CURVE_SIZES %q: %v", spec, err)
		}
		out = append(out, n)
	}
	return out
}

// curveStores are the durable stores of BenchmarkCurveRestore: XCOMPONENT_CURVE_STORES
// (default sqlite,postgres).
func curveStores() []string {
	spec := os.Getenv("XCOMPONENT_CURVE_STORES")
	if spec == "" {
		return []string{"sqlite", "postgres"}
	}
	return strings.Split(spec, ",")
}

func curveDef(b *testing.B) *component.Component {
	b.Helper()
	comp, err := component.Parse([]byte(curveComponent), "curve.yaml")
	if err != nil {
		b.Fatal(err)
	}
	return comp
}

// accountData is the 5-field context of every instance (as BenchmarkIdleInstanceMemory's).
func accountData(i int) map[string]any {
	return map[string]any{"accountId": "acc-" + strconv.Itoa(i), "owner": "Jane Doe", "balance": 1250.5, "currency": "EUR", "open": true}
}

// createMany creates n Account instances with par concurrent callers and returns their ids.
func createMany(b *testing.B, eng *xc.Engine, n, par int) []string {
	b.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		first atomic.Value
	)
	for range par {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || first.Load() != nil {
					return
				}
				in, err := eng.Create(ctx, xc.CreateRequest{Component: "Curve", Machine: "Account", Data: accountData(i)})
				if err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
				ids[i] = in.ID
			}
		})
	}
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		b.Fatal(err)
	}
	return ids
}

// nullStore accepts every commit and keeps nothing: the engine's own memory, as with a durable
// store whose data lives on disk (the engine keeps its idle instances compact, as it does
// with SQLite or PostgreSQL).
type nullStore struct{ store.Memory }

func (*nullStore) KeepsRecords() bool { return false }

func (*nullStore) Commit(context.Context, *store.Commit) error { return nil }
func (*nullStore) LoadLive(context.Context, string) ([]store.Instance, error) {
	return nil, nil
}
func (*nullStore) PendingOutbox(context.Context, string, int) ([]store.Message, error) {
	return nil, nil
}

// rssBytes returns the resident set size of this process (VmRSS), or 0 when unknown.
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kib << 10
		}
	}
	return 0
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkCurveInMemory: with N live instances in one engine, a transition on a random one
// ("in-memory transition"), a broadcast routed by an equality rule (accountId) to the one
// matching instance, processed ("routed broadcast"), and the heap per live instance ("memory per
// instance"): engine alone (a durable store keeps the data on disk) and engine + the in-memory
// store (its history: the creation event, then one event per transition). The instances are
// created once per size; the timed parts are sub-benchmarks.
//
//	XCOMPONENT_CURVE_SIZES=1000,10000,100000,1000000 go test ./internal/bench -run '^$' -bench CurveInMemory -benchtime 200000x
func BenchmarkCurveInMemory(b *testing.B) {
	for _, st := range []string{"engine", "engine+memory-store"} {
		for _, n := range curveSizes(b) {
			b.Run(fmt.Sprintf("store=%s/live=%d", st, n), func(b *testing.B) {
				var s store.Store = &nullStore{}
				if st != "engine" {
					s = store.NewMemory()
				}
				before := heapInUse()
				eng := xc.New(xc.Options{Store: s, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				defer eng.Close(context.Background())
				if err := eng.Load(context.Background(), curveDef(b)); err != nil {
					b.Fatal(err)
				}
				ids := createMany(b, eng, n, runtime.GOMAXPROCS(0))
				heapAfter := heapInUse()
				perInstance := float64(heapAfter-before) / float64(n)
				rss := rssBytes()
				rng := rand.New(rand.NewPCG(1, 2))
				order := make([]string, 1<<16)
				for i := range order {
					order[i] = ids[rng.IntN(n)]
				}
				payloads := make([]map[string]any, 1024)
				for i := range payloads {
					payloads[i] = map[string]any{"accountId": "acc-" + strconv.Itoa(rng.IntN(n))}
				}
				ctx := context.Background()
				// The broadcast first, while every instance is Open (CREDIT keeps it Open).
				if st == "engine" {
					b.Run("broadcast", func(b *testing.B) {
						b.ReportAllocs()
						cpu0 := cpuTime()
						for i := 0; i < b.N; i++ {
							res, err := eng.Broadcast(ctx, xc.BroadcastRequest{Component: "Curve", Machine: "Account",
								Event: xc.Event{Type: "CREDIT", Payload: payloads[i%len(payloads)]}})
							if err != nil || res.Processed != 1 {
								b.Fatalf("broadcast: %+v %v", res, err)
							}
						}
						b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
					})
				}
				b.Run("transition", func(b *testing.B) {
					ev := xc.Event{Type: "FREEZE"}
					b.ReportAllocs()
					cpu0 := cpuTime()
					for i := 0; i < b.N; i++ {
						if _, err := eng.Send(ctx, order[i&(len(order)-1)], ev); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
					b.ReportMetric(perInstance, "heap-B/instance")
					b.ReportMetric(float64(heapAfter)/(1<<20), "heap-MiB")
					b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
				})
				runtime.KeepAlive(ids)
			})
		}
	}
}

// restoreComponent is curveComponent with a timeout out of Frozen: the restore benchmark
// leaves one instance in four Frozen with that timeout pending, so that the restore also
// arms timers.
const restoreComponent = curveComponent + `      - {from: Frozen, to: Open, event: THAW, type: timeout, timeoutMs: 86400000}
`

// restoreTimerTransition is the index of the THAW timeout in restoreComponent's machine.
const restoreTimerTransition = 3

// restoreRecord is the i-th live instance the restore benchmark writes: accountData(i); one
// in four Frozen with its THAW timeout pending (due a day after now).
func restoreRecord(i int, now int64) *store.Instance {
	in := &store.Instance{
		ID: uuid.Must(uuid.NewV7()).String(), Component: "Curve", Machine: "Account", State: "Open",
		Data: accountData(i), Status: store.StatusActive, CreatedAt: now + int64(i), UpdatedAt: now + int64(i),
	}
	if i%4 == 3 {
		in.State, in.Version = "Frozen", 1
		in.Timers = []store.Timer{{Event: "THAW", TargetState: "Open", DueAt: now + 86_400_000, TotalMs: 86_400_000,
			Kind: store.TimerTimeout, Transition: restoreTimerTransition, ArmedAt: now}}
	}
	return in
}

// seedLive writes n live instances (restoreRecord) straight into st, in commits of 5,000
// instance rows (the stores' multi-row inserts), from 2 goroutines: a million rows take
// seconds rather than the minutes of a million creations through the engine. No events are
// written: a restore reads none.
func seedLive(b *testing.B, st store.Store, n int) {
	b.Helper()
	const batch = 5000
	ctx := context.Background()
	now := time.Now().UnixMilli()
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		first atomic.Value
	)
	for range 2 {
		wg.Go(func() {
			for first.Load() == nil {
				lo := int(next.Add(batch) - batch)
				if lo >= n {
					return
				}
				c := &store.Commit{}
				for i := lo; i < min(lo+batch, n); i++ {
					c.Instances = append(c.Instances, store.InstanceWrite{Instance: restoreRecord(i, now), ExpectVersion: -1})
				}
				if err := st.Commit(ctx, c); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := first.Load(); err != nil {
		b.Fatalf("seed %d live instances: %v", n, err)
	}
}

// openRestoreStore opens a fresh store for the restore benchmark; its PostgreSQL database is
// named xc_restore_… (dropped at the end). With XCOMPONENT_RESTORE_KEEP=PREFIX the
// PostgreSQL database is PREFIX_N instead (N the number of instances), created when missing
// and kept: seeded is then true when it already holds the N live instances, so that repeated
// runs (profiles, A/B) restore the same rows without writing them again. Drop it yourself.
func openRestoreStore(b *testing.B, name string, n int) (st store.Store, dsn string, seeded bool) {
	b.Helper()
	if name != "postgres" {
		return openStore(b, name), "", false
	}
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if prefix := os.Getenv("XCOMPONENT_RESTORE_KEEP"); prefix != "" {
		db := fmt.Sprintf("%s_%d", prefix, n)
		conn, err := pgx.Connect(ctx, pgtest.AdminDSN())
		if err != nil {
			b.Fatal(err)
		}
		var exists bool
		err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists)
		if err == nil && !exists {
			_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize())
		}
		conn.Close(ctx)
		if err != nil {
			b.Fatal(err)
		}
		dsn = pgtest.WithDatabase(pgtest.AdminDSN(), db)
	} else {
		dsn = pgtest.NewNamedDatabase(b, "xc_restore_")
	}
	pg, err := postgres.Open(ctx, dsn, postgres.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = pg.Close() })
	if os.Getenv("XCOMPONENT_RESTORE_KEEP") != "" {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		var live int
		err = conn.QueryRow(ctx, "SELECT count(*) FROM fsm_snapshots WHERE component_name = 'Curve' AND status = 'active'").Scan(&live)
		conn.Close(ctx)
		switch {
		case err != nil:
			b.Fatal(err)
		case live == n:
			return pg, dsn, true
		case live != 0:
			b.Fatalf("%s holds %d live instances, want 0 or %d", dsn, live, n)
		}
	}
	return pg, dsn, false
}

// profileRestore starts a CPU profile of one restore of n instances when
// XCOMPONENT_RESTORE_CPUPROFILE names a file (n is added to its name; -cpuprofile would also
// profile the writing of the rows and the forced collections that measure the heap), and
// returns what stops it.
func profileRestore(b *testing.B, n int) func() {
	name := os.Getenv("XCOMPONENT_RESTORE_CPUPROFILE")
	if name == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s.%d", name, n))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// analyze runs what autovacuum runs after many rows were written, and at once: ANALYZE of
// fsm_snapshots, whose statistics the restore's estimate of its size reads
// (store.LiveEstimator).
func analyze(b *testing.B, dsn string) {
	b.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "ANALYZE fsm_snapshots"); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCurveRestore: N live instances (5-field context, routed accountId, one in four
// with a pending timeout) written straight into a fresh SQLite file or PostgreSQL database
// (multi-row inserts, not timed), then a new engine restores them: xc.New + Load, which reads
// every live instance and rebuilds its record, state sets, routing index and timers
// ("restore"). s/op is one restore (wall); cpu-s/op the CPU time of this process during it
// (all its goroutines: the figure to compare on a loaded machine); pg-cpu-s/op that of the
// PostgreSQL backends serving it (read from /proc: a server on this machine); minflt/op this
// process's minor page faults; heap-B/instance what the restored engine holds per instance.
//
//	XCOMPONENT_CURVE_SIZES=1000,10000,100000,1000000 go test ./internal/bench -run '^$' -bench CurveRestore -benchtime 3x -timeout 60m
//
// (XCOMPONENT_CURVE_STORES=postgres for one store; XCOMPONENT_RESTORE_KEEP and
// XCOMPONENT_RESTORE_CPUPROFILE: openRestoreStore, profileRestore.)
func BenchmarkCurveRestore(b *testing.B) {
	comp, err := component.Parse([]byte(restoreComponent), "curve-restore.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range curveStores() {
		for _, n := range curveSizes(b) {
			b.Run(fmt.Sprintf("store=%s/live=%d", name, n), func(b *testing.B) {
				st, dsn, seeded := openRestoreStore(b, name, n)
				quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
				if !seeded {
					t0 := time.Now()
					seedLive(b, st, n)
					b.Logf("%d instances written in %v", n, time.Since(t0).Round(time.Millisecond))
					if dsn != "" {
						analyze(b, dsn)
					}
				}
				// A sub-benchmark, so that the instances are written once however many
				// restores are timed.
				b.Run("restore", func(b *testing.B) {
					var heap float64
					var cpu, pgCPU time.Duration
					var faults int64
					// PostgreSQL's own CPU for the restore's query, from /proc (the
					// server on this machine).
					var pgConn *pgx.Conn
					if dsn != "" {
						var err error
						if pgConn, err = pgx.Connect(context.Background(), dsn); err != nil {
							b.Fatal(err)
						}
						defer pgConn.Close(context.Background())
					}
					pgCPUNow := func() map[int]time.Duration {
						if pgConn == nil {
							return nil
						}
						return pgBackendCPU(context.Background(), pgConn, pgConn.Config().Database)
					}
					for i := 0; i < b.N; i++ {
						b.StopTimer()
						before := heapInUse()
						pg0 := pgCPUNow()
						stopProfile := profileRestore(b, n)
						flt0 := minorFaults()
						cpu0 := cpuTime()
						b.StartTimer()
						r := xc.New(xc.Options{Store: st, Logger: quiet})
						if err := r.Load(context.Background(), comp); err != nil {
							b.Fatal(err)
						}
						b.StopTimer()
						stopProfile()
						cpu += cpuTime() - cpu0
						faults += minorFaults() - flt0
						pgCPU += pgCPUSince(pg0, pgCPUNow())
						if got := r.InstanceCount(); got != n {
							b.Fatalf("restored %d instances, want %d", got, n)
						}
						heap = float64(heapInUse()-before) / float64(n)
						if err := r.Close(context.Background()); err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
					}
					b.StopTimer()
					b.ReportMetric(heap, "heap-B/instance")
					b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
					b.ReportMetric(float64(faults)/float64(b.N), "minflt/op")
					if pgConn != nil {
						b.ReportMetric(pgCPU.Seconds()/float64(b.N), "pg-cpu-s/op")
					}
					b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "instances/s")
				})
			})
		}
	}
}

// BenchmarkHistoryAPI: GET /api/instances/:id/history and GET /api/history/instances/:id/events
// of one instance with XCOMPONENT_HISTORY_EVENTS events (default 100,000), served by
// `serve` (in this process) on SQLite or PostgreSQL. The events are written through the engine
// first (not timed; SQLite synchronous=NORMAL and PostgreSQL synchronous_commit=off while writing,
// which changes nothing to what is read).
//
//	go test ./internal/bench -run '^$' -bench HistoryAPI -benchtime 5x -timeout 30m
func BenchmarkHistoryAPI(b *testing.B) {
	events := 100_000
	if v := os.Getenv("XCOMPONENT_HISTORY_EVENTS"); v != "" {
		var err error
		if events, err = strconv.Atoi(v); err != nil || events < 1 {
			b.Fatalf("XCOMPONENT_HISTORY_EVENTS %q", v)
		}
	}
	file := filepath.Join(b.TempDir(), "toggle.yaml")
	if err := os.WriteFile(file, []byte(toggle), 0o600); err != nil {
		b.Fatal(err)
	}
	comp, err := component.Parse([]byte(toggle), "toggle.yaml")
	if err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run("store="+name, func(b *testing.B) {
			var (
				st   store.Store
				spec string
			)
			switch name {
			case "sqlite":
				path := filepath.Join(b.TempDir(), "history.db")
				spec = "sqlite:" + path
				st, err = sqlite.Open(ctx, path, sqlite.WithLogger(quiet), sqlite.WithSynchronous("NORMAL"))
			case "postgres":
				spec = pgtest.NewDatabase(b)
				conn, cerr := pgx.Connect(ctx, spec)
				if cerr != nil {
					b.Fatal(cerr)
				}
				_, err = conn.Exec(ctx, "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit = off', current_database()); END $$")
				conn.Close(ctx)
				if err != nil {
					b.Fatal(err)
				}
				st, err = postgres.Open(ctx, spec, postgres.WithLogger(quiet))
			}
			if err != nil {
				b.Fatal(err)
			}
			eng := xc.New(xc.Options{Store: st, Logger: quiet})
			if err := eng.Load(ctx, comp); err != nil {
				b.Fatal(err)
			}
			in, err := eng.Create(ctx, xc.CreateRequest{Component: "Bench"})
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			for range events {
				if _, err := eng.Send(ctx, in.ID, xc.Event{Type: "FLIP"}); err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("%d events written in %v", events, time.Since(t0).Round(time.Millisecond))
			if err := eng.Close(ctx); err != nil {
				b.Fatal(err)
			}
			if err := st.Close(); err != nil {
				b.Fatal(err)
			}
			base := serveNode(b, file, spec)
			// The pages the dashboard asks for (the first page oldest first, the latest 100
			// events) and the streamed export of the whole history, which replaced the
			// whole-history answers of these endpoints.
			for _, path := range []string{
				"/api/instances/" + in.ID + "/history",
				"/api/instances/" + in.ID + "/history?order=desc&limit=100",
				"/api/history/instances/" + in.ID + "/events",
				"/api/instances/" + in.ID + "/history/export",
				"/api/instances/" + in.ID + "/history/export?format=csv",
			} {
				name := strings.NewReplacer(in.ID, "ID", "/", "_", "?", "_", "&", "_", "=", "-").Replace(path)
				b.Run(name, func(b *testing.B) {
					var size int64
					var heap uint64
					stop := sampleHeap(&heap)
					cpu0 := cpuTime()
					for i := 0; i < b.N; i++ {
						resp, err := http.Get(base + path)
						if err != nil {
							b.Fatal(err)
						}
						size, err = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if err != nil || resp.StatusCode != http.StatusOK {
							b.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
						}
					}
					b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
					stop()
					b.ReportMetric(float64(size)/(1<<10), "KiB/answer")
					b.ReportMetric(float64(heap)/(1<<20), "MiB-peak-heap")
				})
			}
		})
	}
}

// sampleHeap records the largest heap in use (this process: client and server) every 10 ms
// until the returned function is called.
func sampleHeap(peak *uint64) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			*peak = max(*peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

// serveNode runs `serve` of file on the store spec in this process and returns its base URL.
func serveNode(b *testing.B, file, spec string) string {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve.Serve(ctx, serve.Config{Files: []string{file}, Store: spec, Bind: "127.0.0.1", Port: 0,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready:  func(a net.Addr) { ready <- "http://" + a.String() }})
	}()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("serve: %v", err)
		}
	})
	select {
	case u := <-ready:
		return u
	case err := <-done:
		b.Fatalf("serve: %v", err)
	case <-time.After(120 * time.Second):
		b.Fatal("serve: not ready after 120s")
	}
	return ""
}
