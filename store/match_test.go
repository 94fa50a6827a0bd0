package store_test

import (
	"testing"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/storetest"
)

func TestMemoryMatcher(t *testing.T) {
	storetest.RunMatcher(t, func(t *testing.T) store.Store {
		s := store.NewMemory()
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
