package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/sqlite"
	"github.com/xcomponent/xcomponent/store/storetest"
)

func open(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}
