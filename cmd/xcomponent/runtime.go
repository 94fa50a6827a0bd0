package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/internal/httpapi"
	"github.com/xcomponent/xcomponent/store/maintenance"
	"github.com/xcomponent/xcomponent/store/storeurl"
)

func newRuntimeCmd(g *globals) *cobra.Command {
	fl := &runtimeFlags{}
	transport := &httpapi.Transport{}
	cmd := &cobra.Command{
		Use:   "runtime",
		Short: "Run one distributed runtime of a component (RabbitMQ + shared database)",
		Long: "Runs the component of COMPONENT_FILE as one runtime of the distributed mode: commands\n" +
			"arrive on RabbitMQ (BROKER_URL) and are shared with the other runtimes of the component,\n" +
			"instances live in DATABASE_URL (PostgreSQL, shared by the runtimes; unset: the embedded\n" +
			"SQLite file ./xcomponent.db, which runtimes started in the same folder share), and runtime\n" +
			"events are published for the dashboards. PORT serves the HTTP API with /healthz, /readyz\n" +
			"and /metrics. SIGTERM or SIGINT stops it gracefully: it stops consuming, finishes the\n" +
			"command in flight and announces its shutdown.\n\n" +
			"Environment (every variable has the flag of the same name; the flag wins):\n" +
			"  BROKER_URL            default " + distributed.DefaultBrokerURL + "\n" +
			"  DATABASE_URL          postgres://…; default: " + storeurl.Default + "\n" +
			"  COMPONENT_FILE        default " + distributed.DefaultComponentFile + "\n" +
			"  RUNTIME_NAME          default runtime-<unix ms>\n" +
			"  CREATE_DEMO_INSTANCE  true: create one entry-machine instance at start\n" +
			"  PORT                  HTTP API port; unset or 0: none\n" +
			"  BIND_ADDR             address of PORT (default 127.0.0.1; 0.0.0.0 in a container)\n" +
			"  HEARTBEAT_INTERVAL    default 10s\n" +
			"  SHUTDOWN_TIMEOUT      bound of the graceful stop, default 10s\n" +
			"  INBOX_RETENTION       how long applied command ids are kept, default 24h; 0: for ever\n" +
			"  TIMER_POLL            how often due timers are claimed from the shared store, default 1s;\n" +
			"                        off (or 0): never (only the arming runtime fires its timers)\n" +
			"  TIMER_TAKEOVER        how late a timer is before any runtime claims it, default 500ms\n" +
			"  TIMER_LEASE           how long a claim keeps the other runtimes off, default 10s\n" +
			"  XCOMPONENT_AUTH_TOKENS  role=token pairs for the HTTP API (operator=T1,viewer=T2;\n" +
			"                        tokens of 16 characters or more); XCOMPONENT_AUTH_TOKEN_FILE a file of them",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := runtimeConfig(cmd.Flags(), fl)
			if err != nil {
				return &usageError{err}
			}
			// Same tokens as serve: XCOMPONENT_AUTH_TOKENS and XCOMPONENT_AUTH_TOKEN_FILE.
			if cfg.Tokens, err = authTokens(nil, ""); err != nil {
				return &usageError{err}
			}
			if _, err := os.Stat(cfg.ComponentFile); err != nil {
				return &usageError{err: errComponentFile(cfg.ComponentFile, err)}
			}
			cfg.HTTP = *transport
			cfg.Logger = g.logger()
			ctx, stop := signalContext()
			defer stop()
			tp, flush, err := g.tracerProvider(ctx, "xcomponent-runtime")
			if err != nil {
				return err
			}
			defer flush()
			cfg.TracerProvider = tp
			if err := distributed.Run(ctx, cfg); err != nil {
				return &exitError{code: 1, err: err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	addHTTPFlags(f, transport)
	fl.register(f)
	return cmd
}

// runtimeFlags are the values of `xcomponent runtime`'s own flags.
type runtimeFlags struct {
	brokerURL, databaseURL, componentFile, runtimeName, bind string
	demo                                                     bool
	port                                                     int
	heartbeat, shutdown, retention                           time.Duration
	timerPoll, timerTakeover, timerLease                     time.Duration
}

// register defines the flags on f.
func (fl *runtimeFlags) register(f *pflag.FlagSet) {
	f.StringVar(&fl.brokerURL, "broker-url", distributed.DefaultBrokerURL, "RabbitMQ URL (env BROKER_URL)")
	f.StringVar(&fl.databaseURL, "database-url", "", "postgres://… shared by the runtimes, or sqlite:PATH, or memory (env DATABASE_URL; unset: "+storeurl.Default+")")
	f.StringVar(&fl.componentFile, "component-file", distributed.DefaultComponentFile, "component YAML file (env COMPONENT_FILE)")
	f.StringVar(&fl.runtimeName, "runtime-name", "", "name of this runtime in the dashboards (env RUNTIME_NAME; default runtime-<unix ms>)")
	f.BoolVar(&fl.demo, "create-demo-instance", false, "create one entry-machine instance at start (env CREATE_DEMO_INSTANCE)")
	f.IntVar(&fl.port, "port", 0, "serve the HTTP API, /healthz, /readyz and /metrics on this port; 0: none (env PORT)")
	f.StringVar(&fl.bind, "bind", distributed.DefaultBind, "address the HTTP API listens on (env BIND_ADDR)")
	f.DurationVar(&fl.heartbeat, "heartbeat-interval", distributed.DefaultHeartbeatInterval, "interval between registry heartbeats (env HEARTBEAT_INTERVAL)")
	f.DurationVar(&fl.shutdown, "shutdown-timeout", distributed.DefaultShutdownTimeout, "bound of the graceful stop (env SHUTDOWN_TIMEOUT)")
	f.DurationVar(&fl.retention, "inbox-retention", maintenance.DefaultInboxRetention, "how long the ids of applied commands are kept to refuse duplicates; 0: for ever (env INBOX_RETENTION)")
	f.DurationVar(&fl.timerPoll, "timer-poll", xc.DefaultTimerPoll, "how often due timers of the component are claimed from the shared store; 0: never (env TIMER_POLL)")
	f.DurationVar(&fl.timerTakeover, "timer-takeover", xc.DefaultTimerTakeover, "how late a timer must be before any runtime claims it (env TIMER_TAKEOVER)")
	f.DurationVar(&fl.timerLease, "timer-lease", xc.DefaultTimerLease, "how long a timer claim keeps the other runtimes off its instances (env TIMER_LEASE)")
}

// runtimeConfig is the runtime's Config: the environment (distributed.ConfigFromEnv), then
// the flags set on the command line.
func runtimeConfig(f *pflag.FlagSet, fl *runtimeFlags) (distributed.Config, error) {
	// The env is read here, not as the flags' defaults: --help would show credentials.
	cfg, err := distributed.ConfigFromEnv()
	if err != nil {
		return cfg, err
	}
	if f.Changed("broker-url") {
		cfg.BrokerURL = fl.brokerURL
	}
	if f.Changed("database-url") {
		if cfg.StoreSpec, err = storeurl.Resolve(fl.databaseURL, os.Getenv); err != nil {
			return cfg, err
		}
	}
	if f.Changed("component-file") {
		cfg.ComponentFile = fl.componentFile
	}
	if f.Changed("runtime-name") {
		cfg.RuntimeName = fl.runtimeName
	}
	if f.Changed("create-demo-instance") {
		cfg.CreateDemoInstance = fl.demo
	}
	if f.Changed("port") {
		cfg.Port = fl.port
	}
	if f.Changed("bind") {
		cfg.Bind = fl.bind
	}
	if f.Changed("heartbeat-interval") {
		cfg.HeartbeatInterval = fl.heartbeat
	}
	if f.Changed("shutdown-timeout") {
		cfg.ShutdownTimeout = fl.shutdown
	}
	if f.Changed("inbox-retention") {
		cfg.InboxRetention = maintenance.FlagRetention(fl.retention)
	}
	if f.Changed("timer-poll") {
		cfg.TimerPoll = distributed.FlagTimerPoll(fl.timerPoll)
	}
	if f.Changed("timer-takeover") {
		cfg.TimerTakeover = fl.timerTakeover
	}
	if f.Changed("timer-lease") {
		cfg.TimerLease = fl.timerLease
	}
	if cfg.TimerTakeover < 0 || cfg.TimerLease < 0 {
		return cfg, fmt.Errorf("--timer-takeover and --timer-lease must be positive durations")
	}
	return cfg, nil
}

// errComponentFile explains a missing component file, whose default is relative to the
// current directory.
func errComponentFile(path string, err error) error {
	if os.IsNotExist(err) && path == distributed.DefaultComponentFile {
		return fmt.Errorf("component file %s not found: run from the root of the xcomponent checkout, or set COMPONENT_FILE (or --component-file) to your component's YAML", path)
	}
	return fmt.Errorf("component file: %w", err)
}
