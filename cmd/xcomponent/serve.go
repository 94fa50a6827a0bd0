package main

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/xcomponent/xcomponent/internal/httpapi"
	"github.com/xcomponent/xcomponent/internal/serve"
	"github.com/xcomponent/xcomponent/internal/webhook"
	"github.com/xcomponent/xcomponent/store/maintenance"
	"github.com/xcomponent/xcomponent/store/storeurl"
)

// envOr returns the environment variable when set, else def.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func newServeCmd(g *globals) *cobra.Command {
	var (
		storeSpec, bind, tokenFile, name string
		hooksURL, pprofAddr              string
		port                             int
		tokens, cors, hooksHeaders       []string
		maxBody                          int64
		retention                        time.Duration
	)
	transport := &httpapi.Transport{}
	cmd := &cobra.Command{
		Use:   "serve FILE.yaml [FILE.yaml...]",
		Short: "Run components in one process: runtime, REST API and live stream",
		Long: "Loads every component file (cross-component transitions between them work in-process),\n" +
			"keeps instances in a durable store (SQLite ./xcomponent.db by default; DATABASE_URL or\n" +
			"--store postgres://… for PostgreSQL; --store memory for none) and serves the API on --port.\n" +
			"Auth: XCOMPONENT_AUTH_TOKENS=\"operator=T1,viewer=T2\", --auth-token or --auth-token-file.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			spec, err := storeurl.Resolve(storeSpec, os.Getenv)
			if err != nil {
				return &usageError{err}
			}
			if !cmd.Flags().Changed("port") {
				if p := os.Getenv("PORT"); p != "" {
					if port, err = strconv.Atoi(p); err != nil {
						return &usageError{fmt.Errorf("PORT: %q is not a number", p)}
					}
				}
			}
			inboxRetention := maintenance.FlagRetention(retention)
			if v := os.Getenv(maintenance.EnvInboxRetention); v != "" && !cmd.Flags().Changed("inbox-retention") {
				if inboxRetention, err = maintenance.ParseRetention(v); err != nil {
					return &usageError{fmt.Errorf("%s: %w", maintenance.EnvInboxRetention, err)}
				}
			}
			toks, err := authTokens(tokens, tokenFile)
			if err != nil {
				return &usageError{err}
			}
			var hdrs http.Header
			for _, line := range hooksHeaders {
				k, v, err := webhook.ParseHeader(line)
				if err != nil {
					return &usageError{err}
				}
				if hdrs == nil {
					hdrs = http.Header{}
				}
				hdrs.Add(k, v)
			}
			// The env is read here, not as the flag's default: --help would show its credentials.
			if !cmd.Flags().Changed("hooks-url") {
				hooksURL = os.Getenv("XCOMPONENT_HOOKS_URL")
			}
			if hooksURL != "" {
				if err := webhook.CheckURL(hooksURL); err != nil {
					return &usageError{err}
				}
			}
			ctx, stop := signalContext()
			defer stop()
			tp, flush, err := g.tracerProvider(ctx, "xcomponent-serve")
			if err != nil {
				return err
			}
			defer flush()
			if pprofAddr != "" {
				if err := startPprof(ctx, pprofAddr, g.logger()); err != nil {
					return &exitError{code: 1, err: err}
				}
			}
			err = serve.Serve(ctx, serve.Config{
				Files: files, Store: spec, Bind: bind, Port: port, Tokens: toks,
				MaxBodyBytes: maxBody, CORSOrigins: cors, Name: name, Logger: g.logger(),
				HooksURL: hooksURL, HooksHeaders: hdrs, HTTP: *transport, InboxRetention: inboxRetention,
				TracerProvider: tp,
			})
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	addHTTPFlags(f, transport)
	f.IntVar(&port, "port", 3000, "HTTP port (env PORT)")
	f.StringVar(&bind, "bind", envOr("BIND_ADDR", "127.0.0.1"), "address to listen on; 0.0.0.0 for every interface (env BIND_ADDR)")
	f.StringVar(&storeSpec, "store", "", "memory | sqlite:PATH | postgres://… (default: DATABASE_URL, else sqlite:./xcomponent.db)")
	f.StringArrayVar(&tokens, "auth-token", nil, "role=token (viewer or operator); repeatable")
	f.StringVar(&tokenFile, "auth-token-file", "", "file of role=token lines (env XCOMPONENT_AUTH_TOKEN_FILE)")
	f.StringArrayVar(&cors, "cors-origin", nil, "allowed CORS origin; repeatable (default: CORS off)")
	f.Int64Var(&maxBody, "max-body-bytes", 1<<20, "largest request body accepted")
	f.DurationVar(&retention, "inbox-retention", maintenance.DefaultInboxRetention, "how long the ids of applied commands are kept to refuse duplicates; 0: for ever (env INBOX_RETENTION)")
	f.StringVar(&name, "name", "serve", "name of this process in /api/runtimes")
	f.StringVar(&hooksURL, "hooks-url", "", "HTTP endpoint serving hook methods without a handler; its failures veto (env XCOMPONENT_HOOKS_URL)")
	f.StringVar(&pprofAddr, "pprof", "", "serve Go runtime profiles (net/http/pprof: CPU, heap, allocs, mutex, block) on this address, e.g. 127.0.0.1:6060; no auth, keep it on loopback (default: off)")
	f.StringArrayVar(&hooksHeaders, "hooks-header", nil, "'Name: value' header sent to --hooks-url, e.g. 'Authorization: Bearer T'; repeatable")
	return cmd
}
