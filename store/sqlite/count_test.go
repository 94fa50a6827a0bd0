package sqlite_test

import (
	"testing"

	"github.com/xcomponent/xcomponent/store/storetest"
)

func TestCountStates(t *testing.T) { storetest.CheckCountStates(t, open(t)) }
