package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/xcomponent/xcomponent/internal/faults"
)

// binary is the xcomponent executable built by TestMain.
var binary string

// TestMain builds the binary once (with -race when the tests run with it, so that the race
// detector also watches the server) and removes it at the end.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "xcomponent-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if binary, err = faults.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}
