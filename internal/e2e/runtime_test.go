package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/xcomponent/xcomponent/internal/faults"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/bus/rabbitmq"
	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
	"github.com/xcomponent/xcomponent/wire"
)

// approvalFile is the example component, the default COMPONENT_FILE of `xcomponent runtime`.
var approvalFile = filepath.Join("..", "..", "examples", "approval-workflow.yaml")

// runtimeArgs are the arguments of one `xcomponent runtime` process on the store spec (a
// PostgreSQL URL goes in DATABASE_URL, as in a deployment; a sqlite: spec, which DATABASE_URL
// does not take, in --database-url) and the environment it adds.
func runtimeArgs(t testing.TB, brokerURL, store, componentFile, name string) (args, env []string) {
	env = []string{"BROKER_URL=" + brokerURL, "COMPONENT_FILE=" + componentFile, "RUNTIME_NAME=" + name,
		"PORT=" + strconv.Itoa(faults.FreePort(t)), "CREATE_DEMO_INSTANCE=false", "HEARTBEAT_INTERVAL=1s"}
	args = []string{"runtime", "--log-format", "json"}
	if strings.HasPrefix(store, "sqlite:") {
		return append(args, "--database-url", store), append(env, "DATABASE_URL=")
	}
	return args, append(env, "DATABASE_URL="+store)
}

// startRuntimeProc starts `xcomponent runtime` (see runtimeArgs) and waits for its /readyz.
func startRuntimeProc(t testing.TB, name, brokerURL, store, componentFile string) *server {
	t.Helper()
	args, env := runtimeArgs(t, brokerURL, store, componentFile, name)
	return startProcess(t, name, binary, args, env)
}

// TestRuntimeGracefulStop: `xcomponent runtime` processes on one database (PostgreSQL, and
// the embedded SQLite file two runtimes in one folder share) consume create commands; one of
// them gets SIGTERM mid-stream: it exits 0 after announcing its shutdown, the command it had
// in flight is finished or left to the other runtime, and in the end every command was
// applied exactly once.
func TestRuntimeGracefulStop(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: -short")
	}
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testRuntimeGracefulStop(t, name)
		})
	}
}

func testRuntimeGracefulStop(t *testing.T, backendName string) {
	b := newBackend(t, backendName)
	_, url := rmqtest.NewVhost(t)
	client, err := rabbitmq.New(rabbitmq.Options{URL: url, Name: "e2e client"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	var mu sync.Mutex
	shutdowns := map[string]int{}
	sub, err := client.Subscribe(context.Background(), wire.ChannelShutdown, func(_ context.Context, m bus.Message) error {
		var h wire.Heartbeat
		if err := json.Unmarshal(m.Body, &h); err != nil {
			return err
		}
		mu.Lock()
		shutdowns[h.RuntimeName]++
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })

	a := startRuntimeProc(t, "rt-a", url, b.spec, approvalFile)

	const n = 600
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range n {
		body, _ := json.Marshal(wire.CreateInstance{ComponentName: "ApprovalWorkflow", MachineName: "PurchaseRequest",
			Context: map[string]any{"requester": "e2e", "item": fmt.Sprint("item ", i), "amount": i + 1}})
		if err := client.Publish(ctx, wire.ChannelCreateInstance, body, bus.Meta{MessageID: uuid.NewString()}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	db := b.open(t)
	count := func() int {
		var c int
		if err := db.QueryRow("SELECT count(*) FROM fsm_snapshots").Scan(&c); err != nil {
			t.Fatalf("count: %v", err)
		}
		return c
	}
	if err := faults.Poll(60*time.Second, func() (bool, error) { return count() >= n/10, nil }); err != nil {
		t.Fatalf("rt-a applied %d of %d creates: %v\n%s", count(), n, err, a.Tail(40))
	}
	// A second runtime of the component joins, on the same store; then rt-a is stopped while
	// both consume.
	bb := startRuntimeProc(t, "rt-b", url, b.spec, approvalFile)
	a.Stop() // SIGTERM; fails unless it exits 0
	atStop := count()
	if len(a.Logged("stopped")) != 1 {
		t.Errorf("rt-a did not log its graceful stop:\n%s", a.Tail(20))
	}
	if err := faults.Poll(30*time.Second, func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return shutdowns["rt-a"] == 1, nil
	}); err != nil {
		t.Errorf("rt-a's shutdown was not announced on %s: %v", wire.ChannelShutdown, err)
	}
	if err := faults.Poll(90*time.Second, func() (bool, error) { return count() >= n, nil }); err != nil {
		t.Fatalf("%d of %d creates applied: %v\n%s", count(), n, err, bb.Tail(40))
	}
	bb.Stop()
	if got := count(); got != n {
		t.Errorf("%d instances for %d create commands", got, n)
	}
	var created int
	if err := db.QueryRow("SELECT count(*) FROM fsm_events WHERE from_state IS NULL OR from_state = ''").Scan(&created); err != nil {
		t.Fatal(err)
	}
	if created != n {
		t.Errorf("%d creation events for %d create commands", created, n)
	}
	t.Logf("%s: rt-a applied about %d of %d creates before SIGTERM, rt-b the rest", backendName, atStop, n)
}
