package store_test

import (
	"testing"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/storetest"
)

func TestMemoryCountStates(t *testing.T) { storetest.CheckCountStates(t, store.NewMemory()) }
