package sqlite_test

import (
	"testing"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/storetest"
)

func TestMatcher(t *testing.T) {
	storetest.RunMatcher(t, func(t *testing.T) store.Store { return open(t) })
}

// FuzzMatch: SQLite's matching agrees with the engine's semantics (storetest.FuzzMatcher).
func FuzzMatch(f *testing.F) { storetest.FuzzMatcher(f, open(f)) }
