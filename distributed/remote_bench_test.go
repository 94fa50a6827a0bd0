package distributed_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/bus/rabbitmq"
	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/wire"
)

// BenchmarkCrossComponent measures messages between processes on RabbitMQ and PostgreSQL,
// with `runtimes` runtimes of each component of the Shop/Billing pair:
//   - creates/s: SUBMIT commands for b.N orders published at once, until the b.N payments
//     exist (command → transition → outbox → relay → create_instance → ingress → partition →
//     payment committed);
//   - events/s: COMPLETE for the b.N payments, until the b.N orders are paid (command →
//     transition → relay → cross_component_event → routed against the database → order
//     committed).
//
// Run with a fixed count: go test -run '^$' -bench CrossComponent -benchtime 1000x ./distributed/
func BenchmarkCrossComponent(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("runtimes=%d", n), func(b *testing.B) { benchCrossComponent(b, n) })
	}
}

func benchCrossComponent(b *testing.B, runtimes int) {
	_, url := rmqtest.NewVhost(b)
	dsn := pgtest.NewDatabase(b)
	client, err := rabbitmq.New(rabbitmq.Options{URL: url, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = client.Close() })
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close(context.Background()) })
	for i := range runtimes {
		for _, file := range []string{"testdata/shop.yaml", "testdata/billing.yaml"} {
			startBenchRuntime(b, distributed.Config{ComponentFile: file, BrokerURL: url, StoreSpec: dsn,
				RuntimeName: fmt.Sprintf("%s-%d", file, i), HeartbeatInterval: time.Second,
				MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		}
	}
	count := func(sql string) int {
		var n int
		if err := db.QueryRow(context.Background(), sql).Scan(&n); err != nil {
			b.Fatal(err)
		}
		return n
	}
	wait := func(what string, cond func() bool) {
		deadline := time.Now().Add(5 * time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				b.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	ctx := context.Background()
	pub := func(channel string, v any) {
		body, err := wire.Encode(v)
		if err != nil {
			b.Fatal(err)
		}
		if err := client.Publish(ctx, channel, body, bus.Meta{MessageID: uuid.NewString()}); err != nil {
			b.Error(err)
		}
	}
	n := b.N
	for i := range n {
		pub(wire.ChannelCreateInstance, wire.CreateInstance{ComponentName: "Shop",
			Context: map[string]any{"orderId": fmt.Sprintf("b-%06d", i), "amount": i}, Timestamp: wire.Now()})
	}
	wait("orders", func() bool { return count("SELECT count(*) FROM fsm_snapshots WHERE machine_name = 'Order'") == n })
	ids := func(machine string) []string {
		rows, err := db.Query(ctx, "SELECT instance_id::text FROM fsm_snapshots WHERE machine_name = $1", machine)
		if err != nil {
			b.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			b.Fatal(err)
		}
		return out
	}
	orders := ids("Order")

	// Commands are published by 32 concurrent publishers: one publisher waiting for each
	// confirm would measure its own round trips (≈300/s), not the runtimes.
	pubAll := func(component string, ids []string, event string) {
		var wg sync.WaitGroup
		next := make(chan string)
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for id := range next {
					pub(wire.ChannelTriggerEvent, wire.TriggerEvent{ComponentName: component, InstanceID: id, Event: wire.Event{Type: event}})
				}
			}()
		}
		for _, id := range ids {
			next <- id
		}
		close(next)
		wg.Wait()
	}
	b.ResetTimer()
	start := time.Now()
	pubAll("Shop", orders, "SUBMIT")
	wait("payments", func() bool { return count("SELECT count(*) FROM fsm_snapshots WHERE machine_name = 'Payment'") == n })
	creates := time.Since(start)
	b.StopTimer()
	payments := ids("Payment")
	b.StartTimer()
	start = time.Now()
	pubAll("Billing", payments, "COMPLETE")
	wait("orders paid", func() bool {
		return count("SELECT count(*) FROM fsm_snapshots WHERE machine_name = 'Order' AND current_state = 'Paid'") == n
	})
	events := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(n)/creates.Seconds(), "creates/s")
	b.ReportMetric(float64(n)/events.Seconds(), "events/s")
}

// startBenchRuntime runs a runtime for the benchmark's duration.
func startBenchRuntime(b *testing.B, cfg distributed.Config) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	cfg.Ready = func(distributed.Info) { close(ready) }
	done := make(chan error, 1)
	go func() { done <- distributed.Run(ctx, cfg) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-ready:
	case err := <-done:
		b.Fatalf("runtime %s: %v", cfg.RuntimeName, err)
	case <-time.After(timeout):
		b.Fatalf("runtime %s not ready", cfg.RuntimeName)
	}
}
