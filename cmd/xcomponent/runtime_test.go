package main

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// The timer settings of `xcomponent runtime` come from the env (TIMER_POLL, TIMER_TAKEOVER,
// TIMER_LEASE) and the flags of the same name, the flag winning; 0 or off turns claiming off.
func TestRuntimeConfigTimerSettings(t *testing.T) {
	parse := func(t *testing.T, args ...string) (*runtimeFlags, *pflag.FlagSet) {
		t.Helper()
		fl := &runtimeFlags{}
		f := pflag.NewFlagSet("runtime", pflag.ContinueOnError)
		fl.register(f)
		if err := f.Parse(args); err != nil {
			t.Fatal(err)
		}
		return fl, f
	}
	t.Run("defaults", func(t *testing.T) {
		fl, f := parse(t)
		cfg, err := runtimeConfig(f, fl)
		if err != nil || cfg.TimerPoll != 0 || cfg.TimerTakeover != 0 || cfg.TimerLease != 0 {
			t.Errorf("defaults: poll %v takeover %v lease %v, %v; want zeros (the engine's defaults)", cfg.TimerPoll, cfg.TimerTakeover, cfg.TimerLease, err)
		}
	})
	t.Run("env", func(t *testing.T) {
		t.Setenv("TIMER_POLL", "250ms")
		t.Setenv("TIMER_TAKEOVER", "2s")
		t.Setenv("TIMER_LEASE", "1m")
		fl, f := parse(t)
		cfg, err := runtimeConfig(f, fl)
		if err != nil || cfg.TimerPoll != 250*time.Millisecond || cfg.TimerTakeover != 2*time.Second || cfg.TimerLease != time.Minute {
			t.Errorf("env: poll %v takeover %v lease %v, %v", cfg.TimerPoll, cfg.TimerTakeover, cfg.TimerLease, err)
		}
	})
	t.Run("flags win over env", func(t *testing.T) {
		t.Setenv("TIMER_POLL", "250ms")
		t.Setenv("TIMER_LEASE", "1m")
		fl, f := parse(t, "--timer-poll=3s", "--timer-takeover=100ms", "--timer-lease=20s")
		cfg, err := runtimeConfig(f, fl)
		if err != nil || cfg.TimerPoll != 3*time.Second || cfg.TimerTakeover != 100*time.Millisecond || cfg.TimerLease != 20*time.Second {
			t.Errorf("flags: poll %v takeover %v lease %v, %v", cfg.TimerPoll, cfg.TimerTakeover, cfg.TimerLease, err)
		}
	})
	t.Run("off", func(t *testing.T) {
		t.Setenv("TIMER_POLL", "off")
		fl, f := parse(t)
		if cfg, err := runtimeConfig(f, fl); err != nil || cfg.TimerPoll >= 0 {
			t.Errorf("TIMER_POLL=off: %v, %v; want negative (no claiming)", cfg.TimerPoll, err)
		}
		t.Setenv("TIMER_POLL", "")
		fl, f = parse(t, "--timer-poll=0")
		if cfg, err := runtimeConfig(f, fl); err != nil || cfg.TimerPoll >= 0 {
			t.Errorf("--timer-poll=0: %v, %v; want negative (no claiming)", cfg.TimerPoll, err)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		for k, v := range map[string]string{"TIMER_POLL": "soon", "TIMER_TAKEOVER": "0", "TIMER_LEASE": "-5s"} {
			t.Setenv(k, v)
			fl, f := parse(t)
			if _, err := runtimeConfig(f, fl); err == nil || !strings.Contains(err.Error(), k) {
				t.Errorf("%s=%q: %v, want an error naming it", k, v, err)
			}
			t.Setenv(k, "")
		}
		fl, f := parse(t, "--timer-lease=-1s")
		if _, err := runtimeConfig(f, fl); err == nil {
			t.Error("--timer-lease=-1s accepted")
		}
	})
}
