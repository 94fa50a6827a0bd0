package bus_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/bus/bustest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMemory(t *testing.T) {
	bustest.Run(t, func(t *testing.T) func() bus.Bus {
		b := bus.NewMemory()
		t.Cleanup(func() { _ = b.Close() })
		return func() bus.Bus { return b }
	})
}

func TestMemoryDeadLetters(t *testing.T) {
	b := bus.NewMemory()
	defer b.Close()
	if got := b.DeadLetters("nope"); got != nil {
		t.Fatalf("DeadLetters of an unknown queue: %v", got)
	}
	if bus.CommandQueue("Orders") != "xcomponent.Orders.commands" || bus.DeadLetterQueue("q") != "q.dlq" || !bus.IsDeadLetterQueue("q.dlq") {
		t.Fatal("queue names")
	}
}
