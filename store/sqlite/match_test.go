package sqlite_test

import (
	"testing"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/storetest"
)

func TestMatcher(t *testing.T) {
	storetest.RunMatcher(t, func(t *testing.T) store.Store { return open(t) })
}
