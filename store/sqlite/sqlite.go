// Package sqlite is the embedded store.Store: one SQLite file, pure-Go driver (no cgo).
//
// Durability: the database runs in WAL mode with synchronous=FULL by default, so a commit is
// on disk (fsync of the WAL) before Commit returns: a process killed with kill -9, and also a
// power loss, loses no acknowledged commit. Group commit amortises that fsync: concurrent
// Commit calls are applied by one committer goroutine in one transaction, their rows written
// by a few multi-row statements; when any row does not apply, the transaction is rolled back
// and replayed with each commit in its own SAVEPOINT, so that a conflicting commit fails alone. WithSynchronous("NORMAL") trades the
// power-loss guarantee for latency (still safe against a process crash: the WAL is written to
// the OS before Commit returns, only its fsync is deferred to checkpoints).
//
// Data and payload maps are stored as JSON: numbers come back as float64.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/internal/groupcommit"
	"github.com/xcomponent/xcomponent/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is a store.Store on one SQLite file. Safe for concurrent use; several processes may
// share the file (writers wait for each other up to the busy timeout).
type Store struct {
	// Instance, LoadLive, Search, History, Correlated, PendingOutbox, PruneInbox, CountStates
	sqlstore.Reads

	db     *sql.DB
	wconn  *sql.Conn // the committer's connection
	stmts  writeStmts
	maps   sqlstore.MapEncoder // the committer's: encodes each data map of a commit once
	rows   rowArgs             // the committer's: the rows its fast path inserts at the end
	queue  *groupcommit.Queue
	opts   options
	closed sync.Once
	cerr   error
}

var (
	_ store.Store       = (*Store)(nil)
	_ store.InboxPruner = (*Store)(nil)
	_ store.Counter     = (*Store)(nil)
)

type options struct {
	sqlstore.Options
	synchronous string
	busyTimeout time.Duration
}

// Option configures Open.
type Option func(*options)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.Logger = l } }

// WithMaxBatch sets the most commits applied in one transaction (default 512).
func WithMaxBatch(n int) Option { return func(o *options) { o.MaxBatch = n } }

// WithCommitTimeout bounds one group-commit transaction (default 30s).
func WithCommitTimeout(d time.Duration) Option { return func(o *options) { o.CommitTimeout = d } }

// WithSynchronous sets PRAGMA synchronous: "FULL" (default: durable against power loss) or
// "NORMAL" (durable against a process crash, not against power loss).
func WithSynchronous(mode string) Option { return func(o *options) { o.synchronous = mode } }

// WithBusyTimeout sets how long a writer waits for another process's write lock (default 10s).
func WithBusyTimeout(d time.Duration) Option { return func(o *options) { o.busyTimeout = d } }

// walAutocheckpoint is the committer connection's wal_autocheckpoint (pages).
const walAutocheckpoint = 8000

// Open opens (creating if needed) the database file at path and migrates it.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o := options{Options: sqlstore.DefaultOptions(), synchronous: "FULL", busyTimeout: 10 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	switch strings.ToUpper(o.synchronous) {
	case "FULL", "NORMAL", "EXTRA":
	default:
		return nil, fmt.Errorf("sqlite open: synchronous %q: want FULL, NORMAL or EXTRA", o.synchronous)
	}
	if path == "" {
		return nil, errors.New("sqlite open: empty path")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite open %s: the path must not contain '?' or '#'", path)
	}
	dsn := fmt.Sprintf("%s?_busy_timeout=%d&_journal_mode=WAL&_synchronous=%s&_txlock=immediate",
		path, o.busyTimeout.Milliseconds(), strings.ToUpper(o.synchronous))
	db := sql.OpenDB(newConnector(dsn))
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	s := &Store{Reads: sqlstore.NewReads(newDialect(), sqlstore.StdDB(db)), db: db, opts: o}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlite open %s: %w", path, err)
	}
	var err error
	if s.wconn, err = db.Conn(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlite open %s: %w", path, err)
	}
	// The committer runs SQLite's automatic checkpoint after the COMMIT that takes the WAL
	// past this many pages (default 1,000). A snapshot row and the index pages a transition
	// touches are rewritten by batch after batch; a checkpoint copies each page once however
	// many times the WAL holds it, so fewer, larger checkpoints copy fewer pages per event
	// (docs/benchmarks.md, "Multi-row statements on SQLite"). The WAL file grows to about
	// 8,000 pages (32 MiB at 4 KiB) and is reused from its start after each checkpoint.
	if _, err := s.wconn.ExecContext(ctx, "PRAGMA wal_autocheckpoint = "+strconv.Itoa(walAutocheckpoint)); err != nil {
		_ = s.wconn.Close()
		_ = db.Close()
		return nil, fmt.Errorf("sqlite open %s: %w", path, err)
	}
	if err := s.stmts.prepare(ctx, s.wconn); err != nil {
		s.stmts.close()
		_ = s.wconn.Close()
		_ = db.Close()
		return nil, fmt.Errorf("sqlite open %s: %w", path, err)
	}
	s.queue = groupcommit.New(o.MaxBatch, 1, s.runBatch)
	return s, nil
}

// migrate applies the missing migrations inside one BEGIN IMMEDIATE transaction, which holds
// the database's write lock: processes opening the file at once apply each migration once.
// A file already up to date is only read: another process writing to it steadily (a second
// runtime in the same folder) may hold the write lock for longer than the busy timeout
// between two of its commits, and opening must not need it.
func (s *Store) migrate(ctx context.Context) (err error) {
	ms, err := sqlstore.SubMigrations(migrationFS, "migrations")
	if err != nil {
		return err
	}
	if s.upToDate(ctx, ms) {
		return nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	err = sqlstore.Migrate(ctx, sqlstore.StdDB(conn), ms, func(ctx context.Context, m sqlstore.Migration) error {
		if _, err := conn.ExecContext(ctx, m.SQL); err != nil {
			return err
		}
		_, err := conn.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
			m.Version, m.Name, time.Now().UnixMilli())
		return err
	}, s.opts.Logger, "sqlite")
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// upToDate reports whether every migration of ms is recorded as applied (false on any error,
// such as a new file without the schema_migrations table: migrate then takes the lock).
func (s *Store) upToDate(ctx context.Context, ms []sqlstore.Migration) bool {
	pending, err := sqlstore.Pending(ctx, sqlstore.StdDB(s.db), ms)
	return err == nil && len(pending) == 0
}

// Close stops the committer (queued commits fail with store.ErrClosed) and closes the
// database. Idempotent.
func (s *Store) Close() error {
	s.closed.Do(func() {
		s.queue.Close()
		s.stmts.close()
		err1 := s.wconn.Close()
		err2 := s.db.Close()
		if err := errors.Join(err1, err2); err != nil {
			s.cerr = fmt.Errorf("sqlite close: %w", err)
		}
	})
	return s.cerr
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite ping: %w", err)
	}
	return nil
}
