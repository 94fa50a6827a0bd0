package storeurl_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/postgres"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
	"github.com/xcomponent/xcomponent/store/sqlite"
	"github.com/xcomponent/xcomponent/store/storeurl"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnv(t *testing.T) {
	pg := "postgres://u:p@h/db"
	for _, tc := range []struct {
		flag    string
		env     map[string]string
		want    string
		wantErr bool
	}{
		{"", nil, "sqlite:./xcomponent.db", false},
		{"memory", map[string]string{"DATABASE_URL": pg}, "memory", false},
		{"", map[string]string{"DATABASE_URL": pg}, pg, false},
		{"", map[string]string{"DATABASE_URL": "postgresql://h/db"}, "postgresql://h/db", false},
		{"", map[string]string{"DATABASE_URL": "mysql://h/db"}, "mysql://h/db", true},
		{"sqlite:/tmp/x.db", map[string]string{"DATABASE_URL": "mysql://h/db"}, "sqlite:/tmp/x.db", false},
	} {
		if got := storeurl.FromEnv(tc.flag, env(tc.env)); got != tc.want {
			t.Errorf("FromEnv(%q, %v) = %q, want %q", tc.flag, tc.env, got, tc.want)
		}
		got, err := storeurl.Resolve(tc.flag, env(tc.env))
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("Resolve(%q, %v) = %q, %v", tc.flag, tc.env, got, err)
		}
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	s, err := storeurl.Open(ctx, "memory")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*store.Memory); !ok {
		t.Errorf("memory: %T", s)
	}
	dir := t.TempDir()
	for _, spec := range []string{"sqlite:" + filepath.Join(dir, "a.db"), "sqlite://" + filepath.Join(dir, "b.db")} {
		s, err := storeurl.Open(ctx, spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if _, ok := s.(*sqlite.Store); !ok {
			t.Errorf("%s: %T", spec, s)
		}
		_ = s.Close()
	}
	for _, spec := range []string{"", "sqlite:", "mysql://u:secret@h/db", "./file.db", "Memory"} {
		_, err := storeurl.Open(ctx, spec)
		if err == nil {
			t.Errorf("Open(%q): no error", spec)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q): the error shows the password: %v", spec, err)
		}
	}
}

func TestOpenPostgres(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	if !strings.HasPrefix(dsn, "postgres") {
		t.Skip("XCOMPONENT_TEST_POSTGRES is not a URL")
	}
	for _, spec := range []string{dsn, "postgresql://" + strings.TrimPrefix(strings.TrimPrefix(dsn, "postgres://"), "postgresql://")} {
		s, err := storeurl.Open(context.Background(), spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if _, ok := s.(*postgres.Store); !ok {
			t.Errorf("%s: %T", spec, s)
		}
		if err := s.Ping(context.Background()); err != nil {
			t.Error(err)
		}
		_ = s.Close()
	}
}

func TestKind(t *testing.T) {
	for spec, want := range map[string]string{"memory": "memory", "memory?history=5": "memory",
		"sqlite:./x.db": "sqlite", "postgres://h/db": "postgres", "postgresql://h/db": "postgres"} {
		if got := storeurl.Kind(spec); got != want {
			t.Errorf("Kind(%q) = %q, want %q", spec, got, want)
		}
	}
}

func TestOpenMemoryRetention(t *testing.T) {
	for _, spec := range []string{"memory", "memory?history=5", "memory?history=0&completed=3"} {
		s, err := storeurl.Open(context.Background(), spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if _, ok := s.(*store.Memory); !ok {
			t.Errorf("%s: %T, want *store.Memory", spec, s)
		}
	}
	for _, spec := range []string{"memory?history=-1", "memory?history=x", "memory?keep=3", "memory?%zz"} {
		if _, err := storeurl.Open(context.Background(), spec); err == nil {
			t.Errorf("%s: opened, want an error", spec)
		}
	}
}
