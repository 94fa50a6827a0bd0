package distributed_test

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/distributed/distributedtest"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/wire"
)

// TestLoadThroughBroker is the load tool of docs/benchmarks.md ("end-to-end distributed"): it
// runs 1, 2 and 3 runtimes of one component on one PostgreSQL database and one vhost, publishes
// TICK commands straight to the partitions from concurrent publishers (each instance owned by
// one publisher, its commands in order), and reports the commands applied per second (from the
// runtimes' replies) and the latency from publish to the state_change event. Skipped unless
// XCOMPONENT_LOAD=1; XCOMPONENT_LOAD_RUNTIMES (e.g. "1,2,3"), XCOMPONENT_LOAD_DURATION (10s),
// XCOMPONENT_LOAD_PUBLISHERS (64) and XCOMPONENT_LOAD_INSTANCES (1024) tune it.
//
//	XCOMPONENT_LOAD=1 go test -run TestLoadThroughBroker -v -timeout 20m ./distributed/
func TestLoadThroughBroker(t *testing.T) {
	if os.Getenv("XCOMPONENT_LOAD") != "1" {
		t.Skip("XCOMPONENT_LOAD=1 runs the load measurement")
	}
	runtimes := []int{1, 2, 3}
	if v := os.Getenv("XCOMPONENT_LOAD_RUNTIMES"); v != "" {
		runtimes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				t.Fatal(err)
			}
			runtimes = append(runtimes, n)
		}
	}
	duration := 10 * time.Second
	if v := os.Getenv("XCOMPONENT_LOAD_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		duration = d
	}
	publishers, instances := envInt(t, "XCOMPONENT_LOAD_PUBLISHERS", 64), envInt(t, "XCOMPONENT_LOAD_INSTANCES", 1024)
	for _, n := range runtimes {
		t.Run(fmt.Sprintf("runtimes=%d", n), func(t *testing.T) {
			res := runLoad(t, n, duration, publishers, instances)
			t.Logf("RESULT runtimes=%d publishers=%d instances=%d duration=%s: %d commands applied, %.0f commands/s; publish→state_change p50 %s p99 %s; publish→reply p50 %s p99 %s",
				n, publishers, instances, duration, res.applied, res.rate, res.p50, res.p99, res.rp50, res.rp99)
		})
	}
}

func envInt(t *testing.T, k string, def int) int {
	if v := os.Getenv(k); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		return n
	}
	return def
}

type loadResult struct {
	applied              int
	rate                 float64
	p50, p99, rp50, rp99 time.Duration
}

func runLoad(t *testing.T, runtimes int, duration time.Duration, publishers, instances int) loadResult {
	url := vhost(t)
	dsn := pgtest.NewDatabase(t)
	for i := range runtimes {
		cfg := counterConfig(url, dsn, fmt.Sprintf("runtime-%d", i), t)
		cfg.Partitions = 8
		cfg.Prefetch = 0 // the default
		cfg.HeartbeatInterval = time.Second
		distributedtest.Start(t, cfg)
	}
	client := newClient(t, url)
	var (
		mu         sync.Mutex
		published  = map[string]time.Time{}
		stateLat   []time.Duration
		replyLat   []time.Duration
		applied    atomic.Int64
		measuring  atomic.Bool
		ctx, stop  = context.WithCancel(context.Background())
		created    atomic.Int64
		createDone = make(chan struct{})
	)
	defer stop()
	sub := func(ch string, h bus.Handler) {
		sctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		s, err := client.Subscribe(sctx, ch, h)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
	}
	sub(wire.ChannelCommandReply, func(_ context.Context, m bus.Message) error {
		rep, err := wire.Decode[wire.CommandReply](m.Body)
		if err != nil {
			return nil
		}
		if rep.Command == wire.ChannelCreateInstance {
			if created.Add(1) == int64(instances) {
				close(createDone)
			}
			return nil
		}
		if rep.Status != wire.ReplyApplied {
			t.Errorf("reply %+v", rep)
			return nil
		}
		now := time.Now()
		mu.Lock()
		if at, ok := published[rep.CommandID]; ok && measuring.Load() {
			replyLat = append(replyLat, now.Sub(at))
			applied.Add(1)
		}
		mu.Unlock()
		return nil
	})
	sub(wire.ChannelStateChange, func(_ context.Context, m bus.Message) error {
		now := time.Now()
		id := m.Headers["causationId"]
		mu.Lock()
		if at, ok := published[id]; ok && measuring.Load() {
			stateLat = append(stateLat, now.Sub(at))
		}
		mu.Unlock()
		return nil
	})

	ids := make([]string, instances)
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < instances; i += publishers {
				ids[i] = uuid.NewString()
				body := mustJSON(t, wire.CreateInstance{ComponentName: counters, InstanceID: ids[i], Context: map[string]any{}, Timestamp: wire.Now()})
				if err := bus.PublishCommand(ctx, client, counters, ids[i], wire.ChannelCreateInstance, body, bus.Meta{MessageID: uuid.NewString()}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-createDone:
	case <-time.After(2 * timeout):
		t.Fatalf("%d of %d instances created", created.Load(), instances)
	}

	measuring.Store(true)
	start := time.Now()
	deadline := start.Add(duration)
	var sent atomic.Int64
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline); n++ {
				for i := p; i < instances && time.Now().Before(deadline); i += publishers {
					id := uuid.NewString()
					body := mustJSON(t, wire.TriggerEvent{ComponentName: counters, InstanceID: ids[i], Event: wire.Event{Type: "TICK", Payload: map[string]any{"n": n}}})
					mu.Lock()
					published[id] = time.Now()
					mu.Unlock()
					if err := bus.PublishCommand(ctx, client, counters, ids[i], wire.ChannelTriggerEvent, body, bus.Meta{MessageID: id}); err != nil {
						t.Error(err)
						return
					}
					sent.Add(1)
				}
			}
		}()
	}
	if f := os.Getenv("XCOMPONENT_LOAD_GOROUTINES"); f != "" {
		time.Sleep(duration / 2)
		out, err := os.Create(f)
		if err == nil {
			_ = pprof.Lookup("goroutine").WriteTo(out, 1)
			_ = out.Close()
		}
	}
	wg.Wait()
	// Wait for the backlog to drain: the rate counts what was applied from start to the last
	// reply.
	var last time.Time
	for end := time.Now().Add(2 * timeout); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if applied.Load() >= sent.Load() {
			last = time.Now()
			break
		}
	}
	if last.IsZero() {
		t.Fatalf("%d of %d commands applied", applied.Load(), sent.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(stateLat)
	slices.Sort(replyLat)
	pct := func(d []time.Duration, p float64) time.Duration {
		if len(d) == 0 {
			return 0
		}
		return d[min(len(d)-1, int(float64(len(d))*p))].Round(100 * time.Microsecond)
	}
	return loadResult{applied: int(applied.Load()), rate: float64(applied.Load()) / last.Sub(start).Seconds(),
		p50: pct(stateLat, 0.5), p99: pct(stateLat, 0.99), rp50: pct(replyLat, 0.5), rp99: pct(replyLat, 0.99)}
}
