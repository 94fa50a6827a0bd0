package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/xcomponent/xcomponent/internal/busbackend"
	"github.com/xcomponent/xcomponent/internal/httpapi"
	"github.com/xcomponent/xcomponent/internal/serve"
)

// authTokens merges XCOMPONENT_AUTH_TOKENS, --auth-token flags and the token file
// (--auth-token-file or XCOMPONENT_AUTH_TOKEN_FILE).
func authTokens(flags []string, tokenFile string) (httpapi.Tokens, error) {
	toks := httpapi.Tokens{}
	for _, src := range append([]string{os.Getenv("XCOMPONENT_AUTH_TOKENS")}, flags...) {
		if src == "" {
			continue
		}
		t, err := httpapi.ParseTokens(src)
		if err != nil {
			return nil, fmt.Errorf("auth tokens: %w", err)
		}
		toks = toks.Merge(t)
	}
	if tokenFile = envOr("XCOMPONENT_AUTH_TOKEN_FILE", tokenFile); tokenFile != "" {
		t, err := httpapi.LoadTokensFile(tokenFile)
		if err != nil {
			return nil, err
		}
		toks = toks.Merge(t)
	}
	if err := toks.CheckStrength(); err != nil {
		return nil, fmt.Errorf("auth tokens: %w", err)
	}
	return toks, nil
}

func newDashboardCmd(g *globals) *cobra.Command {
	var (
		brokerURL, databaseURL, bind, tokenFile, pprofAddr string
		port                                               int
		tokens, cors                                       []string
		maxBody                                            int64
		lostAfter, commandTimeout                          time.Duration
	)
	transport := &httpapi.Transport{}
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Run the standalone dashboard of the distributed mode (RabbitMQ, optional PostgreSQL)",
		Long: "Serves the web dashboard and the REST API of `serve` for the runtimes reachable on\n" +
			"RabbitMQ (BROKER_URL): runtimes panel from their announces and heartbeats, the union of\n" +
			"their instances kept live from their events, and create / send commands answered by a\n" +
			"runtime (201/200, 409 refused, 503 no runtime up, 504 no answer in time). With\n" +
			"DATABASE_URL (the PostgreSQL database the runtimes share) search, history, audit trail and\n" +
			"completed instances are read from it. Every env var has a matching flag; the flag wins.\n" +
			"Auth: XCOMPONENT_AUTH_TOKENS=\"operator=T1,viewer=T2\", --auth-token or --auth-token-file.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			// The env is read here, not as the flags' defaults: --help would show credentials.
			if !f.Changed("broker-url") {
				brokerURL = envOr("BROKER_URL", brokerURL)
			}
			if !f.Changed("database-url") {
				databaseURL = envOr("DATABASE_URL", databaseURL)
			}
			if !f.Changed("port") {
				if p := os.Getenv("PORT"); p != "" {
					var err error
					if port, err = strconv.Atoi(p); err != nil {
						return &usageError{fmt.Errorf("PORT: %q is not a number", p)}
					}
				}
			}
			if port < 0 || port > 65535 {
				return &usageError{fmt.Errorf("port %d out of range", port)}
			}
			if !f.Changed("bind") {
				bind = envOr("BIND_ADDR", bind)
			}
			for name, d := range map[string]*time.Duration{"RUNTIME_LOST_AFTER": &lostAfter, "COMMAND_TIMEOUT": &commandTimeout} {
				flag := map[string]string{"RUNTIME_LOST_AFTER": "lost-after", "COMMAND_TIMEOUT": "command-timeout"}[name]
				if v := os.Getenv(name); v != "" && !f.Changed(flag) {
					parsed, err := time.ParseDuration(v)
					if err != nil {
						return &usageError{fmt.Errorf("%s: %q is not a duration", name, v)}
					}
					*d = parsed
				}
			}
			toks, err := authTokens(tokens, tokenFile)
			if err != nil {
				return &usageError{err}
			}
			ctx, stop := signalContext()
			defer stop()
			tp, flush, err := g.tracerProvider(ctx, "xcomponent-dashboard")
			if err != nil {
				return err
			}
			defer flush()
			if pprofAddr != "" {
				if err := startPprof(ctx, pprofAddr, g.logger()); err != nil {
					return &exitError{code: 1, err: err}
				}
			}
			err = serve.Dashboard(ctx, serve.DashboardConfig{
				BrokerURL: brokerURL, DatabaseURL: databaseURL, Bind: bind, Port: port, Tokens: toks,
				MaxBodyBytes: maxBody, CORSOrigins: cors, LostAfter: lostAfter, CommandTimeout: commandTimeout,
				Logger: g.logger(), HTTP: *transport, TracerProvider: tp,
			})
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	addHTTPFlags(f, transport)
	f.StringVar(&brokerURL, "broker-url", "amqp://guest:guest@localhost:5672", "RabbitMQ URL (env BROKER_URL)")
	f.StringVar(&databaseURL, "database-url", "", "postgres://… shared by the runtimes: history and audit trail (env DATABASE_URL; optional)")
	f.IntVar(&port, "port", 3000, "HTTP port (env PORT)")
	f.StringVar(&bind, "bind", "127.0.0.1", "address to listen on; 0.0.0.0 for every interface (env BIND_ADDR)")
	f.StringArrayVar(&tokens, "auth-token", nil, "role=token (viewer or operator); repeatable")
	f.StringVar(&tokenFile, "auth-token-file", "", "file of role=token lines (env XCOMPONENT_AUTH_TOKEN_FILE)")
	f.StringArrayVar(&cors, "cors-origin", nil, "allowed CORS origin; repeatable (default: CORS off)")
	f.Int64Var(&maxBody, "max-body-bytes", 1<<20, "largest request body accepted")
	f.DurationVar(&lostAfter, "lost-after", busbackend.DefaultLostAfter, "a runtime silent that long is shown as lost (env RUNTIME_LOST_AFTER)")
	f.DurationVar(&commandTimeout, "command-timeout", busbackend.DefaultCommandTimeout, "how long create/send wait for a runtime's answer before 504 (env COMMAND_TIMEOUT)")
	f.StringVar(&pprofAddr, "pprof", "", "serve Go runtime profiles (net/http/pprof: CPU, heap, allocs, mutex, block) on this address, e.g. 127.0.0.1:6060; no auth, keep it on loopback (default: off)")
	return cmd
}
