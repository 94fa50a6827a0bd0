package conformance

import (
	"os"
	"strings"
	"testing"
)

// docs/semantics.md "Time": timeout and auto transitions on the virtual clock.
var _ = register(timerScenarios)

func TestTimers(t *testing.T) { runScenarios(t, timerScenarios()) }

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func timerScenarios() []scenario {
	const f = "timers.yaml"
	return []scenario{
		{name: "timeout fires at its deadline, not before", file: f, machine: "Reset",
			steps: `[{"advance":"999ms"},{"advance":"1ms"}]`, acc: "A0 A1",
			path:  []string{"Wait", "Expired"},
			insts: []want{I(0, "Reset", "Expired").St("error").V(1)}},
		{name: "timeout with one large advance", file: f, machine: "Reset",
			steps: `[{"advance":"1h"}]`, acc: "A1", path: []string{"Wait", "Expired"}},
		{name: "self-loop restarts a timeout", file: f, machine: "Reset",
			steps: `[{"advance":"600ms"},{"type":"PING"},{"advance":"999ms"},{"advance":"1ms"}]`,
			acc:   "A0 A1 A0 A1", path: []string{"Wait", "Wait", "Expired"},
			insts: []want{I(0, "Reset", "Expired").V(2)}},
		{name: "resetOnTransition false: a self-loop keeps the deadline", file: f, machine: "NoReset",
			steps: `[{"advance":"600ms"},{"type":"PING"},{"advance":"399ms"},{"advance":"1ms"}]`,
			acc:   "A0 A1 A0 A1", path: []string{"Wait", "Wait", "Expired"}},
		{name: "leaving the state cancels its timeout; re-entering re-arms it", file: f, machine: "Reset",
			steps: `[{"advance":"500ms"},{"type":"GO"},{"advance":"2s"},{"type":"BACK"},{"advance":"999ms"},{"advance":"1ms"}]`,
			acc:   "A0 A1 A0 A1 A0 A1", path: []string{"Wait", "Away", "Wait", "Expired"},
			insts: []want{I(0, "Reset", "Expired").V(3)}},
		{name: "timeout self-loop re-arms itself (periodic)", file: f, machine: "Tick",
			steps: `[{"advance":"1s"},{"type":"STOP"},{"advance":"1s"}]`, acc: "A1 A1 A0",
			path:  append(repeat("Wait", 11), "Done"),
			insts: []want{I(0, "Tick", "Done").St("completed").V(11)}},
		{name: "timeout self-loop with resetOnTransition false fires once", file: f, machine: "TickOnce",
			steps: `[{"advance":"1s"}]`, acc: "A1", path: []string{"Wait", "Wait"},
			insts: []want{I(0, "TickOnce", "Wait").V(1)}},
		{name: "a refused timeout is spent: fires at most once per arming", file: f, machine: "Spent",
			steps: `[{"advance":"150ms"},{"type":"SET","payload":{"ready":true}},{"advance":"1s"}]`,
			acc:   "A0 A1 A0", path: []string{"Wait", "Wait"},
			insts: []want{I(0, "Spent", "Wait").V(1).Ctx(`{"ready":true}`)}},
		{name: "a refused timeout is re-armed by a resetting self-loop", file: f, machine: "SpentReset",
			steps: `[{"advance":"150ms"},{"type":"SET","payload":{"ready":true}},{"advance":"99ms"},{"advance":"1ms"}]`,
			acc:   "A0 A1 A0 A1", path: []string{"Wait", "Wait", "Done"},
			insts: []want{I(0, "SpentReset", "Done").St("completed").V(2)}},
		{name: "first deadline wins between two timeouts of a state", file: f, machine: "Race",
			steps: `[{"advance":"1s"}]`, acc: "A1", path: []string{"Wait", "FastWon"},
			insts: []want{I(0, "Race", "FastWon").V(1)}},
		{name: "a timer armed during an advance counts from when it was armed", file: f, machine: "Chain",
			steps: `[{"advance":"250ms"}]`, acc: "A1", path: []string{"A", "B", "C"}},
		{name: "chained timeouts in several advances", file: f, machine: "Chain",
			steps: `[{"advance":"150ms"},{"advance":"49ms"},{"advance":"1ms"}]`, acc: "A1 A0 A1",
			path: []string{"A", "B", "C"}},
		{name: "timers of an instance created later count from its creation", file: f, machine: "Hub",
			steps: `[{"advance":"1s"},{"create":{"machine":"Chain"}},{"advance":"199ms"},{"advance":"1ms"}]`,
			acc:   "A0 A0 A1 A1", n: 2, insts: []want{I(1, "Chain", "C").V(2)}},
		{name: "due timers fire in deadline order across instances", file: f, machine: "Hub",
			steps: `[{"create":{"machine":"SlowRacer","context":{"name":"slow"}}},
				{"create":{"machine":"FastRacer","context":{"name":"fast"}}},
				{"advance":"1s"}]`,
			acc: "A0 A0 A3", n: 3, path: []string{"Listening", "Listening", "Listening"},
			insts: []want{I(0, "Hub", "Listening").V(2).Ctx(`{"who":"slow"}`),
				I(1, "SlowRacer", "Rung"), I(2, "FastRacer", "Rung")}},
		{name: "timers with the same deadline fire in the order they were armed", file: f, machine: "Recorder",
			steps: `[{"create":{"machine":"Bell","context":{"name":"a"}}},{"create":{"machine":"Bell","context":{"name":"b"}}},
				{"create":{"machine":"Bell","context":{"name":"c"}}},{"create":{"machine":"Bell","context":{"name":"d"}}},
				{"create":{"machine":"Bell","context":{"name":"e"}}},{"advance":"100ms"}]`,
			acc: "A0 A0 A0 A0 A0 A6", n: 11,
			insts: []want{I(0, "Recorder", "Listening").V(5),
				I(6, "Record", "Kept").Parent(0).Exact(`{"who":"a"}`), I(7, "Record", "Kept").Exact(`{"who":"b"}`),
				I(8, "Record", "Kept").Exact(`{"who":"c"}`), I(9, "Record", "Kept").Exact(`{"who":"d"}`),
				I(10, "Record", "Kept").Exact(`{"who":"e"}`)}},
		{name: "advance accepts Go durations (h, m, s)", file: f, machine: "Reset",
			steps: `[{"advance":"0h0m0.5s"},{"advance":"500ms"}]`, acc: "A0 A1"},
		{name: "a refused event does not touch the timers", file: f, machine: "Reset",
			steps: `[{"advance":"600ms"},{"type":"NOPE"},{"type":"BACK"},{"advance":"399ms"},{"advance":"1ms"}]`,
			acc:   "A0 R0 R0 A0 A1", path: []string{"Wait", "Expired"}},
		{name: "advance of zero fires nothing", file: f, machine: "Reset",
			steps: `[{"advance":"0s"}]`, acc: "A0", path: []string{"Wait"}},
	}
}

var _ = register(autoScenarios)

func TestAutoTransitions(t *testing.T) { runScenarios(t, autoScenarios()) }

func autoScenarios() []scenario {
	const f = "auto.yaml"
	return []scenario{
		{name: "zero-delay autos run at creation, in a chain", file: f, machine: "Chain",
			ctx: `{"k":1}`, path: []string{"A", "B", "C"}, acc: " ",
			insts: []want{I(0, "Chain", "C").St("completed").V(2).Exact(`{"k":1}`)}},
		{name: "auto chain from a create step counts as processed", file: f, machine: "Delayed",
			steps: `[{"create":{"machine":"Chain"}}]`, acc: "A1", n: 2,
			insts: []want{I(1, "Chain", "C").St("completed").V(2)}},
		{name: "delayed auto fires after its delay", file: f, machine: "Delayed",
			steps: `[{"advance":"499ms"},{"advance":"1ms"}]`, acc: "A0 A1", path: []string{"A", "B"}},
		{name: "auto self-loop is a periodic tick", file: f, machine: "Periodic",
			steps: `[{"advance":"1s"},{"type":"STOP"},{"advance":"1s"}]`, acc: "A1 A1 A0",
			path:  append(repeat("Run", 11), "Stopped"),
			insts: []want{I(0, "Periodic", "Stopped").St("completed").V(11)}},
		{name: "periodic tick over split advances", file: f, machine: "Periodic",
			steps: `[{"advance":"250ms"},{"advance":"250ms"}]`, acc: "A1 A1",
			insts: []want{I(0, "Periodic", "Run").V(5)}},
		{name: "guarded autos: the guard that holds routes", file: f, machine: "Router", ctx: `{"amount":9000}`,
			acc: " ", path: []string{"Submitted", "Director"}},
		{name: "guarded autos: the other guard", file: f, machine: "Router", ctx: `{"amount":10}`,
			acc: " ", path: []string{"Submitted", "Manager"}},
		{name: "guarded autos: no guard holds, the instance stays", file: f, machine: "Router",
			steps: `[{"advance":"1h"}]`, acc: "A0", path: []string{"Submitted"}, insts: []want{I(0, "Router", "Submitted").V(0)}},
		{name: "auto after the entering transition, in the same step", file: f, machine: "AfterEntry",
			steps: `[{"type":"START"}]`, acc: "A1", path: []string{"Idle", "Busy", "Finished"},
			insts: []want{I(0, "AfterEntry", "Finished").V(2)}},
	}
}

// TestPeriodicPathLength double-checks the path of a long periodic run.
func TestPeriodicPathLength(t *testing.T) {
	sc := scenario{name: "periodic", file: "auto.yaml", machine: "Periodic", steps: `[{"advance":"10s"}]`}
	r := sc.run(t)
	if len(r.Path) != 101 || strings.Count(strings.Join(r.Path, ","), "Run") != 101 {
		t.Fatalf("path has %d entries, want 101", len(r.Path))
	}
	if r.Instances[0].Version != 100 || r.Steps[0].Processed != 1 {
		t.Fatalf("version %d processed %d", r.Instances[0].Version, r.Steps[0].Processed)
	}
}

// TestLongRunPath: the path and the step counts must not lose transitions however many fire
// in one step. It needs more than a million runtime events in one step (about 10s), so it
// runs only with XC_CONFORMANCE_LONG=1.
func TestLongRunPath(t *testing.T) {
	if os.Getenv("XC_CONFORMANCE_LONG") == "" {
		t.Skip("long run: set XC_CONFORMANCE_LONG=1")
	}
	sc := scenario{name: "long", file: "auto.yaml", machine: "Periodic", steps: `[{"advance":"20h"}]`}
	r := sc.run(t)
	if v := r.Instances[0].Version; v != 720000 || len(r.Path) != v+1 {
		t.Fatalf("version %d, path has %d entries, want 720000 and 720001", v, len(r.Path))
	}
}
