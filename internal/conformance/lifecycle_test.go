package conformance

import "testing"

// countMachine checks how many instances of machine the report lists.
func countMachine(t *testing.T, r *report, machine string, want int) {
	t.Helper()
	n := 0
	for _, in := range r.Instances {
		if in.MachineName == machine {
			n++
		}
	}
	if n != want {
		t.Errorf("%d instances of %s, want %d", n, machine, want)
	}
}

// broadcast(machine, event, state?) counts.
var _ = register(broadcastScenarios)

func TestBroadcast(t *testing.T) { runScenarios(t, broadcastScenarios()) }

func broadcastScenarios() []scenario {
	const f = "radio.yaml"
	// instance 0 (freq 101), 1 (freq 102), 2 (freq 101); instance 1 is tuned first.
	setup := `{"create":{"machine":"Station","context":{"freq":102}}},
		{"create":{"machine":"Station","context":{"freq":101}}},
		{"type":"TUNE","instance":1}`
	return []scenario{
		{name: "broadcast without rules or state: every live instance, self-loops count", file: f, machine: "Station",
			ctx: `{"freq":101}`, steps: `[` + setup + `,{"broadcast":{"machine":"Station","type":"TUNE"}}]`,
			acc:   "A0 A0 A1 A3",
			insts: []want{I(0, "Station", "Tuned").V(1), I(1, "Station", "Tuned").V(2), I(2, "Station", "Tuned").V(1)}},
		{name: "broadcast with a state filter", file: f, machine: "Station",
			ctx: `{"freq":101}`, steps: `[` + setup + `,{"broadcast":{"machine":"Station","type":"TUNE","state":"Idle"}}]`,
			acc:   "A0 A0 A1 A2",
			insts: []want{I(0, "Station", "Tuned").V(1), I(1, "Station", "Tuned").V(1), I(2, "Station", "Tuned").V(1)}},
		{name: "broadcast: ignored deliveries are not counted", file: f, machine: "Station",
			ctx: `{"freq":101}`, steps: `[` + setup + `,{"broadcast":{"machine":"Station","type":"RESET"}}]`,
			acc:   "A0 A0 A1 A1",
			insts: []want{I(0, "Station", "Idle").V(0), I(1, "Station", "Idle").V(2), I(2, "Station", "Idle").V(0)}},
		{name: "broadcast with rules: only matching instances in the from-state", file: f, machine: "Station",
			ctx: `{"freq":101}`,
			steps: `[{"create":{"machine":"Station","context":{"freq":102}}},
				{"create":{"machine":"Station","context":{"freq":101}}},
				{"type":"TUNE","instance":2},
				{"broadcast":{"machine":"Station","type":"MATCH","payload":{"freq":101}}}]`,
			acc:   "A0 A0 A1 A1",
			insts: []want{I(0, "Station", "Tuned").V(1).Exact(`{"freq":101}`), I(1, "Station", "Idle").V(0), I(2, "Station", "Tuned").V(1)}},
		{name: "broadcast with a state that has no ruled transition: to all in that state", file: f, machine: "Station",
			ctx: `{"freq":101}`, steps: `[` + setup + `,{"broadcast":{"machine":"Station","type":"MATCH","payload":{"freq":102},"state":"Tuned"}}]`,
			acc: "A0 A0 A1 A0", insts: []want{I(1, "Station", "Tuned").V(1)}},
		{name: "broadcast with a state and rules from that state", file: f, machine: "Station",
			ctx: `{"freq":101}`, steps: `[` + setup + `,{"broadcast":{"machine":"Station","type":"MATCH","payload":{"freq":101},"state":"Idle"}}]`,
			acc: "A0 A0 A1 A2", insts: []want{I(0, "Station", "Tuned"), I(1, "Station", "Tuned").V(1), I(2, "Station", "Tuned")}},
		{name: "broadcast payload merges into targets without rules", file: f, machine: "Station",
			ctx:   `{"freq":101}`,
			steps: `[{"broadcast":{"machine":"Station","type":"TUNE","payload":{"station":"jazz"}}}]`,
			acc:   "A1", insts: []want{I(0, "Station", "Tuned").Exact(`{"freq":101,"station":"jazz"}`)}},
		{name: "broadcast skips completed instances", file: f, machine: "Station",
			steps: `[{"create":{"machine":"Station"}},{"type":"OFF"},{"broadcast":{"machine":"Station","type":"TUNE"}}]`,
			acc:   "A0 A1 A1",
			insts: []want{I(0, "Station", "Off").St("completed").V(1), I(1, "Station", "Tuned").V(1)}},
		{name: "broadcast with nobody to receive it", file: f, machine: "Station",
			steps: `[{"broadcast":{"machine":"Station","type":"RESET"}}]`, acc: "?0"},
		{name: "broadcast to an unknown machine is refused", file: f, machine: "Station",
			steps: `[{"broadcast":{"machine":"Nope","type":"TUNE"}}]`, acc: "R0", errs: map[int]string{0: "Nope"}},
	}
}

// Entry points: docs/yaml.md entryMachine, entryMachineMode, autoCreateEntryPoint.
var _ = register(entryScenarios)

func TestEntryPoints(t *testing.T) { runScenarios(t, entryScenarios()) }

func entryScenarios() []scenario {
	return []scenario{
		{name: "singleton: instance 0 is the auto-created entry point", file: "entry_singleton.yaml", machine: "Hub",
			n: 1, path: []string{"Open"}, acc: " ", insts: []want{I(0, "Hub", "Open").St("active").V(0).NoParent()}},
		{name: "singleton: a second create is refused", file: "entry_singleton.yaml", machine: "Hub",
			steps: `[{"create":{"machine":"Hub"}},{"type":"PING"}]`, acc: "R0 A1", n: 1, errs: map[int]string{0: "singleton"}},
		{name: "singleton: simulate on another machine, the entry point is instance 1", file: "entry_singleton.yaml", machine: "Worker",
			ctx: `{"w":1}`, n: 2, acc: " ",
			insts: []want{I(0, "Worker", "Idle").Exact(`{"w":1}`), I(1, "Hub", "Open").St("active")}},
		{name: "singleton: creates after the entry point are numbered from 1", file: "entry_singleton.yaml", machine: "Hub",
			steps: `[{"create":{"machine":"Worker","context":{"w":1}}},{"type":"FINISH","instance":1}]`,
			acc:   "A0 A1", n: 2, insts: []want{I(1, "Worker", "Done").St("completed").Ctx(`{"w":1}`)}},
		{name: "singleton: a completed entry point stays and refuses events", file: "entry_singleton.yaml", machine: "Hub",
			steps: `[{"type":"CLOSE"},{"type":"PING"},{"broadcast":{"machine":"Hub","type":"PING"}}]`,
			acc:   "A1 R0 ?0", errs: map[int]string{1: "completed"}, n: 1,
			insts: []want{I(0, "Hub", "Closed").St("completed").V(1)}},
		{name: "singleton without auto-create: simulate creates instance 0", file: "entry_singleton_noauto.yaml", machine: "Hub",
			ctx: `{"x":1}`, n: 1, acc: " ", insts: []want{I(0, "Hub", "Open").Exact(`{"x":1}`)}},
		{name: "singleton without auto-create: a second create is refused", file: "entry_singleton_noauto.yaml", machine: "Hub",
			steps: `[{"create":{"machine":"Hub"}}]`, acc: "R0", n: 1},
		{name: "singleton without auto-create: nothing created for another machine", file: "entry_singleton_noauto.yaml", machine: "Worker",
			steps: `[{"create":{"machine":"Hub"}},{"create":{"machine":"Hub"}}]`, acc: "A0 R0", n: 2,
			insts: []want{I(0, "Worker", "Idle"), I(1, "Hub", "Open")}},
		{name: "multiple: no auto-create, creates allowed", file: "entry_multiple.yaml", machine: "Hub",
			ctx: `{"x":1}`, steps: `[{"create":{"machine":"Hub","context":{"x":2}}},{"create":{"machine":"Hub"}}]`,
			acc: "A0 A0", n: 3, insts: []want{I(0, "Hub", "Open").Exact(`{"x":1}`), I(1, "Hub", "Open").Exact(`{"x":2}`)}},
		{name: "multiple: another machine, no entry instance", file: "entry_multiple.yaml", machine: "Worker",
			n: 1, acc: " "},
		{name: "multiple with autoCreateEntryPoint: the auto-created one is instance 1", file: "entry_multiple_auto.yaml", machine: "Hub",
			ctx: `{"x":1}`, n: 2, acc: " ",
			insts: []want{I(0, "Hub", "Open").Exact(`{"x":1}`), I(1, "Hub", "Open").Exact(`{}`)}},
		{name: "singleton: a completed entry point still counts, create refused", file: "entry_singleton.yaml", machine: "Hub",
			steps: `[{"type":"CLOSE"},{"create":{"machine":"Hub"}}]`, acc: "A1 R0", n: 1},
		{name: "a refused create does not take an instance number", file: "entry_singleton.yaml", machine: "Hub",
			steps: `[{"create":{"machine":"Hub"}},{"create":{"machine":"Worker"}},{"type":"FINISH","instance":1}]`,
			acc:   "R0 A0 A1", n: 2, insts: []want{I(1, "Worker", "Done")}},
		{name: "auto transition of the auto-created entry point is in the path", file: "entry_spawn.yaml", machine: "Hub",
			n: 1, path: []string{"Boot", "Ready"}, acc: " ", insts: []want{I(0, "Hub", "Ready").V(1)}},
		{name: "singleton entry not duplicated by an inter_machine transition", file: "entry_spawn.yaml", machine: "Worker",
			steps: `[{"type":"SPAWN_HUB"}]`,
			check: func(t *testing.T, r *report) { countMachine(t, r, "Hub", 1) }},
		{name: "singleton entry not duplicated by a cross_component creation", file: "entry_spawn.yaml", machine: "Worker",
			steps: `[{"type":"CLONE_HUB"}]`,
			check: func(t *testing.T, r *report) { countMachine(t, r, "Hub", 1) }},
		{name: "multiple with autoCreateEntryPoint: creates allowed", file: "entry_multiple_auto.yaml", machine: "Worker",
			steps: `[{"create":{"machine":"Hub"}}]`, acc: "A0", n: 3,
			insts: []want{I(0, "Worker", "Idle"), I(1, "Hub", "Open"), I(2, "Hub", "Open")}},
	}
}

// Completion: final and error states.
var _ = register(completionScenarios)

func TestCompletion(t *testing.T) { runScenarios(t, completionScenarios()) }

func completionScenarios() []scenario {
	const f = "completion.yaml"
	return []scenario{
		{name: "final state completes; later events refused", file: f, machine: "Job",
			ctx: `{"k":1}`, steps: `[{"type":"FINISH","payload":{"r":2}},{"type":"POKE"}]`,
			acc: "A1 R0", errs: map[int]string{1: "completed"}, path: []string{"Pending", "Done"},
			insts: []want{I(0, "Job", "Done").St("completed").V(1).Exact(`{"k":1,"r":2}`)}},
		{name: "error state sets status error; later events refused", file: f, machine: "Job",
			steps: `[{"type":"CRASH"},{"type":"POKE"},{"type":"FINISH"}]`,
			acc:   "A1 R0 R0", path: []string{"Pending", "Crashed"},
			insts: []want{I(0, "Job", "Crashed").St("error").V(1)}},
		{name: "timers of a completed instance never fire", file: f, machine: "Job",
			steps: `[{"type":"FINISH"},{"advance":"1h"}]`, acc: "A1 A0",
			insts: []want{I(0, "Job", "Done").St("completed").V(1)}},
		{name: "timeout into an error state", file: f, machine: "Job",
			steps: `[{"advance":"1s"},{"type":"POKE"}]`, acc: "A1 R0",
			insts: []want{I(0, "Job", "Crashed").St("error").V(1)}},
		{name: "completed instances are not broadcast to, and are still listed", file: f, machine: "Job",
			steps: `[{"create":{"machine":"Job"}},{"type":"FINISH","instance":1},{"broadcast":{"machine":"Job","type":"POKE"}}]`,
			acc:   "A0 A1 A1", n: 2,
			insts: []want{I(0, "Job", "Pending").V(1), I(1, "Job", "Done").St("completed").V(1)}},
		{name: "events to a completed non-entry instance are refused", file: f, machine: "Job",
			steps: `[{"create":{"machine":"Job"}},{"type":"FINISH","instance":1},{"type":"POKE","instance":1}]`,
			acc:   "A0 A1 R0", errs: map[int]string{2: "completed"}},
	}
}

// Hooks without handlers and legacy method names.
var _ = register(hookScenarios)

func TestHooksAbsent(t *testing.T) { runScenarios(t, hookScenarios()) }

func hookScenarios() []scenario {
	return []scenario{
		{name: "onEntry/onExit/triggeredMethod/entryMethod/exitMethod without handlers do nothing",
			file: "hooks.yaml", machine: "H", ctx: `{"k":1}`,
			steps: `[{"type":"GO","payload":{"x":1}},{"type":"BACK"},{"type":"GO"},{"type":"END"}]`,
			acc:   "A1 A1 A1 A1", path: []string{"A", "B", "A", "B", "C"},
			insts: []want{I(0, "H", "C").St("completed").V(4).Exact(`{"k":1,"x":1}`)}},
	}
}

// cross_component transitions.
var _ = register(crossScenarios)

func TestCrossComponent(t *testing.T) { runScenarios(t, crossScenarios()) }

func crossScenarios() []scenario {
	const f = "crosscomp.yaml"
	return []scenario{
		{name: "cross_component create in a component not loaded: transition done, no crash", file: f, machine: "Order",
			ctx: `{"id":5}`, steps: `[{"type":"PAY"}]`, acc: "A1", n: 1, path: []string{"Created", "Requested"}},
		{name: "cross_component event to a component not loaded", file: f, machine: "Order",
			ctx: `{"id":5}`, steps: `[{"type":"NOTIFY"}]`, acc: "A1", n: 1, path: []string{"Created", "Notified"}},
		{name: "cascade to a component not loaded", file: f, machine: "Order",
			ctx: `{"id":5}`, steps: `[{"type":"CASCADE"}]`, acc: "A1", n: 1, path: []string{"Created", "Cascaded"}},
		{name: "cross_component to this component creates an instance with the mapped data", file: f, machine: "Order",
			ctx: `{"id":5,"amount":20,"secret":"x"}`, steps: `[{"type":"MAKE_RECEIPT"}]`, acc: "A1", n: 2,
			insts: []want{I(0, "Order", "SelfCreated"), I(1, "Receipt", "Open").V(0).St("active").Exact(`{"ref":5,"total":20}`)}},
		{name: "cross_component creations are numbered as they happen", file: f, machine: "Order",
			ctx:   `{"id":5,"amount":20}`,
			steps: `[{"create":{"machine":"Receipt","context":{"ref":1}}},{"type":"MAKE_RECEIPT"},{"create":{"machine":"Receipt","context":{"ref":3}}}]`,
			acc:   "A0 A1 A0", n: 4,
			insts: []want{I(1, "Receipt", "Open").Ctx(`{"ref":1}`), I(2, "Receipt", "Open").Ctx(`{"ref":5}`), I(3, "Receipt", "Open").Ctx(`{"ref":3}`)}},
		{name: "cross_component without targetMachine creates the entry machine", file: "xcomp_entry.yaml", machine: "Desk",
			ctx: `{"n":1,"m":2}`, steps: `[{"type":"CLONE"}]`, acc: "A1", n: 2,
			insts: []want{I(0, "Desk", "Cloned"), I(1, "Desk", "Idle").V(0).Exact(`{"n":1}`)}},
		{name: "cross_component without contextMapping sends data and payload", file: "xcomp_entry.yaml", machine: "Desk",
			ctx: `{"n":1,"m":2}`, steps: `[{"type":"CLONE_ALL","payload":{"m":3,"p":4}}]`, acc: "A1", n: 2,
			insts: []want{I(1, "Desk", "Idle").Exact(`{"n":1,"m":3,"p":4}`)}},
		{name: "cross_component targetEvent to this component, routed by its rules", file: f, machine: "Order",
			ctx:   `{"id":5}`,
			steps: `[{"create":{"machine":"Receipt","context":{"ref":5}}},{"create":{"machine":"Receipt","context":{"ref":6}}},{"type":"SETTLE_RECEIPT"}]`,
			acc:   "A0 A0 A2",
			insts: []want{I(0, "Order", "SelfSignalled"), I(1, "Receipt", "Settled").St("completed").V(1), I(2, "Receipt", "Open").V(0)}},
	}
}

// contextSchema on create steps ("create an instance as the API would").
var _ = register(schemaScenarios)

func TestContextSchema(t *testing.T) { runScenarios(t, schemaScenarios()) }

func schemaScenarios() []scenario {
	const f = "schema.yaml"
	return []scenario{
		{name: "create: required field missing", file: f, machine: "Ticket", ctx: `{"title":"zero"}`,
			steps: `[{"create":{"machine":"Ticket","context":{}}}]`, acc: "R0", errs: map[int]string{0: "title"}, n: 1},
		{name: "create: option not allowed", file: f, machine: "Ticket", ctx: `{"title":"zero"}`,
			steps: `[{"create":{"machine":"Ticket","context":{"title":"t","priority":"mid"}}}]`, acc: "R0", errs: map[int]string{0: "priority"}, n: 1},
		{name: "create: above max", file: f, machine: "Ticket", ctx: `{"title":"zero"}`,
			steps: `[{"create":{"machine":"Ticket","context":{"title":"t","points":20}}}]`, acc: "R0", errs: map[int]string{0: "points"}, n: 1},
		{name: "create: pattern", file: f, machine: "Ticket", ctx: `{"title":"zero"}`,
			steps: `[{"create":{"machine":"Ticket","context":{"title":"t","code":"abc"}}}]`, acc: "R0", errs: map[int]string{0: "code"}, n: 1},
		{name: "create: defaults applied, numbers from strings coerced", file: f, machine: "Ticket", ctx: `{"title":"zero"}`,
			steps: `[{"create":{"machine":"Ticket","context":{"title":"t","points":"5","code":"ABC"}}}]`, acc: "A0", n: 2,
			insts: []want{I(1, "Ticket", "New").Exact(`{"title":"t","priority":"low","points":5,"code":"ABC"}`)}},
		{name: "create: unknown machine refused", file: f, machine: "Ticket", ctx: `{"title":"zero"}`,
			steps: `[{"create":{"machine":"Nope"}}]`, acc: "R0", errs: map[int]string{0: "Nope"}, n: 1},
	}
}
