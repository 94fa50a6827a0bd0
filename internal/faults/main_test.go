package faults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/bus/rabbitmq"
	"github.com/xcomponent/xcomponent/distributed/distributedtest"
	"github.com/xcomponent/xcomponent/internal/faults"
	"github.com/xcomponent/xcomponent/wire"
)

// binary is the xcomponent executable built by TestMain.
var binary string

// TestMain builds the binary once (with -race under -race) for the scenarios' processes.
func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "xcomponent-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if binary, err = faults.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

const (
	comp          = "Counters"
	componentFile = "testdata/counters.yaml"
	waitFor       = 60 * time.Second
)

// startRuntime starts an `xcomponent runtime` process of testdata/counters.yaml.
func startRuntime(t testing.TB, name, brokerURL, dsn string) *faults.Proc {
	t.Helper()
	env := []string{"BROKER_URL=" + brokerURL, "DATABASE_URL=" + dsn, "COMPONENT_FILE=" + componentFile,
		"RUNTIME_NAME=" + name, "PORT=" + strconv.Itoa(faults.FreePort(t)), "CREATE_DEMO_INSTANCE=false",
		"HEARTBEAT_INTERVAL=1s", "XCOMPONENT_AUTH_TOKENS="}
	return faults.Start(t, name, binary, []string{"runtime", "--log-format", "json"}, env)
}

func newBus(t testing.TB, url string) *rabbitmq.Bus {
	t.Helper()
	b, err := rabbitmq.New(rabbitmq.Options{URL: url, Name: "faults client", Logger: distributedtest.Logger(t),
		MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// replies turns the command replies into the ledger's outcomes: a command published with
// message id mid is recorded under its ledger key.
type replies struct {
	led *faults.Ledger

	mu       sync.Mutex
	keys     map[string]string // message id → ledger key
	statuses map[string]map[string]int
	first    map[string]time.Time // message id → first reply
}

func watchReplies(t testing.TB, b bus.Bus, led *faults.Ledger) *replies {
	t.Helper()
	r := &replies{led: led, keys: map[string]string{}, statuses: map[string]map[string]int{}, first: map[string]time.Time{}}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	sub, err := b.Subscribe(ctx, wire.ChannelCommandReply, func(_ context.Context, m bus.Message) error {
		rep, err := wire.Decode[wire.CommandReply](m.Body)
		if err != nil {
			t.Errorf("reply: %v", err)
			return nil
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		key, ok := r.keys[rep.CommandID]
		if !ok {
			return nil
		}
		if r.statuses[rep.CommandID] == nil {
			r.statuses[rep.CommandID] = map[string]int{}
			r.first[rep.CommandID] = time.Now()
		}
		r.statuses[rep.CommandID][rep.Status]++
		switch rep.Status {
		case wire.ReplyApplied:
			var v int64
			inst := ""
			if rep.Instance != nil {
				inst, v = rep.Instance.ID, rep.Instance.Version
				if rep.Command == wire.ChannelCreateInstance {
					v = 0
				}
			}
			led.Ack(key, inst, v)
		case wire.ReplyDuplicate:
			led.Ack(key, "", 0)
		case wire.ReplyRefused, wire.ReplyDeadLettered:
			led.Refused(key)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return r
}

// expect registers the ledger key of a message id before it is published.
func (r *replies) expect(mid, key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys[mid] = key
}

// answered says whether every message id has a reply.
func (r *replies) answered(mids ...string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range mids {
		if len(r.statuses[id]) == 0 {
			return false
		}
	}
	return true
}

// count is the number of replies with that status over the message ids.
func (r *replies) count(status string, mids ...string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, id := range mids {
		n += r.statuses[id][status]
	}
	return n
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func publish(t testing.TB, b bus.Bus, channel string, body []byte, mid string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := b.Publish(ctx, channel, body, bus.Meta{MessageID: mid}); err != nil {
		t.Fatalf("publish on %s: %v", channel, err)
	}
}

// publishCommand publishes a command straight to the partition of instance id.
func publishCommand(t testing.TB, b bus.Bus, kind, id string, body []byte, mid string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := bus.PublishCommand(ctx, b, comp, id, kind, body, bus.Meta{MessageID: mid}); err != nil {
		t.Fatalf("publish %s to the partition of %s: %v", kind, id, err)
	}
}

// create publishes creations of n Counter instances (context key = "<prefix>-<i>") straight to
// their partitions and returns their ids; the ledger key of each is its id (the creation
// row's id is the command id).
func create(t testing.TB, b bus.Bus, r *replies, led *faults.Ledger, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
		mid := ids[i]
		led.Sent("", mid)
		r.expect(mid, mid)
		body := mustJSON(t, wire.CreateInstance{ComponentName: comp, MachineName: "Counter", InstanceID: ids[i],
			Context: map[string]any{"key": fmt.Sprintf("%s-%d", prefix, i)}, Timestamp: wire.Now()})
		publishCommand(t, b, wire.ChannelCreateInstance, ids[i], body, mid)
	}
	return ids
}

// tick is a TICK command body for instance id with its ledger token.
func tick(t testing.TB, id, tok string, n int) []byte {
	return mustJSON(t, wire.TriggerEvent{ComponentName: comp, InstanceID: id,
		Event: wire.Event{Type: "TICK", Payload: map[string]any{"tok": tok, "n": n}}})
}

// keyOf is the ledger key of an event row: its token when it starts with prefix, or for a
// creation its id when the creation is one of ids.
func keyOf(prefix string, ids map[string]bool) func(faults.Event) string {
	return func(e faults.Event) string {
		if tok := e.Token(); tok != "" {
			if strings.HasPrefix(tok, prefix) {
				return tok
			}
			return ""
		}
		if e.Seq == 0 && ids[e.Instance] {
			return e.ID
		}
		return ""
	}
}

func setOf(lists ...[]string) map[string]bool {
	m := map[string]bool{}
	for _, l := range lists {
		for _, s := range l {
			m[s] = true
		}
	}
	return m
}
