package component

import (
	"strings"
	"testing"
)

const diagramSource = `name: Shop
entryMachine: Order
stateMachines:
  - name: Order
    initialState: Draft
    states:
      - name: Draft
        type: entry
      - name: Waiting
      - name: Paid
        type: final
      - name: Failed
        type: error
      - name: Orphan
        type: final
    transitions:
      - from: Draft
        to: Waiting
        event: PAY
        type: cross_component
        targetComponent: Billing
      - from: Waiting
        to: Waiting
        event: SPAWN
        type: inter_machine
        targetMachine: Item
      - from: Waiting
        to: Paid
        event: PAID
        matchingRules:
          - {eventProperty: orderId, instanceProperty: id}
          - {eventProperty: total, instanceProperty: amount, operator: ">="}
      - from: Waiting
        to: Failed
        event: EXPIRE
        type: timeout
        timeoutMs: 5000
      - from: Waiting
        to: Waiting
        event: TICK
        type: auto
        timeoutMs: 100
      - from: Draft
        to: Paid
        event: FREE
        guard: context.amount < 1
  - name: Item
    initialState: New
    states:
      - name: New
      - name: Done
        type: final
    transitions:
      - {from: New, to: Done, event: FINISH}
`

func diagramComponent(t *testing.T) *Component {
	t.Helper()
	c, err := Parse([]byte(diagramSource), "shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMermaid(t *testing.T) {
	c := diagramComponent(t)
	got := Mermaid(c.Machine("Order"), DiagramOptions{})
	want := `stateDiagram-v2
    [*] --> Draft
    Draft --> Waiting: 📡 PAY → Billing
    Waiting --> Waiting: 🔗 SPAWN → Item
    Waiting --> Paid: PAID 🔑id=orderId 🔑amount#gt;=total
    Waiting --> Failed: EXPIRE ⏱ 5000ms
    Waiting --> Waiting: TICK ⚡ 100ms
    Draft --> Paid: FREE [context.amount #lt; 1]
    Paid --> [*]
    Failed --> [*]
    Orphan --> [*]
    classDef unreachableState fill:#e5e7eb,stroke:#9ca3af,stroke-width:1px,color:#6b7280,stroke-dasharray:3
    class Orphan unreachableState
    classDef entryState fill:#fbbf24,stroke:#f59e0b,stroke-width:3px,color:#000
    class Draft entryState
    classDef errorState fill:#ef4444,stroke:#dc2626,stroke-width:3px,color:#fff
    class Failed errorState
    classDef finalState fill:#10b981,stroke:#059669,stroke-width:3px,color:#fff
    class Paid finalState
`
	if got != want {
		t.Errorf("Mermaid:\n%s\nwant:\n%s", got, want)
	}
}

func TestMermaidCurrentStateAndCounts(t *testing.T) {
	c := diagramComponent(t)
	got := Mermaid(c.Machine("Order"), DiagramOptions{CurrentState: "Waiting", Counts: map[string]int{"Waiting": 3, "Draft": 0}})
	for _, line := range []string{
		`    state "Draft (0)" as Draft`,
		`    state "Waiting (3)" as Waiting`,
		"    class Waiting currentState",
		"    class Draft,Orphan unreachableState", // not reachable from the current state
		"    class Failed errorState",
		"    class Paid finalState",
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("missing %q in:\n%s", line, got)
		}
	}
	if strings.Contains(got, "entryState") {
		t.Errorf("the entry state is unreachable from Waiting:\n%s", got)
	}
}

func TestMermaidEscaping(t *testing.T) {
	m := &Machine{
		Name:         "Weird",
		InitialState: "Start here",
		States:       []*State{{Name: "Start here"}, {Name: `Say "hi"`, Type: StateFinal}, {Name: "end"}},
		Transitions: []*Transition{
			{From: "Start here", To: `Say "hi"`, Event: "GO;\nclassDef x fill:red", Type: Regular},
		},
	}
	got := Mermaid(m, DiagramOptions{})
	want := `stateDiagram-v2
    state "Start here" as s0
    state "Say #quot;hi#quot;" as s1
    state "end" as s2
    [*] --> s0
    s0 --> s1: GO#59; classDef x fill#58;red
    s1 --> [*]
    classDef unreachableState fill:#e5e7eb,stroke:#9ca3af,stroke-width:1px,color:#6b7280,stroke-dasharray:3
    class s2 unreachableState
    classDef entryState fill:#fbbf24,stroke:#f59e0b,stroke-width:3px,color:#000
    class s0 entryState
    classDef finalState fill:#10b981,stroke:#059669,stroke-width:3px,color:#fff
    class s1 finalState
`
	if got != want {
		t.Errorf("Mermaid:\n%s\nwant:\n%s", got, want)
	}
}

func TestMermaidComponent(t *testing.T) {
	c := diagramComponent(t)
	got := MermaidComponent(c, DiagramOptions{CurrentStates: map[string]string{"Item": "New"}})
	for _, line := range []string{
		`    state "Order" as m0 {`,
		`        state "Draft" as m0_Draft`,
		"        [*] --> m0_Draft",
		"        m0_Waiting --> m0_Paid: PAID 🔑id=orderId 🔑amount#gt;=total",
		`    state "Item" as m1 {`,
		"        m1_Done --> [*]",
		`    state "📡 Billing" as ext0`,
		"    m0 --> ext0: 📡 PAY",
		"    m0 --> m1: 🔗 SPAWN",
		"    class m1_New currentState",
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("missing %q in:\n%s", line, got)
		}
	}
}

func TestDot(t *testing.T) {
	c := diagramComponent(t)
	got := Dot(c.Machine("Order"), DiagramOptions{CurrentState: "Waiting"})
	for _, line := range []string{
		`digraph "Order" {`,
		`    "[*]" -> "Draft";`,
		`    "Waiting" [label="Waiting", fillcolor="#3b82f6", color="#1d4ed8", penwidth=3, fontcolor="white"];`,
		`    "Paid" [label="Paid", fillcolor="#10b981", color="#059669", fontcolor="white", peripheries=2];`,
		`    "Draft" -> "Waiting" [label="📡 PAY → Billing", color="#7c3aed", fontcolor="#7c3aed", penwidth=2];`,
		`    "Waiting" -> "Waiting" [label="🔗 SPAWN → Item", color="#16a34a", fontcolor="#16a34a", penwidth=2];`,
		`    "Waiting" -> "Failed" [label="EXPIRE ⏱ 5000ms", style=dashed];`,
		`    "Draft" -> "Paid" [label="FREE [context.amount < 1]"];`,
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("missing %q in:\n%s", line, got)
		}
	}
	if !strings.HasSuffix(got, "}\n") {
		t.Errorf("not closed:\n%s", got)
	}

	m := &Machine{Name: `a "b"`, InitialState: `x\y`, States: []*State{{Name: `x\y`}}, Transitions: []*Transition{
		{From: `x\y`, To: `x\y`, Event: "E\"\n}", Type: Regular},
	}}
	got = Dot(m, DiagramOptions{})
	for _, line := range []string{`digraph "a \"b\"" {`, `    "x\\y" -> "x\\y" [label="E\"\n}"];`} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("missing %q in:\n%s", line, got)
		}
	}
}

func TestDotComponent(t *testing.T) {
	c := diagramComponent(t)
	got := DotComponent(c, DiagramOptions{})
	for _, line := range []string{
		`digraph "Shop" {`,
		"    subgraph cluster_0 {",
		`        label="Order";`,
		`        "Order/Draft" -> "Order/Waiting" [label="📡 PAY → Billing", color="#7c3aed", fontcolor="#7c3aed", penwidth=2];`,
		`    "component/Billing" [label="📡 Billing", shape=component, fillcolor="#ede9fe"];`,
		`    "Order/Waiting" -> "component/Billing" [label="📡 PAY", style=dashed, color="#7c3aed"];`,
		`    "Order/Waiting" -> "Item/New" [label="🔗 SPAWN", style=dashed, color="#16a34a"];`,
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("missing %q in:\n%s", line, got)
		}
	}
}

func TestTransitionLabel(t *testing.T) {
	for _, tc := range []struct {
		t    *Transition
		want string
	}{
		{&Transition{Event: "E", Type: Regular}, "E"},
		{&Transition{Event: "E", Type: Auto}, "E ⚡"},
		{&Transition{Event: "E", Type: InterMachine, TargetMachine: "M", MatchingRules: []*MatchingRule{{EventProperty: "x", InstanceProperty: "y", Operator: OpNe}}}, "🔗 E 🔑y≠x → M"},
		{&Transition{Event: "E", Type: Regular, Guards: []*Guard{{Expression: "context.a"}, {Expression: "context.b"}}}, "E [(context.a) && (context.b)]"},
	} {
		if got := transitionLabel(tc.t); got != tc.want {
			t.Errorf("label = %q, want %q", got, tc.want)
		}
	}
}
