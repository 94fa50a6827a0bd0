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

// TestAuthTokensRefused: a token list that would leave the API open by accident, name an
// unknown role or hold a guessable token stops serve, runtime and dashboard with exit 2 and
// the reason, before anything is started (issue 9, hole 11).
func TestAuthTokensRefused(t *testing.T) {
	long := "0123456789abcdef0123"
	for _, cmd := range [][]string{{"serve", "testdata/warn.yaml"}, {"runtime", "--port", "0"}, {"dashboard"}} {
		for _, c := range []struct{ env, want string }{
			{" , ", "no role=token pair"},
			{"   ", "no role=token pair"},
			{"operator=a", "at least 16"},
			{"viewer=" + long + ",operator=short", "operator token #1 is 5 characters"},
			{"admin=" + long, `unknown role "admin"`},
			{"operator=", "want role=token"},
		} {
			t.Setenv("XCOMPONENT_AUTH_TOKENS", c.env)
			code, _, stderr := runCLI(t, cmd...)
			if code != 2 || !strings.Contains(stderr, c.want) {
				t.Errorf("%v with XCOMPONENT_AUTH_TOKENS=%q: exit %d %q, want 2 and %q", cmd, c.env, code, stderr, c.want)
			}
			if strings.Contains(stderr, long) {
				t.Errorf("%v: the error shows a token: %q", cmd, stderr)
			}
		}
	}
	t.Setenv("XCOMPONENT_AUTH_TOKENS", "")
	code, _, stderr := runCLI(t, "dashboard", "--auth-token", "operator=tiny")
	if code != 2 || !strings.Contains(stderr, "at least 16") {
		t.Errorf("--auth-token operator=tiny: exit %d %q", code, stderr)
	}
}
