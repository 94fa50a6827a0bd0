// Package postgres is the store.Store on PostgreSQL (pgx v5, pgxpool).
//
// Its fsm_events and fsm_snapshots tables are column-compatible with xcomponent-ai's (see
// migrations/0001_init.sql), with our columns added as nullable ones.
//
// Writes go through group commit: concurrent Commit calls are applied by committer goroutines
// in one transaction per batch. The fast path writes a whole batch with a handful of
// multi-row statements (unnest arrays) in one pipelined round trip; if any commit of the
// batch fails its checks (version conflict, existing id, duplicate inbox id, SQL error), the
// transaction is rolled back and the batch is replayed with one SAVEPOINT per commit, so that
// only the failing commits fail. A caller returns once the transaction holding its commit has
// committed (synchronous_commit as configured on the server: on by default).
//
// Ids (instance, event, correlation, causation, parent) must be UUID strings; they come back
// in canonical lowercase form. Data and payload maps are stored as JSONB: numbers come back as
// float64.
package postgres

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/xcomponent/xcomponent/internal/redact"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/internal/groupcommit"
	"github.com/xcomponent/xcomponent/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is a store.Store on PostgreSQL. Safe for concurrent use, and several Stores (several
// processes) may share one database: optimistic concurrency on fsm_snapshots.version makes
// sure no two writers win the same version of an instance.
type Store struct {
	// Instance, LoadLive, Search, History, Correlated, PendingOutbox, PruneInbox, CountStates
	sqlstore.Reads

	pool   *pgxpool.Pool
	queue  *groupcommit.Queue
	opts   options
	closed sync.Once
}

var (
	_ store.Store       = (*Store)(nil)
	_ store.InboxPruner = (*Store)(nil)
	_ store.Counter     = (*Store)(nil)
)

type options struct {
	sqlstore.Options
	committers int
	maxBackoff time.Duration
}

// Option configures Open.
type Option func(*options)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.Logger = l } }

// WithMaxBatch sets the most commits applied in one transaction (default 512).
func WithMaxBatch(n int) Option { return func(o *options) { o.MaxBatch = n } }

// WithCommitTimeout bounds one group-commit transaction (default 30s).
func WithCommitTimeout(d time.Duration) Option { return func(o *options) { o.CommitTimeout = d } }

// WithCommitters sets how many batches may be in flight at once, each on its own connection
// (default 2).
func WithCommitters(n int) Option { return func(o *options) { o.committers = n } }

// WithMaxBackoff caps the wait between two connection attempts of Open (default 5s).
func WithMaxBackoff(d time.Duration) Option { return func(o *options) { o.maxBackoff = d } }

// Open connects to the database at connString (a postgres:// or postgresql:// URL or a libpq
// key/value string; libpq options such as sslmode are honoured, and pgxpool's pool_* ones)
// and migrates it. While the database is unreachable it retries with exponential backoff,
// logging each failure, until ctx is done.
func Open(ctx context.Context, connString string, opts ...Option) (*Store, error) {
	o := options{Options: sqlstore.DefaultOptions(), committers: 2, maxBackoff: 5 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if o.committers <= 0 {
		o.committers = 1
	}
	redacted := redact.URL(connString)
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		// The parse error may quote the connection string: keep only its cause.
		if cause := errors.Unwrap(err); cause != nil {
			return nil, fmt.Errorf("postgres open %s: bad connection string: %w", redacted, cause)
		}
		return nil, fmt.Errorf("postgres open %s: bad connection string", redacted)
	}
	if !strings.Contains(connString, "pool_max_conns") && cfg.MaxConns < int32(o.committers+4) {
		cfg.MaxConns = int32(o.committers + 4)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	s := &Store{opts: o}
	backoff := 100 * time.Millisecond
	for {
		err = s.connect(ctx, cfg)
		if err == nil {
			break
		}
		if isPermanent(err) { // retrying will not help
			return nil, fmt.Errorf("postgres open %s: %w", redacted, err)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("postgres open %s: database unreachable: %w", redacted, err)
		}
		o.Logger.Warn("database unreachable, retrying in "+backoff.String(), "store", "postgres", "dsn", redacted, "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("postgres open %s: database unreachable: %w (%w)", redacted, err, ctx.Err())
		}
		backoff = min(backoff*2, o.maxBackoff)
	}
	s.queue = groupcommit.New(o.MaxBatch, o.committers, s.runBatch)
	return s, nil
}

// connect creates the pool, checks the database answers and migrates it.
func (s *Store) connect(ctx context.Context, cfg *pgxpool.Config) error {
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return err
	}
	if err := s.migrate(ctx, cfg.ConnConfig); err != nil {
		pool.Close()
		if isStatementError(err) && !isTransient(err) {
			return &permanentError{err}
		}
		return err
	}
	s.pool = pool
	s.Reads = sqlstore.NewReads(newDialect(), pgDB{pool})
	return nil
}

// permanentError is an Open failure that retrying cannot cure (a migration that fails).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// isPermanent: a failing migration, credentials the server rejects (SQLSTATE class 28), or a
// server certificate that does not verify (sslmode=verify-ca/verify-full with another CA, or
// another host name): waiting does not make it trusted, so the error is reported at once.
// Anything else (connection refused, server starting up, too many connections, …) is retried.
func isPermanent(err error) bool {
	var pe *permanentError
	if errors.As(err, &pe) {
		return true
	}
	var verr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var invalid x509.CertificateInvalidError
	if errors.As(err, &verr) || errors.As(err, &unknownCA) || errors.As(err, &badHost) || errors.As(err, &invalid) {
		return true
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "28")
}

// migrations returns the embedded migrations in version order.
func migrations() ([]sqlstore.Migration, error) {
	return sqlstore.SubMigrations(migrationFS, "migrations")
}

// InitSQL is the whole schema as one SQL script: the embedded migrations concatenated, for
// the docker-compose PostgreSQL container (deploy/postgres/init.sql is generated from it, and
// a test keeps the two equal). Running Open on a database initialised with it is a no-op
// apart from recording the migrations.
func InitSQL() (string, error) {
	ms, err := migrations()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("-- Generated from store/postgres/migrations by `go generate ./store/postgres`. DO NOT EDIT.\n")
	b.WriteString("-- The xcomponent runtime applies the same migrations itself at start.\n")
	for _, m := range ms {
		fmt.Fprintf(&b, "\n-- migration %s\n", m.Name)
		b.WriteString(m.SQL)
		if !strings.HasSuffix(m.SQL, "\n") {
			b.WriteString("\n")
		}
	}
	return b.String(), nil
}

// migrationLock is the pg_advisory_lock key serialising migrations ("xcomponent" in ASCII).
const migrationLock int64 = 0x7863_6f6d_706f

// migrate applies the missing migrations, each in its own transaction, holding a session
// advisory lock so that processes starting at once apply each migration once. It uses its
// own connection, closed at the end, so the lock can never stay behind in the pool.
func (s *Store) migrate(ctx context.Context, cfg *pgx.ConnConfig) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW())`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	err = sqlstore.Migrate(ctx, pgDB{conn}, ms, func(ctx context.Context, m sqlstore.Migration) error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
			return err
		})
	}, s.opts.Logger, "postgres")
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", migrationLock); err != nil {
		return fmt.Errorf("migrate: unlock: %w", err)
	}
	return nil
}

// Close stops the committers (queued commits fail with store.ErrClosed) and closes the pool.
// Idempotent.
func (s *Store) Close() error {
	s.closed.Do(func() {
		s.queue.Close()
		s.pool.Close()
	})
	return nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres ping: %w", err)
	}
	return nil
}

// Pool returns the connection pool (for tools and tests).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }
