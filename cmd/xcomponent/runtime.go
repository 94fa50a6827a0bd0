package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/store/storeurl"
)

func newRuntimeCmd(g *globals) *cobra.Command {
	var (
		brokerURL, databaseURL, componentFile, runtimeName, bind string
		demo                                                     bool
		port                                                     int
		heartbeat                                                time.Duration
	)
	cmd := &cobra.Command{
		Use:   "runtime",
		Short: "Run one distributed runtime of a component (RabbitMQ + shared database)",
		Long: "Runs the component of COMPONENT_FILE as one runtime of the distributed mode: commands\n" +
			"arrive on RabbitMQ (BROKER_URL) and are shared with the other runtimes of the component,\n" +
			"instances live in DATABASE_URL (PostgreSQL; unset: embedded SQLite ./xcomponent.db), and\n" +
			"runtime events are published for the dashboards. Every env var has a matching flag; the\n" +
			"flag wins.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			// The env is read here, not as the flags' defaults: --help would show credentials.
			if !f.Changed("broker-url") {
				brokerURL = envOr("BROKER_URL", brokerURL)
			}
			spec, err := storeurl.Resolve(databaseURL, os.Getenv)
			if err != nil {
				return &usageError{err}
			}
			if !f.Changed("component-file") {
				componentFile = envOr("COMPONENT_FILE", componentFile)
			}
			if componentFile == "" {
				return &usageError{fmt.Errorf("no component: set COMPONENT_FILE or --component-file")}
			}
			if !f.Changed("runtime-name") {
				runtimeName = envOr("RUNTIME_NAME", runtimeName)
			}
			if !f.Changed("create-demo-instance") {
				if v := os.Getenv("CREATE_DEMO_INSTANCE"); v != "" {
					if demo, err = strconv.ParseBool(v); err != nil {
						return &usageError{fmt.Errorf("CREATE_DEMO_INSTANCE: %q is not a boolean", v)}
					}
				}
			}
			if !f.Changed("port") {
				if p := os.Getenv("PORT"); p != "" {
					if port, err = strconv.Atoi(p); err != nil {
						return &usageError{fmt.Errorf("PORT: %q is not a number", p)}
					}
				}
			}
			if !f.Changed("heartbeat-interval") {
				if v := os.Getenv("HEARTBEAT_INTERVAL"); v != "" {
					if heartbeat, err = time.ParseDuration(v); err != nil {
						return &usageError{fmt.Errorf("HEARTBEAT_INTERVAL: %q is not a duration", v)}
					}
				}
			}
			if !f.Changed("bind") {
				bind = envOr("BIND_ADDR", bind)
			}
			ctx, stop := signalContext()
			defer stop()
			err = distributed.Run(ctx, distributed.Config{
				ComponentFile: componentFile, BrokerURL: brokerURL, StoreSpec: spec, RuntimeName: runtimeName,
				CreateDemoInstance: demo, Port: port, Bind: bind, HeartbeatInterval: heartbeat, Logger: g.logger(),
			})
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&brokerURL, "broker-url", "amqp://guest:guest@localhost:5672", "RabbitMQ URL (env BROKER_URL)")
	f.StringVar(&databaseURL, "database-url", "", "postgres://… shared by the runtimes (env DATABASE_URL; unset: sqlite:./xcomponent.db)")
	f.StringVar(&componentFile, "component-file", "", "component YAML file (env COMPONENT_FILE)")
	f.StringVar(&runtimeName, "runtime-name", "", "name of this runtime (env RUNTIME_NAME; default runtime-<timestamp>)")
	f.BoolVar(&demo, "create-demo-instance", false, "create one entry-machine instance at start (env CREATE_DEMO_INSTANCE)")
	f.IntVar(&port, "port", 0, "serve the HTTP API on this port; 0: none (env PORT)")
	f.StringVar(&bind, "bind", "127.0.0.1", "address the HTTP API listens on (env BIND_ADDR)")
	f.DurationVar(&heartbeat, "heartbeat-interval", distributed.DefaultHeartbeatInterval, "interval between registry heartbeats (env HEARTBEAT_INTERVAL)")
	return cmd
}
