package distributed_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/bus/rabbitmq"
	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/distributed/distributedtest"
	"github.com/xcomponent/xcomponent/wire"
)

func TestConfigFromLookup(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	cfg, err := distributed.ConfigFromLookup(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BrokerURL != "amqp://guest:guest@localhost:5672" || cfg.StoreSpec != "sqlite:./xcomponent.db" ||
		cfg.ComponentFile != "./examples/approval-workflow.yaml" || cfg.RuntimeName != "" || cfg.CreateDemoInstance ||
		cfg.Port != 0 || cfg.Bind != "127.0.0.1" || cfg.InboxRetention != 0 {
		t.Errorf("defaults: %+v", cfg)
	}
	if cfg, err := distributed.ConfigFromLookup(env(map[string]string{"TIMER_POLL": "off"})); err != nil || cfg.TimerPoll >= 0 {
		t.Errorf("TIMER_POLL=off: %v, %v; want a negative poll (no claiming)", cfg.TimerPoll, err)
	}
	if cfg, err := distributed.ConfigFromLookup(env(map[string]string{"INBOX_RETENTION": "0"})); err != nil || cfg.InboxRetention >= 0 {
		t.Errorf("INBOX_RETENTION=0: %v, %v; want a negative retention (never pruned)", cfg.InboxRetention, err)
	}

	cfg, err = distributed.ConfigFromLookup(env(map[string]string{
		"BROKER_URL": "amqp://u:p@rabbit:5672/v", "DATABASE_URL": "postgres://u:p@db/x", "COMPONENT_FILE": "c.yaml",
		"RUNTIME_NAME": "r-1", "CREATE_DEMO_INSTANCE": "true", "PORT": "8081", "BIND_ADDR": "0.0.0.0",
		"HEARTBEAT_INTERVAL": "2s", "SHUTDOWN_TIMEOUT": "30s", "INBOX_RETENTION": "72h",
		"TIMER_POLL": "200ms", "TIMER_TAKEOVER": "1s", "TIMER_LEASE": "30s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BrokerURL != "amqp://u:p@rabbit:5672/v" || cfg.StoreSpec != "postgres://u:p@db/x" || cfg.ComponentFile != "c.yaml" ||
		cfg.RuntimeName != "r-1" || !cfg.CreateDemoInstance || cfg.Port != 8081 || cfg.Bind != "0.0.0.0" ||
		cfg.HeartbeatInterval != 2*time.Second || cfg.ShutdownTimeout != 30*time.Second || cfg.InboxRetention != 72*time.Hour ||
		cfg.TimerPoll != 200*time.Millisecond || cfg.TimerTakeover != time.Second || cfg.TimerLease != 30*time.Second {
		t.Errorf("from env: %+v", cfg)
	}

	for k, v := range map[string]string{
		"CREATE_DEMO_INSTANCE": "yes please", "PORT": "http", "HEARTBEAT_INTERVAL": "10", "SHUTDOWN_TIMEOUT": "-1s",
		"DATABASE_URL": "mysql://db/x", "INBOX_RETENTION": "-1h",
		"TIMER_POLL": "fast", "TIMER_TAKEOVER": "0", "TIMER_LEASE": "-1s",
	} {
		_, err := distributed.ConfigFromLookup(env(map[string]string{k: v}))
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%q: err %v, want one naming %s", k, v, err, k)
		}
	}
}

// freePort returns a loopback port nobody listens on (right now).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The probes serve before the broker is reachable: /healthz 200, /readyz 503; a runtime
// stopped while it waits for its broker returns without error.
func TestProbesWhileTheBrokerIsUnreachable(t *testing.T) {
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- distributed.Run(ctx, distributed.Config{
			ComponentFile: filepath.Join("testdata", "approval.yaml"), StoreSpec: "memory",
			BrokerURL: fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", freePort(t)), RuntimeName: "probe",
			Port: port, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Logger: logger(t),
		})
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	eventually(t, "/healthz 200", func() bool { code, _ := get(t, base+"/healthz"); return code == 200 })
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "broker") {
		t.Errorf("/readyz without a broker: %d %s", code, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("stopped while waiting for the broker: %v", err)
		}
	case <-time.After(timeout):
		t.Fatal("runtime did not stop")
	}
}

// A runtime with Go hooks (Config.Hooks): the hook runs on a command from the broker, its
// SendToSelf is applied, and the probes and metrics answer.
func TestRuntimeWithGoHooks(t *testing.T) {
	url := vhost(t)
	client, err := rabbitmq.New(rabbitmq.Options{URL: url, Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	rec := &recorder{msgs: map[string][]bus.Message{}}
	for _, ch := range []string{wire.ChannelStateChange, wire.ChannelShutdown} {
		sub, err := client.Subscribe(context.Background(), ch, rec.handler)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
	}

	var checked, notified atomic.Int32
	rt := distributedtest.Start(t, distributed.Config{
		ComponentFile: filepath.Join("testdata", "hooks.yaml"), BrokerURL: url,
		StoreSpec: "sqlite:" + filepath.Join(t.TempDir(), "x.db"), RuntimeName: "hooks-1",
		Port: freePort(t), Logger: logger(t),
		Hooks: distributed.Hooks{
			"check": func(_ context.Context, h *xc.Hook) error {
				checked.Add(1)
				h.Data["checkedBy"] = "go"
				h.Send.SendToSelf(xc.Event{Type: "PASS"})
				return nil
			},
			"notifyPassed": func(context.Context, *xc.Hook) error { notified.Add(1); return nil },
		},
	})
	base := "http://" + rt.Info.Addr.String()
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz of a started runtime: %d %s", code, body)
	}

	id := uuid.NewString()
	publish(t, client, wire.ChannelCreateInstance, wire.CreateInstance{ComponentName: "Checks", MachineName: "Check",
		Context: map[string]any{"n": 1}}, id)
	var instance string
	eventually(t, "the instance created", func() bool {
		code, body := get(t, base+"/api/instances")
		var list struct {
			Instances []struct {
				ID string `json:"id"`
			} `json:"instances"`
		}
		if code == 200 && json.Unmarshal([]byte(body), &list) == nil && len(list.Instances) == 1 {
			instance = list.Instances[0].ID
		}
		return instance != ""
	})
	publish(t, client, wire.ChannelTriggerEvent, wire.TriggerEvent{ComponentName: "Checks", InstanceID: instance,
		Event: wire.Event{Type: "START"}}, uuid.NewString())
	eventually(t, "Passed, by the hook's own event", func() bool {
		_, body := get(t, base+"/api/instances/"+instance)
		return strings.Contains(body, `"currentState":"Passed"`)
	})
	if _, body := get(t, base+"/api/instances/"+instance); !strings.Contains(body, `"checkedBy":"go"`) {
		t.Errorf("the hook's data change was not kept: %s", body)
	}
	if checked.Load() != 1 || notified.Load() != 1 {
		t.Errorf("hooks ran %d (check) and %d (notifyPassed) times, want 1 and 1", checked.Load(), notified.Load())
	}
	code, body := get(t, base+"/metrics")
	for _, want := range []string{`transitions_total{component="Checks"`, "runtime_ready 1", "runtime_broker_connected 1",
		`runtime_commands_total{channel="fsm:commands:create_instance",outcome="applied"} 1`,
		`runtime_commands_total{channel="fsm:commands:trigger_event",outcome="applied"} 1`} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics: %d, no %s:\n%.3000s", code, want, body)
		}
	}

	rt.Stop(t)
	eventually(t, "the shutdown announced", func() bool { return len(rec.get(wire.ChannelShutdown)) == 1 })
}

func TestRunRefusesANilHook(t *testing.T) {
	err := distributed.Run(context.Background(), distributed.Config{ComponentFile: "x.yaml", BrokerURL: "amqp://x",
		Hooks: distributed.Hooks{"check": nil}})
	if err == nil || !strings.Contains(err.Error(), `"check"`) {
		t.Errorf("err = %v", err)
	}
}
