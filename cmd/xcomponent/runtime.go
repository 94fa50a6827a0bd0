package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/internal/httpapi"
	"github.com/xcomponent/xcomponent/store/maintenance"
	"github.com/xcomponent/xcomponent/store/storeurl"
)

func newRuntimeCmd(g *globals) *cobra.Command {
	var (
		brokerURL, databaseURL, componentFile, runtimeName, bind string
		demo                                                     bool
		port                                                     int
		heartbeat, shutdown, retention                           time.Duration
	)
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
			"  XCOMPONENT_AUTH_TOKENS  role=token pairs for the HTTP API (operator=T1,viewer=T2;\n" +
			"                        tokens of 16 characters or more); XCOMPONENT_AUTH_TOKEN_FILE a file of them",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The env is read here, not as the flags' defaults: --help would show credentials.
			cfg, err := distributed.ConfigFromEnv()
			if err != nil {
				return &usageError{err}
			}
			f := cmd.Flags()
			if f.Changed("broker-url") {
				cfg.BrokerURL = brokerURL
			}
			if f.Changed("database-url") {
				if cfg.StoreSpec, err = storeurl.Resolve(databaseURL, os.Getenv); err != nil {
					return &usageError{err}
				}
			}
			if f.Changed("component-file") {
				cfg.ComponentFile = componentFile
			}
			if f.Changed("runtime-name") {
				cfg.RuntimeName = runtimeName
			}
			if f.Changed("create-demo-instance") {
				cfg.CreateDemoInstance = demo
			}
			if f.Changed("port") {
				cfg.Port = port
			}
			if f.Changed("bind") {
				cfg.Bind = bind
			}
			if f.Changed("heartbeat-interval") {
				cfg.HeartbeatInterval = heartbeat
			}
			if f.Changed("shutdown-timeout") {
				cfg.ShutdownTimeout = shutdown
			}
			if f.Changed("inbox-retention") {
				cfg.InboxRetention = maintenance.FlagRetention(retention)
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
	f.StringVar(&brokerURL, "broker-url", distributed.DefaultBrokerURL, "RabbitMQ URL (env BROKER_URL)")
	f.StringVar(&databaseURL, "database-url", "", "postgres://… shared by the runtimes, or sqlite:PATH, or memory (env DATABASE_URL; unset: "+storeurl.Default+")")
	f.StringVar(&componentFile, "component-file", distributed.DefaultComponentFile, "component YAML file (env COMPONENT_FILE)")
	f.StringVar(&runtimeName, "runtime-name", "", "name of this runtime in the dashboards (env RUNTIME_NAME; default runtime-<unix ms>)")
	f.BoolVar(&demo, "create-demo-instance", false, "create one entry-machine instance at start (env CREATE_DEMO_INSTANCE)")
	f.IntVar(&port, "port", 0, "serve the HTTP API, /healthz, /readyz and /metrics on this port; 0: none (env PORT)")
	f.StringVar(&bind, "bind", distributed.DefaultBind, "address the HTTP API listens on (env BIND_ADDR)")
	f.DurationVar(&heartbeat, "heartbeat-interval", distributed.DefaultHeartbeatInterval, "interval between registry heartbeats (env HEARTBEAT_INTERVAL)")
	f.DurationVar(&shutdown, "shutdown-timeout", distributed.DefaultShutdownTimeout, "bound of the graceful stop (env SHUTDOWN_TIMEOUT)")
	f.DurationVar(&retention, "inbox-retention", maintenance.DefaultInboxRetention, "how long the ids of applied commands are kept to refuse duplicates; 0: for ever (env INBOX_RETENTION)")
	return cmd
}

// errComponentFile explains a missing component file, whose default is relative to the
// current directory.
func errComponentFile(path string, err error) error {
	if os.IsNotExist(err) && path == distributed.DefaultComponentFile {
		return fmt.Errorf("component file %s not found: run from the root of the xcomponent checkout, or set COMPONENT_FILE (or --component-file) to your component's YAML", path)
	}
	return fmt.Errorf("component file: %w", err)
}
