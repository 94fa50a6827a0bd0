// Package pgtest gives tests a fresh PostgreSQL database.
//
// The server is the one named by XCOMPONENT_TEST_POSTGRES (a connection string to an admin
// database), by default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable. When it
// is unreachable the test is skipped, or fails when CI=true.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultAdminDSN is the server used when XCOMPONENT_TEST_POSTGRES is not set.
const DefaultAdminDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminDSN returns the connection string of the test server's admin database.
func AdminDSN() string {
	if v := os.Getenv("XCOMPONENT_TEST_POSTGRES"); v != "" {
		return v
	}
	return DefaultAdminDSN
}

// Unreachable skips the test, or fails it when CI=true, because the server cannot be used.
func Unreachable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("PostgreSQL test server unreachable (CI=true, so this fails): %v", err)
	}
	t.Skipf("PostgreSQL test server unreachable (set XCOMPONENT_TEST_POSTGRES): %v", err)
}

// WithDatabase returns dsn pointing at database name instead.
func WithDatabase(dsn, name string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			u.Path = "/" + name
			q := u.Query()
			if q.Has("dbname") {
				q.Set("dbname", name)
				u.RawQuery = q.Encode()
			}
			return u.String()
		}
	}
	return dsn + " dbname=" + name
}

// NewDatabase creates a database with a random name (xc_test_…) on the test server and returns
// its connection string. The database is dropped (WITH (FORCE)) when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return NewNamedDatabase(t, "xc_test_")
}

// NewNamedDatabase is NewDatabase with a name of prefix followed by random hex digits (a
// prefix of lower-case letters, digits and underscores), so that a run's databases can be
// told apart on a shared server.
func NewNamedDatabase(t testing.TB, prefix string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	admin := AdminDSN()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		Unreachable(t, err)
	}
	defer conn.Close(context.Background())
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := prefix + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return WithDatabase(admin, name)
}
