package simulate_test

import (
	"context"
	"strings"
	"testing"

	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/internal/simulate"
)

func load(t *testing.T, src string) *component.Component {
	t.Helper()
	c, err := component.Parse([]byte(src), "sim.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func steps(t *testing.T, js string) []simulate.Step {
	t.Helper()
	s, err := simulate.ParseSteps([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const desk = `
name: Desk
entryMachine: Hub
entryMachineMode: singleton
stateMachines:
  - name: Hub
    initialState: Open
    states: [{name: Open}]
    transitions:
      - {from: Open, to: Open, event: SPAWN, type: inter_machine, targetMachine: Task, contextMapping: {n: n}}
      - {from: Open, to: Open, event: TASK_CHANGED}
  - name: Task
    initialState: Todo
    parentLink: {enabled: true, onStateChange: TASK_CHANGED}
    states: [{name: Todo}, {name: Doing}, {name: Done, type: final}]
    transitions:
      - {from: Todo, to: Doing, event: START, matchingRules: [{eventProperty: n, instanceProperty: n}]}
      - {from: Doing, to: Done, event: FINISH}
      - {from: Doing, to: Done, event: TOO_SLOW, type: timeout, timeoutMs: 1000}
`

func TestInstanceNumberingAndSteps(t *testing.T) {
	rep, err := simulate.Run(context.Background(), load(t, desk), simulate.Options{
		Machine: "Task", Context: map[string]any{"n": 0},
		Steps: steps(t, `[
			{"type":"SPAWN","payload":{"n":1},"instance":1},
			{"create":{"machine":"Task","context":{"n":2}}},
			{"broadcast":{"machine":"Task","type":"START","payload":{"n":2}}},
			{"advance":"999ms"},
			{"advance":"1ms"},
			{"type":"FINISH","instance":2},
			{"type":"NOPE"}
		]`)})
	if err != nil {
		t.Fatal(err)
	}
	// 0: the Task simulate created; 1: the auto-created Hub; 2: the spawned Task; 3: created.
	want := []struct{ machine, state, status string }{
		{"Task", "Todo", "active"}, {"Hub", "Open", "active"}, {"Task", "Todo", "active"}, {"Task", "Done", "completed"},
	}
	if len(rep.Instances) != len(want) {
		t.Fatalf("instances: %+v", rep.Instances)
	}
	for i, w := range want {
		in := rep.Instances[i]
		if in.Index != i || in.MachineName != w.machine || in.CurrentState != w.state || string(in.Status) != w.status {
			t.Errorf("instance %d = %+v, want %+v", i, in, w)
		}
	}
	if rep.Instances[2].ParentInstanceID == nil || *rep.Instances[2].ParentInstanceID != rep.Instances[1].ID {
		t.Errorf("child parent link: %+v", rep.Instances[2])
	}
	if rep.Instances[1].Version != 1 { // SPAWN only: instances 0 and 3 have no parent
		t.Errorf("hub version %d, want 1", rep.Instances[1].Version)
	}
	got := []int{}
	for _, s := range rep.Steps {
		got = append(got, s.Processed)
	}
	// SPAWN: hub; create: none; broadcast: instance 3; 999ms: none; 1ms: instance 3 times out;
	// FINISH to instance 2 (in Todo): refused; NOPE: refused.
	if fmtInts(got) != "1,0,1,0,1,0,0" {
		t.Fatalf("processed per step: %v", got)
	}
	if rep.Steps[5].Accepted || rep.Steps[6].Accepted || rep.Steps[6].Error == "" || !rep.Steps[3].Accepted {
		t.Fatalf("accepted: %+v", rep.Steps)
	}
	if strings.Join(rep.Path, ",") != "Todo" {
		t.Fatalf("path %v", rep.Path)
	}
}

func fmtInts(v []int) string {
	var b strings.Builder
	for i, n := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte(byte('0' + n))
	}
	return b.String()
}

func TestSingletonEntryIsInstanceZero(t *testing.T) {
	rep, err := simulate.Run(context.Background(), load(t, desk), simulate.Options{
		Machine: "Hub", Steps: steps(t, `[{"type":"SPAWN","payload":{"n":5}},{"type":"START","payload":{"n":5},"instance":1},{"type":"FINISH","instance":1}]`)})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Instances) != 2 || rep.Instances[0].MachineName != "Hub" || rep.Instances[1].CurrentState != "Done" {
		t.Fatalf("instances: %+v", rep.Instances)
	}
	// The hub self-loops on SPAWN and on each TASK_CHANGED (Doing, Done): 3 transitions.
	if got := strings.Join(rep.Path, ","); got != "Open,Open,Open,Open" || rep.Instances[0].Version != 3 {
		t.Fatalf("path %s version %d", got, rep.Instances[0].Version)
	}
}

func TestParseStepsRejectsBadSteps(t *testing.T) {
	for _, bad := range []string{`{}`, `[{}]`, `[{"type":"A","advance":"1s"}]`, `[{"advance":"soon"}]`, `[{"typo":1}]`} {
		if _, err := simulate.ParseSteps([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
