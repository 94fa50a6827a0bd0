package e2e

import (
	"path/filepath"
	"testing"

	"github.com/xcomponent/xcomponent/internal/faults"
)

// component is the YAML file every test serves.
var componentFile = filepath.Join("testdata", "durable.yaml")

// server is one xcomponent subprocess (`serve`, `runtime`, `dashboard`): faults.Proc, the one
// process harness of the end-to-end and fault-injection tests.
type server = faults.Proc

// startServe starts `xcomponent serve` on the store spec, on a free loopback port, and waits
// until /readyz answers. The process is killed when the test ends if it is still running.
func startServe(t testing.TB, name, storeSpec string, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--log-format", "json", "--port", "0", "--bind", "127.0.0.1",
		"--store", storeSpec, "--name", name}, extra...)
	args = append(args, componentFile)
	return startProcess(t, name, binary, args, []string{"DATABASE_URL=", "PORT=", "XCOMPONENT_AUTH_TOKENS="})
}

// startProcess starts bin with args and env (JSON logs) and waits until it serves; see
// faults.Start.
func startProcess(t testing.TB, name, bin string, args, env []string) *server {
	t.Helper()
	return faults.Start(t, name, bin, args, env)
}
