// Package rmqtest gives tests their own RabbitMQ vhost on the local broker, created with
// rabbitmqctl and deleted at the end of the test, so that test runs never collide.
package rmqtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// BrokerAddr is the local broker the tests use.
const BrokerAddr = "127.0.0.1:5672"

// NewVhost creates a fresh vhost for t, deleted at its end, and returns its name and AMQP URL.
// The test is skipped when no broker is reachable, and fails instead when CI=true.
func NewVhost(t testing.TB) (name, url string) {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	c, err := net.DialTimeout("tcp", BrokerAddr, 2*time.Second)
	if err != nil {
		unavailable("RabbitMQ unreachable at %s: %v", BrokerAddr, err)
	}
	_ = c.Close()
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		unavailable("rabbitmqctl not found: %v", err)
	}
	name = fmt.Sprintf("xc_test_%08x", rand.Uint32())
	Ctl(t, "add_vhost", name)
	t.Cleanup(func() { Ctl(t, "delete_vhost", name) })
	Ctl(t, "set_permissions", "-p", name, "guest", ".*", ".*", ".*")
	return name, "amqp://guest:guest@" + BrokerAddr + "/" + name
}

// Ctl runs rabbitmqctl with args, failing t on error.
func Ctl(t testing.TB, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", append([]string{"--quiet"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
