// Package storeurl opens a store.Store from a one-line spec:
//
//	memory                          the in-memory store (nothing kept across restarts)
//	memory?history=N&completed=N    … keeping N events per instance (default 1000) and N
//	                                completed instances (default 10000); 0 keeps them all
//	sqlite:PATH                     a SQLite file (sqlite://PATH is accepted too)
//	postgres://… or postgresql://…  a PostgreSQL database (libpq URL, options such as sslmode)
package storeurl

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"

	"github.com/xcomponent/xcomponent/internal/redact"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/postgres"
	"github.com/xcomponent/xcomponent/store/sqlite"
)

// Default is the spec used when neither a flag nor DATABASE_URL names a store.
const Default = "sqlite:./xcomponent.db"

// Option configures Open.
type Option func(*options)

type options struct{ log *slog.Logger }

// WithLogger sets the logger of the SQL stores (migrations, retries); slog.Default() when
// not given.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// Open opens the store named by spec. A PostgreSQL store waits for its database, retrying,
// until ctx is done.
func Open(ctx context.Context, spec string, opts ...Option) (store.Store, error) {
	o := options{log: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	switch {
	case IsMemory(spec):
		opts, err := memoryOptions(strings.TrimPrefix(spec, "memory"))
		if err != nil {
			return nil, err
		}
		return store.NewMemory(opts...), nil
	case strings.HasPrefix(spec, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(spec, "sqlite:"), "//")
		if path == "" {
			return nil, fmt.Errorf("store %q: no file path after \"sqlite:\"", spec)
		}
		s, err := sqlite.Open(ctx, path, sqlite.WithLogger(o.log))
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return s, nil
	case isPostgres(spec):
		s, err := postgres.Open(ctx, spec, postgres.WithLogger(o.log))
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("unknown store %q: want memory, sqlite:PATH, postgres://… or postgresql://…", redact.URL(spec))
}

// memoryOptions reads the retention of the memory store from "?history=N&completed=N".
func memoryOptions(query string) ([]store.MemoryOption, error) {
	var opts []store.MemoryOption
	if query == "" {
		return nil, nil
	}
	v, err := url.ParseQuery(strings.TrimPrefix(query, "?"))
	if err != nil {
		return nil, fmt.Errorf("store memory%s: %w", query, err)
	}
	for key, vals := range v {
		n, err := strconv.Atoi(vals[len(vals)-1])
		if err != nil || n < 0 {
			return nil, fmt.Errorf("store memory%s: %s: want a number >= 0 (0: keep all)", query, key)
		}
		switch key {
		case "history":
			opts = append(opts, store.WithHistoryLimit(n))
		case "completed":
			opts = append(opts, store.WithCompletedLimit(n))
		default:
			return nil, fmt.Errorf("store memory%s: unknown option %q (want history, completed)", query, key)
		}
	}
	return opts, nil
}

// IsMemory reports whether spec names the in-memory store.
func IsMemory(spec string) bool { return spec == "memory" || strings.HasPrefix(spec, "memory?") }

func isPostgres(spec string) bool {
	return strings.HasPrefix(spec, "postgres://") || strings.HasPrefix(spec, "postgresql://")
}

// FromEnv returns the store spec to use: flag when set, else DATABASE_URL when set, else
// Default. DATABASE_URL must be a postgres:// or postgresql:// URL; another value is returned
// as is, so that Open fails on it (see Resolve for an early, clearer error).
func FromEnv(flag string, getenv func(string) string) string {
	spec, _ := Resolve(flag, getenv)
	return spec
}

// Resolve is FromEnv that also reports a DATABASE_URL that is not a PostgreSQL URL.
func Resolve(flag string, getenv func(string) string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if u := getenv("DATABASE_URL"); u != "" {
		if !isPostgres(u) {
			return u, fmt.Errorf("DATABASE_URL %q: want a postgres:// or postgresql:// URL", redact.URL(u))
		}
		return u, nil
	}
	return Default, nil
}

// Redact returns spec with its password masked, for logs and errors: internal/redact.URL, the
// product's one redaction, for programs outside this module.
func Redact(spec string) string { return redact.URL(spec) }

// Kind names the store a spec opens, "memory", "sqlite" or "postgres" (health answers and
// registry announcements say it; only a memory store cannot be shared with other processes).
func Kind(spec string) string {
	switch {
	case IsMemory(spec):
		return "memory"
	case strings.HasPrefix(spec, "sqlite:"):
		return "sqlite"
	default:
		return "postgres"
	}
}
