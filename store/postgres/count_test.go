package postgres_test

import (
	"testing"

	"github.com/xcomponent/xcomponent/store/storetest"
)

func TestCountStates(t *testing.T) {
	s, _ := open(t)
	storetest.CheckCountStates(t, s)
}
