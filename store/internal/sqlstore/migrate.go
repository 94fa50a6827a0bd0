package sqlstore

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
)

// Migration is one versioned SQL script, NNNN_name.sql.
type Migration struct {
	Version int
	Name    string // the file name
	SQL     string
}

// ReadMigrations returns the *.sql files of fsys's root in version order. Each name starts
// with a positive version and '_'; two files may not share a version.
func ReadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: the name must start with a positive version and '_'", e.Name())
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, Migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s share a version", out[i-1].Name, out[i].Name)
		}
	}
	return out, nil
}

// SubMigrations is ReadMigrations of the directory dir of fsys (an embed.FS).
func SubMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	return ReadMigrations(sub)
}

// Pending returns the migrations of ms that schema_migrations (on db) does not list.
func Pending(ctx context.Context, db DB, ms []Migration) ([]Migration, error) {
	versions, err := QueryAll(ctx, db, scanInt, "SELECT version FROM schema_migrations")
	if err != nil {
		return nil, err
	}
	applied := make(map[int]bool, len(versions))
	for _, v := range versions {
		applied[v] = true
	}
	var out []Migration
	for _, m := range ms {
		if !applied[m.Version] {
			out = append(out, m)
		}
	}
	return out, nil
}

// Migrate applies the migrations of ms that schema_migrations (on db) does not list, in
// version order, with run, which applies one and records it. The caller holds what
// serialises migrations between processes (a lock), and has created schema_migrations.
func Migrate(ctx context.Context, db DB, ms []Migration, run func(context.Context, Migration) error, log *slog.Logger, storeName string) error {
	pending, err := Pending(ctx, db, ms)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range pending {
		if err := run(ctx, m); err != nil {
			return fmt.Errorf("migrate %s: %w", m.Name, err)
		}
		log.Info("database migrated", "store", storeName, "migration", m.Name)
	}
	return nil
}

func scanInt(r Scanner) (int, error) {
	var v int
	err := r.Scan(&v)
	return v, err
}
