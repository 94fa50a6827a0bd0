package component

import (
	"errors"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

// minimal is a valid component to build test cases from.
const minimal = `name: Demo
stateMachines:
  - name: M
    initialState: A
    states:
      - name: A
      - name: B
        type: final
    transitions:
      - from: A
        to: B
        event: GO
`

// marker marks, in a test document, where the expected problem is; it is removed before parsing.
const marker = "⟨"

// unmark removes the marker from src and returns the 1-based line and column it was at.
func unmark(t *testing.T, src string) (string, int, int) {
	t.Helper()
	i := strings.Index(src, marker)
	if i < 0 {
		t.Fatalf("no marker in %q", src)
	}
	before := src[:i]
	line := strings.Count(before, "\n") + 1
	col := utf8.RuneCountInString(before[strings.LastIndex(before, "\n")+1:]) + 1
	return before + src[i+len(marker):], line, col
}

type problemCase struct {
	name string
	src  string // with a marker where the problem must be reported
	path string
	msg  string // substring of the message
}

func TestLoadErrors(t *testing.T) {
	cases := []problemCase{
		{"missing name", "⟨stateMachines:\n  - name: M\n    initialState: A\n    states: [{name: A}]\n", "name", `missing required key "name"`},
		{"invalid component name", "name: ⟨9lives\n" + minimal[len("name: Demo\n"):], "name", `invalid component name "9lives"`},
		{"name with space", "name: ⟨\"my comp\"\n" + minimal[len("name: Demo\n"):], "name", `invalid component name "my comp"`},
		{"missing stateMachines", "⟨name: X\nversion: 1.0.0\n", "stateMachines", `missing required key "stateMachines"`},
		{"empty stateMachines", "name: X\nstateMachines: ⟨[]\n", "stateMachines", "at least one machine"},
		{"stateMachines is a string", "name: X\nstateMachines: ⟨oops\n", "stateMachines", `stateMachines must be a list, got "oops"`},
		{"machine is a string", "name: X\nstateMachines:\n  - ⟨Order\n", "stateMachines[0]", `stateMachines[0] must be a mapping, got "Order"`},
		{"missing initialState", "name: X\nstateMachines:\n  - ⟨name: M\n    states:\n      - name: A\n", "stateMachines[0].initialState", `missing required key "initialState"`},
		{"missing states", "name: X\nstateMachines:\n  - ⟨name: M\n    initialState: A\n", "stateMachines[0].states", `missing required key "states"`},
		{"empty states", "name: X\nstateMachines:\n  - name: M\n    initialState: A\n    states: ⟨[]\n", "stateMachines[0].states", "at least one state"},
		{"states is a mapping", "name: X\nstateMachines:\n  - name: M\n    initialState: A\n    states:\n      ⟨name: A\n", "stateMachines[0].states", "states must be a list, got a mapping"},
		{"empty state name", "name: X\nstateMachines:\n  - name: M\n    initialState: A\n    states:\n      - name: ⟨\"\"\n      - name: A\n", "stateMachines[0].states[0].name", "name must not be empty"},
		{"duplicate machine", minimal + "  - name: ⟨M\n    initialState: A\n    states: [{name: A, type: final}]\n", "stateMachines[1].name", `duplicate machine name "M" (first declared at line 3)`},
		{"duplicate state", strings.Replace(minimal, "      - name: B\n", "      - name: B\n      - name: ⟨A\n", 1), "stateMachines[0].states[2].name", `duplicate state name "A" in machine "M" (first declared at line 6)`},
		{"unknown initialState", strings.Replace(minimal, "initialState: A", "initialState: ⟨Z", 1), "stateMachines[0].initialState", `unknown state "Z" in initialState (declared states: A, B)`},
		{"unknown to", `name: Expenses
stateMachines:
  - name: Request
    initialState: Draft
    states:
      - name: Draft
      - name: Approved
        type: final
    transitions:
      - from: Draft
        to: ⟨Apprved
        event: APPROVE
`, "stateMachines[0].transitions[0].to", `unknown state "Apprved" in to (declared states: Draft, Approved)`},
		{"unknown from", strings.Replace(minimal, "from: A", "from: ⟨Start", 1), "stateMachines[0].transitions[0].from", `unknown state "Start" in from (declared states: A, B)`},
		{"unknown entryMachine", "entryMachine: ⟨Nope\n" + minimal, "entryMachine", `unknown machine "Nope" in entryMachine (declared machines: M)`},
		{"unknown entryMachineMode", "entryMachine: M\nentryMachineMode: ⟨single\n" + minimal, "entryMachineMode", `unknown entryMachineMode "single" (did you mean "singleton"?)`},
		{"unknown state type", strings.Replace(minimal, "type: final", "type: ⟨finale", 1), "stateMachines[0].states[1].type", `unknown type "finale" (did you mean "final"?); expected one of entry, regular, final, error`},
		{"unknown transition type", minimal + "        type: ⟨timout\n        timeoutMs: 10\n", "stateMachines[0].transitions[0].type", `unknown type "timout" (did you mean "timeout"?)`},
		{"timeout without timeoutMs", strings.Replace(minimal, "      - from: A", "      - ⟨from: A", 1) + "        type: timeout\n", "stateMachines[0].transitions[0].timeoutMs", "timeout transition needs a positive timeoutMs"},
		{"timeout with zero timeoutMs", minimal + "        type: timeout\n        timeoutMs: ⟨0\n", "stateMachines[0].transitions[0].timeoutMs", "timeoutMs must be positive for a timeout transition, got 0"},
		{"timeoutMs not a number", minimal + "        type: timeout\n        timeoutMs: ⟨soon\n", "stateMachines[0].transitions[0].timeoutMs", `timeoutMs must be an integer, got "soon"`},
		{"auto with negative timeoutMs", minimal + "        type: auto\n        timeoutMs: ⟨-5\n", "stateMachines[0].transitions[0].timeoutMs", "must not be negative"},
		{"resetOnTransition not a bool", minimal + "        type: timeout\n        timeoutMs: 5\n        resetOnTransition: ⟨maybe\n", "stateMachines[0].transitions[0].resetOnTransition", `resetOnTransition must be a boolean (true or false), got "maybe"`},
		{"inter_machine without targetMachine", strings.Replace(minimal, "      - from: A", "      - ⟨from: A", 1) + "        type: inter_machine\n", "stateMachines[0].transitions[0].targetMachine", "inter_machine transition needs targetMachine"},
		{"inter_machine with unknown targetMachine", minimal + "        type: inter_machine\n        targetMachine: ⟨Ghost\n", "stateMachines[0].transitions[0].targetMachine", `unknown machine "Ghost" in targetMachine (declared machines: M)`},
		{"cross_component without targetComponent", strings.Replace(minimal, "      - from: A", "      - ⟨from: A", 1) + "        type: cross_component\n", "stateMachines[0].transitions[0].targetComponent", "cross_component transition needs targetComponent"},
		{"targetEvent without matchingRules", minimal + "        type: cross_component\n        targetComponent: Other\n        targetEvent: ⟨PING\n", "stateMachines[0].transitions[0].targetEvent", `targetEvent "PING" needs matchingRules`},
		{"matching rule without eventProperty", minimal + "        matchingRules:\n          - ⟨instanceProperty: id\n", "stateMachines[0].transitions[0].matchingRules[0].eventProperty", `missing required key "eventProperty"`},
		{"matching rule without instanceProperty", minimal + "        matchingRules:\n          - ⟨eventProperty: id\n", "stateMachines[0].transitions[0].matchingRules[0].instanceProperty", `missing required key "instanceProperty"`},
		{"matching rule with unknown operator", minimal + "        matchingRules:\n          - eventProperty: id\n            instanceProperty: id\n            operator: ⟨\"~=\"\n", "stateMachines[0].transitions[0].matchingRules[0].operator", `unknown operator "~="`},
		{"matchingRules is a mapping", minimal + "        matchingRules: ⟨{eventProperty: a, instanceProperty: b}\n", "stateMachines[0].transitions[0].matchingRules", "matchingRules must be a list, got a mapping"},
		{"contextMapping value not a string", minimal + "        type: inter_machine\n        targetMachine: M\n        contextMapping:\n          id: ⟨[a, b]\n", "stateMachines[0].transitions[0].contextMapping.id", "id must be a string, got a list"},
		{"notifyParent without event", minimal + "        notifyParent: ⟨{includeContext: true}\n", "stateMachines[0].transitions[0].notifyParent.event", `missing required key "event"`},
		{"cascade without event", strings.Replace(minimal, "      - name: A\n", "      - name: A\n        cascadingRules:\n          - ⟨targetMachine: M\n            targetState: B\n", 1), "stateMachines[0].states[0].cascadingRules[0].event", `missing required key "event"`},
		{"cascade without targetState", strings.Replace(minimal, "      - name: A\n", "      - name: A\n        cascadingRules:\n          - ⟨targetMachine: M\n            event: GO\n", 1), "stateMachines[0].states[0].cascadingRules[0].targetState", `missing required key "targetState"`},
		{"cascade to unknown machine", strings.Replace(minimal, "      - name: A\n", "      - name: A\n        cascadingRules:\n          - targetMachine: ⟨Ghost\n            targetState: A\n            event: GO\n", 1), "stateMachines[0].states[0].cascadingRules[0].targetMachine", `unknown machine "Ghost" in targetMachine (declared machines: M)`},
		{"cascade to unknown state", strings.Replace(minimal, "      - name: A\n", "      - name: A\n        cascadingRules:\n          - targetMachine: M\n            targetState: ⟨Nowhere\n            event: GO\n", 1), "stateMachines[0].states[0].cascadingRules[0].targetState", `unknown state "Nowhere" in targetState (states of machine M: A, B)`},
		{"cascade payload not a mapping", strings.Replace(minimal, "      - name: A\n", "      - name: A\n        cascadingRules:\n          - targetMachine: M\n            targetState: A\n            event: GO\n            payload: ⟨[1, 2]\n", 1), "stateMachines[0].states[0].cascadingRules[0].payload", "payload must be a mapping, got a list"},
		{"guard syntax error, quoted", minimal + "        guard: \"context.amount > 5000 ⟨)\"\n", "stateMachines[0].transitions[0].guard", `invalid guard expression "context.amount > 5000 )": unexpected token Bracket(")")`},
		{"guard syntax error, plain", minimal + "        guard: context.amount ⟨>\n", "stateMachines[0].transitions[0].guard", "unexpected token EOF"},
		{"guard syntax error, in guards list", minimal + "        guards:\n          - context.ok\n          - expression: 'context.a === ⟨=== 1'\n", "stateMachines[0].transitions[0].guards[1].expression", "unexpected token"},
		{"guard syntax error, literal block", minimal + "        guard:\n          expression: |\n            context.a > 1 &&\n            context.b ⟨)\n", "stateMachines[0].transitions[0].guard.expression", "unexpected token"},
		{"guard unknown variable", minimal + "        guard: \"⟨amount > 5\"\n", "stateMachines[0].transitions[0].guard", "unknown name amount (guards can use context, event, payload and publicMember)"},
		{"guard unknown event field", minimal + "        guard: \"event.⟨name == 'x'\"\n", "stateMachines[0].transitions[0].guard", "event has no field name"},
		{"guard not boolean", minimal + "        guard: ⟨1 + 2\n", "stateMachines[0].transitions[0].guard", "expected bool, but got int"},
		{"guard empty", minimal + "        guard: ⟨\"  \"\n", "stateMachines[0].transitions[0].guard", "empty guard expression"},
		{"guard without expression", minimal + "        guard: ⟨{description: nothing}\n", "stateMachines[0].transitions[0].guard.expression", `missing required key "expression"`},
		{"guard is a list", minimal + "        guard: ⟨[a, b]\n", "stateMachines[0].transitions[0].guard", "a guard must be an expression string or {expression: …}, got a list"},
		{"specificTriggeringRule syntax error", minimal + "        specificTriggeringRule: \"context.q =⟨=\"\n", "stateMachines[0].transitions[0].specificTriggeringRule", "unexpected token EOF"},
		{"schema unknown field type", strings.Replace(minimal, "    states:\n", "    contextSchema:\n      qty:\n        type: ⟨integer\n    states:\n", 1), "stateMachines[0].contextSchema.qty.type", `unknown type "integer"; expected one of text, string, number, boolean, select, array`},
		{"schema field without type", strings.Replace(minimal, "    states:\n", "    contextSchema:\n      qty:\n        ⟨label: Quantity\n    states:\n", 1), "stateMachines[0].contextSchema.qty.type", `missing required key "type"`},
		{"schema select without options", strings.Replace(minimal, "    states:\n", "    contextSchema:\n      kind:\n        ⟨type: select\n    states:\n", 1), "stateMachines[0].contextSchema.kind.options", "select field needs options"},
		{"schema select with empty options", strings.Replace(minimal, "    states:\n", "    contextSchema:\n      kind:\n        type: select\n        options: ⟨[]\n    states:\n", 1), "stateMachines[0].contextSchema.kind.options", "select field needs at least one option"},
		{"schema option without value", strings.Replace(minimal, "    states:\n", "    contextSchema:\n      kind:\n        type: select\n        options:\n          - ⟨label: A\n    states:\n", 1), "stateMachines[0].contextSchema.kind.options[0].value", `missing required key "value"`},
		{"schema min greater than max", strings.Replace(minimal, "    states:\n", "    contextSchema:\n      qty:\n        type: number\n        min: 5\n        max: ⟨1\n    states:\n", 1), "stateMachines[0].contextSchema.qty.max", "max (1) is less than min (5)"},
		{"schema min not a number", strings.Replace(minimal, "    states:\n", "    contextSchema:\n      qty:\n        type: number\n        min: ⟨five\n    states:\n", 1), "stateMachines[0].contextSchema.qty.min", `min must be a number, got "five"`},
		{"schema bad pattern", strings.Replace(minimal, "    states:\n", "    contextSchema:\n      code:\n        type: text\n        pattern: ⟨\"([a-z\"\n    states:\n", 1), "stateMachines[0].contextSchema.code.pattern", `invalid pattern "([a-z": missing closing ]`},
		{"schema bad default", strings.Replace(minimal, "    states:\n", "    contextSchema:\n      qty:\n        type: number\n        default: ⟨abc\n    states:\n", 1), "stateMachines[0].contextSchema.qty.default", "default must be a number, got a string"},
		{"schema field is a string", strings.Replace(minimal, "    states:\n", "    contextSchema:\n      qty: ⟨number\n    states:\n", 1), "stateMachines[0].contextSchema.qty", `must be a mapping, got "number"`},
		{"duplicate key", strings.Replace(minimal, "initialState: A\n", "initialState: A\n    ⟨initialState: B\n", 1), "stateMachines[0].initialState", `duplicate key "initialState" (first at line 4)`},
		{"duplicate key in metadata", "metadata:\n  a: 1\n  ⟨a: 2\n" + minimal, "", `duplicate key "a" (first at line 2)`},
		{"document is a list", "⟨- name: X\n", "", "the document must be a mapping, got a list"},
		{"empty document", "⟨", "", "empty document"},
		{"null document", "⟨~\n", "", "empty document"},
		{"self-containing anchor", "⟨name: X\nstateMachines: &x [*x]\n", "", "anchor 'x' value contains itself"},
		{"YAML bad indentation", "name: X\nstateMachines:\n  - name: M\n    initialState: A\n    states:\n      - name: A\n     ⟨- name: B\n", "", "YAML syntax error: did not find expected key"},
		{"YAML tab", "name: X\nstateMachines:\n⟨\t- name: M\n", "", "YAML syntax error: found character that cannot start any token"},
		{"YAML mapping value in a scalar", "name: X⟨: Y\nstateMachines: []\n", "", "YAML syntax error: mapping values are not allowed in this context"},
		{"YAML unclosed flow", minimal + "        matchingRules: [⟨{eventProperty: a\nfoo: bar\n", "", "YAML syntax error: did not find expected ',' or '}'"},
		{"YAML unknown anchor", minimal + "        guard: ⟨*nothing\n", "", "YAML syntax error: unknown anchor 'nothing' referenced"},
		{"two documents", minimal + "⟨---\nname: Other\n", "", "a file holds one component: found a second YAML document"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, line, col := unmark(t, tc.src)
			_, err := Parse([]byte(src), "case.yaml")
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Parse: err = %v, want a *LoadError", err)
			}
			for _, p := range le.Problems {
				if p.Severity != SeverityError {
					t.Errorf("LoadError holds a %s: %s", p.Severity, p)
				}
				if strings.Contains(p.Message, tc.msg) {
					if p.Pos != (Pos{File: "case.yaml", Line: line, Col: col}) || p.Path != tc.path {
						t.Errorf("got %s\nwant case.yaml:%d:%d: error: %s: …%s…", p, line, col, tc.path, tc.msg)
					}
					return
				}
			}
			t.Errorf("no error containing %q in:\n%v", tc.msg, err)
		})
	}
}

func TestLoadErrorListsAllProblemsInFileOrder(t *testing.T) {
	src := `name: Broken
entryMachine: Nope
stateMachines:
  - name: M
    initialState: Z
    states:
      - name: A
        type: bogus
    transitions:
      - from: A
        to: Q
        event: GO
        type: timeout
`
	_, err := Parse([]byte(src), "broken.yaml")
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatal(err)
	}
	var lines []int
	for _, p := range le.Problems {
		lines = append(lines, p.Pos.Line)
	}
	want := []int{2, 5, 8, 10, 11}
	if len(lines) != len(want) {
		t.Fatalf("problems:\n%v", err)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Fatalf("problem lines = %v, want %v:\n%v", lines, want, err)
		}
	}
}

func TestWarnings(t *testing.T) {
	cases := []problemCase{
		{"unreachable state", strings.Replace(minimal, "      - name: B\n", "      - name: ⟨Lost\n        type: final\n      - name: B\n", 1), "stateMachines[0].states[1].name", `state "Lost" is unreachable from initial state "A"`},
		{"dead end", `name: X
stateMachines:
  - name: M
    initialState: A
    states:
      - name: A
      - name: ⟨Stuck
      - name: Done
        type: final
    transitions:
      - from: A
        to: Stuck
        event: GO
      - from: A
        to: Done
        event: END
`, "stateMachines[0].states[1].name", `state "Stuck" is a dead end`},
		{"dead end in an entry singleton", `name: X
entryMachine: M
stateMachines:
  - name: M
    initialState: A
    states:
      - name: ⟨A
`, "stateMachines[0].states[0].name", `state "A" is a dead end`},
		{"no final state reachable", `name: X
stateMachines:
  - ⟨name: Loop
    initialState: A
    states:
      - name: A
      - name: B
    transitions:
      - from: A
        to: B
        event: NEXT
      - from: B
        to: A
        event: BACK
`, "stateMachines[0]", `no final or error state is reachable from initial state "A"`},
		{"indistinguishable transitions", minimal + "      - ⟨from: A\n        to: A\n        event: GO\n", "stateMachines[0].transitions[1]", `transition A --GO--> A is never taken: the transition at line 10 leaves "A" on the same event`},
		{"timeout loop that never ends", `name: X
stateMachines:
  - name: M
    initialState: A
    states:
      - name: A
      - name: ⟨Waiting
      - name: Done
        type: final
    transitions:
      - from: A
        to: Waiting
        event: WAIT
      - from: A
        to: Done
        event: END
      - from: Waiting
        to: Waiting
        event: TICK
        type: timeout
        timeoutMs: 1000
`, "stateMachines[0].states[1].name", `state "Waiting" can never be left: its only way out is a timeout that loops back to it`},
		{"only self-loops", `name: X
stateMachines:
  - name: M
    initialState: A
    states:
      - name: A
      - name: ⟨Spin
      - name: Done
        type: final
    transitions:
      - from: A
        to: Spin
        event: SPIN
      - from: A
        to: Done
        event: END
      - from: Spin
        to: Spin
        event: AGAIN
`, "stateMachines[0].states[1].name", `state "Spin" is a dead end: all its transitions loop back to it`},
		{"unknown top-level key", "⟨owner: me\n" + minimal, "owner", `unknown key "owner"`},
		{"typo in a transition key", minimal + "        ⟨timeoutMS: 5000\n", "stateMachines[0].transitions[0].timeoutMS", `unknown key "timeoutMS" (did you mean "timeoutMs"?)`},
		{"typo by case", strings.Replace(minimal, "      - name: A\n", "      - name: A\n        ⟨OnEntry: start\n", 1), "stateMachines[0].states[0].OnEntry", `unknown key "OnEntry" (did you mean "onEntry"?)`},
		{"typo in a machine key", strings.Replace(minimal, "    initialState: A\n", "    initialState: A\n    ⟨publicMembertype: X\n", 1), "stateMachines[0].publicMembertype", `unknown key "publicMembertype" (did you mean "publicMemberType"?)`},
		{"typo in a matching rule", minimal + "        matchingRules:\n          - eventProperty: a\n            instanceProperty: b\n            ⟨operater: '>'\n", "stateMachines[0].transitions[0].matchingRules[0].operater", `(did you mean "operator"?)`},
		{"typo in a schema field", strings.Replace(minimal, "    states:\n", "    contextSchema:\n      qty:\n        type: number\n        ⟨requried: true\n    states:\n", 1), "stateMachines[0].contextSchema.qty.requried", `(did you mean "required"?)`},
		{"targetMachine on a regular transition", minimal + "        ⟨targetMachine: M\n", "stateMachines[0].transitions[0].targetMachine", `targetMachine is ignored on a regular transition (did you mean type: inter_machine?)`},
		{"timeoutMs on a regular transition", minimal + "        ⟨timeoutMs: 5\n", "stateMachines[0].transitions[0].timeoutMs", "timeoutMs is only used by timeout and auto transitions"},
		{"legacy guard form", minimal + "        guards:\n          - ⟨customFunction: \"x > 1\"\n", "stateMachines[0].transitions[0].guards[0].customFunction", `legacy guard form "customFunction" is not evaluated`},
		{"parentLink without event", strings.Replace(minimal, "    states:\n", "    parentLink: ⟨{enabled: true}\n    states:\n", 1), "stateMachines[0].parentLink", "parentLink is enabled but has no onStateChange event"},
		{"parentLink not enabled", strings.Replace(minimal, "    states:\n", "    parentLink: {onStateChange: ⟨CHANGED}\n    states:\n", 1), "stateMachines[0].parentLink.onStateChange", "ignored unless enabled: true"},
		{"autoCreateEntryPoint without entryMachine", "autoCreateEntryPoint: ⟨true\n" + minimal, "autoCreateEntryPoint", "autoCreateEntryPoint has no effect without entryMachine"},
		{"both onEntry and entryMethod", strings.Replace(minimal, "      - name: A\n", "      - name: A\n        onEntry: a\n        ⟨entryMethod: b\n", 1), "stateMachines[0].states[0].entryMethod", `both onEntry and its legacy alias entryMethod are given; onEntry "a" is used`},
		{"options on a text field", strings.Replace(minimal, "    states:\n", "    contextSchema:\n      code:\n        type: text\n        ⟨options: [a]\n    states:\n", 1), "stateMachines[0].contextSchema.code.options", "options are only used by select fields"},
		{"cascaded event not handled", strings.Replace(minimal, "      - name: A\n", "      - name: A\n        cascadingRules:\n          - targetMachine: M\n            targetState: A\n            event: ⟨NOPE\n", 1), "stateMachines[0].states[0].cascadingRules[0].event", `machine M has no transition from A on "NOPE"`},
		{"unknown layout algorithm", "layout:\n  algorithm: ⟨circle\n" + minimal, "layout.algorithm", `unknown layout algorithm "circle"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, line, col := unmark(t, tc.src)
			c, err := Parse([]byte(src), "case.yaml")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			for _, p := range c.Warnings {
				if p.Severity != SeverityWarning {
					t.Errorf("Warnings holds a %s: %s", p.Severity, p)
				}
				if strings.Contains(p.Message, tc.msg) {
					if p.Pos != (Pos{File: "case.yaml", Line: line, Col: col}) || p.Path != tc.path {
						t.Errorf("got %s\nwant case.yaml:%d:%d: warning: %s: …%s…", p, line, col, tc.path, tc.msg)
					}
					return
				}
			}
			t.Errorf("no warning containing %q in %v", tc.msg, c.Warnings)
		})
	}
}

func TestNoAmbiguityWarningWhenSomethingTellsTransitionsApart(t *testing.T) {
	for name, extra := range map[string]string{
		"guard on the first":          "        guard: context.x > 1\n      - from: A\n        to: A\n        event: GO\n",
		"guard on the second":         "      - from: A\n        to: A\n        event: GO\n        guard: context.x > 1\n",
		"matchingRules on the second": "      - from: A\n        to: A\n        event: GO\n        matchingRules: [{eventProperty: id, instanceProperty: id}]\n",
		"other event":                 "      - from: A\n        to: A\n        event: OTHER\n",
	} {
		c, err := Parse([]byte(minimal+extra), "ok.yaml")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, w := range c.Warnings {
			t.Errorf("%s: unexpected warning %s", name, w)
		}
	}
}

func TestValidateSet(t *testing.T) {
	order, payment := load(t, "order.yaml"), load(t, "payment.yaml")
	ps := ValidateSet([]*Component{order})
	if len(ps) != 3 {
		t.Fatalf("order alone: %v", ps)
	}
	for _, p := range ps {
		if p.Severity != SeverityWarning || !strings.Contains(p.Message, `component "PaymentComponent" is not loaded (loaded components: OrderComponent)`) {
			t.Errorf("problem = %s", p)
		}
	}
	if ps[0].Path != "stateMachines[0].states[1].cascadingRules[0].targetComponent" || ps[0].Pos.Line != 24 {
		t.Errorf("first = %s", ps[0])
	}

	other := func(src string) *Component {
		c, err := Parse([]byte(src), "other.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// A PaymentComponent with another machine name and no ABORT handler.
	wrong := other(`name: PaymentComponent
stateMachines:
  - name: Pay
    initialState: Pending
    states:
      - name: Pending
      - name: Done
        type: final
    transitions:
      - from: Pending
        to: Done
        event: PROCESS
`)
	want := []string{
		`stateMachines[0].states[1].cascadingRules[0].targetMachine: component PaymentComponent has no machine "Payment" (its machines: Pay)`,
		`stateMachines[0].transitions[0].targetMachine: component PaymentComponent has no machine "Payment" (its machines: Pay)`,
		`stateMachines[0].transitions[2].targetMachine: no targetMachine given and component PaymentComponent has no entryMachine`,
	}
	got := ValidateSet([]*Component{order, wrong})
	assertProblems(t, got, want)

	renamed := other(strings.Replace(strings.Replace(string(mustRead(t, "testdata/payment.yaml")), "event: ABORT", "event: CANCEL", 1), "event: PROCESS", "event: START", 1))
	got = ValidateSet([]*Component{order, renamed})
	assertProblems(t, got, []string{
		`stateMachines[0].states[1].cascadingRules[0].event: machine PaymentComponent.Payment has no transition from Pending on "PROCESS": the event will be ignored`,
		`stateMachines[0].transitions[2].targetEvent: machine PaymentComponent.Payment has no transition on "ABORT": the event will be ignored`,
	})

	dup := ValidateSet([]*Component{payment, payment})
	if len(dup) != 1 || dup[0].Severity != SeverityError || !strings.Contains(dup[0].Message, "loaded twice") {
		t.Errorf("duplicate components: %v", dup)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func assertProblems(t *testing.T, got []Problem, want []string) {
	t.Helper()
	var lines []string
	for _, p := range got {
		lines = append(lines, p.Path+": "+p.Message)
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestMatchingRulePathPrefixesWarn(t *testing.T) {
	src := `name: P
stateMachines:
  - name: M
    initialState: A
    states: [{name: A}, {name: B, type: final}]
    transitions:
      - from: A
        to: B
        event: GO
        matchingRules:
          - {eventProperty: payload.customerId, instanceProperty: context.customerId}
`
	c, err := Parse([]byte(src), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, w := range c.Warnings {
		msgs = append(msgs, w.String())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{`p.yaml:11:29: warning`, `did you mean "customerId"`, `looks for a key "context"`} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
}
