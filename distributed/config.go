package distributed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/store/maintenance"
	"github.com/xcomponent/xcomponent/store/storeurl"
)

// Defaults of the environment, the same for `xcomponent runtime` and for a Go program that
// calls ConfigFromEnv (as xcomponent-ai's runtimes: BROKER_URL on the local broker, the
// example's approval workflow).
const (
	DefaultBrokerURL     = "amqp://guest:guest@localhost:5672"
	DefaultComponentFile = "./examples/approval-workflow.yaml"
	DefaultBind          = "127.0.0.1"
)

// Environment variables read by ConfigFromEnv. Each has a flag of the same name in lower case
// with dashes (BROKER_URL: --broker-url) in `xcomponent runtime`.
const (
	EnvBrokerURL          = "BROKER_URL"
	EnvDatabaseURL        = "DATABASE_URL"
	EnvComponentFile      = "COMPONENT_FILE"
	EnvRuntimeName        = "RUNTIME_NAME"
	EnvCreateDemoInstance = "CREATE_DEMO_INSTANCE"
	EnvPort               = "PORT"
	EnvBind               = "BIND_ADDR"
	EnvHeartbeatInterval  = "HEARTBEAT_INTERVAL"
	EnvShutdownTimeout    = "SHUTDOWN_TIMEOUT"
	EnvInboxRetention     = maintenance.EnvInboxRetention
	EnvTimerPoll          = "TIMER_POLL"
	EnvTimerTakeover      = "TIMER_TAKEOVER"
	EnvTimerLease         = "TIMER_LEASE"
)

// Hooks maps the hook method names used in the YAML (onEntry, onExit, triggeredMethod) to
// their Go handlers; see Config.Hooks.
type Hooks map[string]xc.HookFunc

// ConfigFromEnv returns the Config described by the process environment, the way
// `xcomponent runtime` reads it, so that a Go program embedding the runtime is configured like
// the binary:
//
//	BROKER_URL            RabbitMQ URL (default amqp://guest:guest@localhost:5672)
//	DATABASE_URL          postgres://… shared by the runtimes of a component; unset: the
//	                      embedded SQLite file ./xcomponent.db (see the README: one folder,
//	                      shared file; two machines, each runtime owns its instances)
//	COMPONENT_FILE        the component's YAML (default ./examples/approval-workflow.yaml)
//	RUNTIME_NAME          name in the dashboards (default runtime-<unix ms>)
//	CREATE_DEMO_INSTANCE  true: create one entry-machine instance at start
//	PORT                  > 0: serve the HTTP API with /healthz, /readyz and /metrics
//	BIND_ADDR             address of that port (default 127.0.0.1; 0.0.0.0 in containers)
//	HEARTBEAT_INTERVAL    e.g. 10s
//	SHUTDOWN_TIMEOUT      bound of the graceful stop, e.g. 10s
//	INBOX_RETENTION       how long applied command ids are kept (default 24h; 0: for ever)
//	TIMER_POLL            how often due timers are claimed from the shared store (default 1s;
//	                      "off": never, only the arming runtime fires its timers)
//	TIMER_TAKEOVER        how late a timer must be before any runtime claims it (default 500ms)
//	TIMER_LEASE           how long a claim keeps the other runtimes off (default 10s)
//
// A value that does not parse is an error naming the variable.
func ConfigFromEnv() (Config, error) { return ConfigFromLookup(os.Getenv) }

// ConfigFromLookup is ConfigFromEnv over getenv (tests, or a configuration source of the
// caller's).
func ConfigFromLookup(getenv func(string) string) (Config, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	cfg := Config{
		BrokerURL:     DefaultBrokerURL,
		ComponentFile: DefaultComponentFile,
		Bind:          DefaultBind,
		RuntimeName:   get(EnvRuntimeName),
	}
	if v := get(EnvBrokerURL); v != "" {
		cfg.BrokerURL = v
	}
	if v := get(EnvComponentFile); v != "" {
		cfg.ComponentFile = v
	}
	if v := get(EnvBind); v != "" {
		cfg.Bind = v
	}
	spec, err := storeurl.Resolve("", get)
	if err != nil {
		return cfg, err
	}
	cfg.StoreSpec = spec
	if v := get(EnvCreateDemoInstance); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return cfg, fmt.Errorf("%s: %q is not a boolean (true or false)", EnvCreateDemoInstance, v)
		}
		cfg.CreateDemoInstance = b
	}
	if v := get(EnvPort); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 0 || p > 65535 {
			return cfg, fmt.Errorf("%s: %q is not a port number (0 for none)", EnvPort, v)
		}
		cfg.Port = p
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{EnvHeartbeatInterval, &cfg.HeartbeatInterval}, {EnvShutdownTimeout, &cfg.ShutdownTimeout}} {
		if v := get(d.name); v != "" {
			x, err := time.ParseDuration(v)
			if err != nil || x <= 0 {
				return cfg, fmt.Errorf("%s: %q is not a positive duration (e.g. 10s)", d.name, v)
			}
			*d.dst = x
		}
	}
	if v := get(EnvTimerPoll); v != "" {
		if cfg.TimerPoll, err = parseTimerPoll(v); err != nil {
			return cfg, fmt.Errorf("%s: %w", EnvTimerPoll, err)
		}
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{EnvTimerTakeover, &cfg.TimerTakeover}, {EnvTimerLease, &cfg.TimerLease}} {
		if v := get(d.name); v != "" {
			x, err := time.ParseDuration(v)
			if err != nil || x <= 0 {
				return cfg, fmt.Errorf("%s: %q is not a positive duration (e.g. 500ms)", d.name, v)
			}
			*d.dst = x
		}
	}
	if v := get(EnvInboxRetention); v != "" {
		if cfg.InboxRetention, err = maintenance.ParseRetention(v); err != nil {
			return cfg, fmt.Errorf("%s: %w", EnvInboxRetention, err)
		}
	}
	return cfg, nil
}

// parseTimerPoll reads TIMER_POLL: a positive duration, or "off" (or 0) for no claiming, which
// Config.TimerPoll spells as a negative duration (0 there is the default).
func parseTimerPoll(v string) (time.Duration, error) {
	if strings.EqualFold(v, "off") || v == "0" {
		return -1, nil
	}
	x, err := time.ParseDuration(v)
	if err != nil || x <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration (e.g. 1s) or off", v)
	}
	return x, nil
}

// FlagTimerPoll maps the --timer-poll flag's value to Config.TimerPoll: 0 on the command line
// turns claiming off (Config's 0 is the default).
func FlagTimerPoll(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// defaultRuntimeName is the name of a runtime started without one, as xcomponent-ai names
// its runtimes.
func defaultRuntimeName(now time.Time) string {
	return "runtime-" + strconv.FormatInt(now.UnixMilli(), 10)
}

// readiness is the runtime's part of /readyz: it consumes its commands and is not stopping.
func (r *runtime) readiness(context.Context) error {
	if !r.isReady() {
		return errors.New("runtime not ready: starting (waiting for the broker) or stopping")
	}
	return nil
}

// instrument adds the runtime's own metrics to reg, for orchestrators and alerts:
// runtime_commands_total{channel, outcome} (Outcome* values; counted through Config.OnCommand,
// which still gets called), runtime_ready and runtime_broker_connected (1 or 0).
func (r *runtime) instrument(reg prometheus.Registerer, brokerConnected func() bool) {
	commands := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "runtime_commands_total", Help: "Commands of the broker handled by this runtime, by channel and outcome.",
	}, []string{"channel", "outcome"})
	user := r.cfg.OnCommand
	r.cfg.OnCommand = func(channel, commandID, outcome string) {
		commands.WithLabelValues(channel, outcome).Inc()
		if user != nil {
			user(channel, commandID, outcome)
		}
	}
	gauge := func(name, help string, f func() bool) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			if f() {
				return 1
			}
			return 0
		})
	}
	reg.MustRegister(commands,
		gauge("runtime_ready", "1 while the runtime consumes its commands (see /readyz).", r.isReady),
		gauge("runtime_broker_connected", "1 while the broker connection is up.", brokerConnected))
}
