package main

import (
	"strings"
	"testing"
)

// TestDashboardUsageErrors: bad settings of `xcomponent dashboard` are usage errors (exit 2)
// naming the setting, before anything is started.
func TestDashboardUsageErrors(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{args: []string{"dashboard", "extra"}, want: "unknown command"},
		{args: []string{"dashboard", "--port", "x"}, want: "port"},
		{env: map[string]string{"PORT": "eighty"}, args: []string{"dashboard"}, want: "PORT"},
		{env: map[string]string{"PORT": "70000"}, args: []string{"dashboard"}, want: "out of range"},
		{env: map[string]string{"COMMAND_TIMEOUT": "soon"}, args: []string{"dashboard"}, want: "COMMAND_TIMEOUT"},
		{env: map[string]string{"RUNTIME_LOST_AFTER": "1 minute"}, args: []string{"dashboard"}, want: "RUNTIME_LOST_AFTER"},
		{args: []string{"dashboard", "--auth-token", "admin=x"}, want: "auth tokens"},
	} {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		code, _, stderr := runCLI(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v %v: exit %d %q, want 2 naming %q", c.env, c.args, code, stderr, c.want)
		}
		for k := range c.env {
			t.Setenv(k, "")
		}
	}
}
