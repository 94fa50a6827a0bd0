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
	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
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
// XCOMPONENT_LOAD_PUBLISHERS (64) and XCOMPONENT_LOAD_INSTANCES (1024) tune it;
// XCOMPONENT_LOAD_REPLIES=0 publishes the TICKs with xc-reply: none (counted from their
// state_change events); XCOMPONENT_LOAD_FRAMES=1 counts the AMQP frames per command through
// a proxy (which costs the test process CPU: leave it off to compare CPU per command);
// XCOMPONENT_LOAD_BATCH=0 publishes each command as its own message instead of through a
// bus.Batcher (the commands of one partition waiting while one is in flight in one message).
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

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
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
	var frames *frameCounter
	if os.Getenv("XCOMPONENT_LOAD_FRAMES") == "1" {
		frames = newFrameCounter(t, rmqtest.BrokerAddr)
		url = frames.url(url)
	}
	dsn := pgtest.NewDatabase(t)
	// Replies on (the default): each TICK asks for a reply, counted as applied. Off: each TICK
	// has header xc-reply: none and is counted from its state_change.
	replies := os.Getenv("XCOMPONENT_LOAD_REPLIES") != "0"
	for i := range runtimes {
		cfg := counterConfig(url, dsn, fmt.Sprintf("runtime-%d", i), t)
		cfg.Partitions = 8
		cfg.Prefetch = 0 // the default
		cfg.HeartbeatInterval = time.Second
		distributedtest.Start(t, cfg)
	}
	client := newClient(t, url)
	publish := func(ctx context.Context, comp, id, kind string, body []byte, meta bus.Meta) error {
		return bus.PublishCommand(ctx, client, comp, id, kind, body, meta)
	}
	var batcher *bus.Batcher
	if os.Getenv("XCOMPONENT_LOAD_BATCH") != "0" {
		batcher = bus.NewBatcher(client, 0, 0)
		batcher.Partitions = func(string) int { return 8 } // as the runtimes announce
		publish = batcher.PublishCommand
	}
	var (
		mu         sync.Mutex
		published  = map[string]time.Time{}
		answered   = map[string]bool{} // commands counted applied
		duplicates atomic.Int64
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
		switch rep.Status {
		case wire.ReplyApplied:
		case wire.ReplyDuplicate:
			// A command redelivered (a batch cut by a partition hand-over) that the inbox
			// found committed: applied once, answered again. Counted once below, whichever
			// answer comes first.
			duplicates.Add(1)
		default:
			t.Errorf("reply %+v", rep)
			return nil
		}
		now := time.Now()
		mu.Lock()
		if at, ok := published[rep.CommandID]; ok && !answered[rep.CommandID] && measuring.Load() {
			answered[rep.CommandID] = true
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
			if !replies {
				applied.Add(1) // one state_change per TICK applied
			}
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
				if err := publish(ctx, counters, ids[i], wire.ChannelCreateInstance, body, bus.Meta{MessageID: uuid.NewString()}); err != nil {
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

	var framesBefore map[string]int64
	if frames != nil {
		framesBefore = frames.snapshot()
	}
	cpuBefore := readCPU()
	var pubBefore, cmdBefore int64
	if batcher != nil {
		pubBefore, cmdBefore = batcher.Stats()
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
					meta := bus.Meta{MessageID: id}
					if !replies {
						meta.Headers = map[string]string{bus.HeaderReply: bus.ReplyNone}
					}
					if err := publish(ctx, counters, ids[i], wire.ChannelTriggerEvent, body, meta); err != nil {
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
	cpuAfter := readCPU()
	n := max(applied.Load(), 1)
	per := func(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d.Microseconds())/float64(n)) }
	if d := duplicates.Load(); d > 0 {
		t.Logf("%d duplicate replies: commands redelivered after a partition hand-over, found committed by the inbox (not applied again)", d)
	}
	t.Logf("CPU per command: test process (runtimes + load generator) %s, broker (beam.smp) %s, postgres (all) %s; load average %s",
		per(cpuAfter.self-cpuBefore.self), per(cpuSince(cpuAfter.broker, cpuBefore.broker)), per(cpuSince(cpuAfter.db, cpuBefore.db)), loadAvg())
	if batcher != nil {
		p, c := batcher.Stats()
		t.Logf("load generator: %d commands in %d broker messages (%.1f per message)", c-cmdBefore, p-pubBefore, float64(c-cmdBefore)/float64(max(p-pubBefore, 1)))
	}
	if frames != nil {
		t.Logf("AMQP frames per command (c>s: clients to broker, s>c: broker to clients):%s", perCommand(framesBefore, frames.snapshot(), int(n)))
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
