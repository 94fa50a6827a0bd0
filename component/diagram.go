package component

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// DiagramOptions tunes the state diagrams.
type DiagramOptions struct {
	// CurrentState is highlighted; states that cannot be reached from it are shown as
	// unreachable (without it, reachability is from the initial state).
	CurrentState string
	// Counts, when set, adds the number of instances in each state to its name.
	Counts map[string]int
	// CurrentStates gives the current state per machine name, for component diagrams.
	CurrentStates map[string]string
}

// Style classes of diagram states, by priority: a state gets the first that applies.
const (
	classCurrent     = "currentState"
	classUnreachable = "unreachableState"
	classEntry       = "entryState"
	classError       = "errorState"
	classFinal       = "finalState"
)

var diagramClasses = []struct{ name, mermaid, dot string }{
	{classCurrent, "fill:#3b82f6,stroke:#1d4ed8,stroke-width:4px,color:#fff", `fillcolor="#3b82f6", color="#1d4ed8", penwidth=3, fontcolor="white"`},
	{classUnreachable, "fill:#e5e7eb,stroke:#9ca3af,stroke-width:1px,color:#6b7280,stroke-dasharray:3", `fillcolor="#e5e7eb", color="#9ca3af", fontcolor="#6b7280", style="rounded,filled,dashed"`},
	{classEntry, "fill:#fbbf24,stroke:#f59e0b,stroke-width:3px,color:#000", `fillcolor="#fbbf24", color="#f59e0b"`},
	{classError, "fill:#ef4444,stroke:#dc2626,stroke-width:3px,color:#fff", `fillcolor="#ef4444", color="#dc2626", fontcolor="white", peripheries=2`},
	{classFinal, "fill:#10b981,stroke:#059669,stroke-width:3px,color:#fff", `fillcolor="#10b981", color="#059669", fontcolor="white", peripheries=2`},
}

// stateClass picks the style class of each state of m ("" for none).
func stateClass(m *Machine, current string) map[string]string {
	start := m.InitialState
	if current != "" && slices.ContainsFunc(m.States, func(s *State) bool { return s.Name == current }) {
		start = current
	}
	reach := reachable(m, start)
	classes := make(map[string]string, len(m.States))
	for _, s := range m.States {
		switch {
		case current != "" && s.Name == current:
			classes[s.Name] = classCurrent
		case !reach[s.Name]:
			classes[s.Name] = classUnreachable
		case s.Type == StateEntry || s.Name == m.InitialState:
			classes[s.Name] = classEntry
		case s.Type == StateError:
			classes[s.Name] = classError
		case s.Type == StateFinal:
			classes[s.Name] = classFinal
		}
	}
	return classes
}

// transitionLabel is the text of a transition in the diagrams (unescaped), following
// xcomponent-ai: "🔗 EVENT → Machine", "📡 EVENT → Component", "EVENT 🔑a=b", "EVENT ⏱ 5000ms".
func transitionLabel(t *Transition) string {
	var b strings.Builder
	switch t.Type {
	case InterMachine:
		b.WriteString("🔗 ")
	case CrossComponent:
		b.WriteString("📡 ")
	}
	b.WriteString(t.Event)
	switch t.Type {
	case Timeout:
		fmt.Fprintf(&b, " ⏱ %dms", t.TimeoutMs)
	case Auto:
		b.WriteString(" ⚡")
		if t.TimeoutMs > 0 {
			fmt.Fprintf(&b, " %dms", t.TimeoutMs)
		}
	}
	for _, r := range t.MatchingRules {
		op := string(r.Operator)
		switch r.Operator {
		case OpEq, "":
			op = "="
		case OpNe:
			op = "≠"
		}
		fmt.Fprintf(&b, " 🔑%s%s%s", r.InstanceProperty, op, r.EventProperty)
	}
	if len(t.Guards) > 0 {
		exprs := make([]string, len(t.Guards))
		for i, g := range t.Guards {
			exprs[i] = g.Expression
			if len(t.Guards) > 1 {
				exprs[i] = "(" + exprs[i] + ")"
			}
		}
		fmt.Fprintf(&b, " [%s]", strings.Join(exprs, " && "))
	}
	switch t.Type {
	case InterMachine:
		b.WriteString(" → " + t.TargetMachine)
	case CrossComponent:
		b.WriteString(" → " + t.TargetComponent)
	}
	return b.String()
}

func stateLabel(name string, counts map[string]int) string {
	if n, ok := counts[name]; ok {
		return fmt.Sprintf("%s (%d)", name, n)
	}
	return name
}

// ---- Mermaid ----

var mermaidIdentRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// mermaidKeywords cannot be used as state ids.
var mermaidKeywords = []string{"state", "note", "end", "class", "classDef", "style", "direction",
	"click", "as", "left", "right", "of", "default", "hide", "scale", "stateDiagram", "stateDiagram-v2"}

// mermaidEscape makes text safe in a label or a quoted state description: line breaks
// become spaces and the characters Mermaid gives a meaning to become entity codes.
func mermaidEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\n', '\r', '\t':
			b.WriteByte(' ')
		case '#':
			b.WriteString("#35;")
		case ';':
			b.WriteString("#59;")
		case '"':
			b.WriteString("#quot;")
		case '<':
			b.WriteString("#lt;")
		case '>':
			b.WriteString("#gt;")
		case '{':
			b.WriteString("#123;")
		case '}':
			b.WriteString("#125;")
		case ':':
			b.WriteString("#58;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// mermaidIDs gives every state of m a Mermaid id: its name when usable, prefix+"s"+index
// otherwise. declare lists the states that need a "state \"…\" as id" line.
func mermaidIDs(m *Machine, prefix string, counts map[string]int) (ids map[string]string, declare []string) {
	ids = make(map[string]string, len(m.States))
	for i, s := range m.States {
		if _, dup := ids[s.Name]; dup {
			continue
		}
		id := prefix + s.Name
		usable := mermaidIdentRE.MatchString(s.Name) && !slices.Contains(mermaidKeywords, s.Name)
		if !usable {
			id = prefix + "s" + strconv.Itoa(i)
		}
		ids[s.Name] = id
		_, counted := counts[s.Name]
		if !usable || counted || prefix != "" {
			declare = append(declare, s.Name)
		}
	}
	return ids, declare
}

// Mermaid renders the machine as a Mermaid stateDiagram-v2, in xcomponent-ai's conventions.
func Mermaid(m *Machine, opt DiagramOptions) string {
	var b strings.Builder
	b.WriteString("stateDiagram-v2\n")
	classes := writeMermaidMachine(&b, m, "", "    ", opt.CurrentState, opt.Counts)
	writeMermaidClasses(&b, classes)
	return b.String()
}

// writeMermaidMachine writes the states and transitions of m with ids prefixed by prefix,
// and returns the style class of each state id.
func writeMermaidMachine(b *strings.Builder, m *Machine, prefix, indent, current string, counts map[string]int) map[string]string {
	ids, declare := mermaidIDs(m, prefix, counts)
	id := func(state string) string {
		if v, ok := ids[state]; ok {
			return v
		}
		return prefix + "unknown"
	}
	for _, name := range declare {
		fmt.Fprintf(b, "%sstate \"%s\" as %s\n", indent, mermaidEscape(stateLabel(name, counts)), ids[name])
	}
	if m.InitialState != "" {
		fmt.Fprintf(b, "%s[*] --> %s\n", indent, id(m.InitialState))
	}
	linked := map[string]bool{m.InitialState: true}
	for _, t := range m.Transitions {
		fmt.Fprintf(b, "%s%s --> %s: %s\n", indent, id(t.From), id(t.To), mermaidEscape(transitionLabel(t)))
		linked[t.From], linked[t.To] = true, true
	}
	for _, s := range m.States {
		if s.Terminal() {
			fmt.Fprintf(b, "%s%s --> [*]\n", indent, id(s.Name))
			linked[s.Name] = true
		}
	}
	for _, s := range m.States {
		if !linked[s.Name] && !slices.Contains(declare, s.Name) {
			fmt.Fprintf(b, "%s%s\n", indent, id(s.Name))
		}
	}
	byID := map[string]string{}
	for state, class := range stateClass(m, current) {
		if class != "" {
			byID[ids[state]] = class
		}
	}
	return byID
}

func writeMermaidClasses(b *strings.Builder, classes map[string]string) {
	for _, c := range diagramClasses {
		var members []string
		for id, class := range classes {
			if class == c.name {
				members = append(members, id)
			}
		}
		if len(members) == 0 {
			continue
		}
		slices.Sort(members)
		fmt.Fprintf(b, "    classDef %s %s\n", c.name, c.mermaid)
		fmt.Fprintf(b, "    class %s %s\n", strings.Join(members, ","), c.name)
	}
}

// MermaidComponent renders every machine of the component as a composite state, with the
// inter-machine, cross-component and cascade links between them.
func MermaidComponent(c *Component, opt DiagramOptions) string {
	var b strings.Builder
	b.WriteString("stateDiagram-v2\n")
	classes := map[string]string{}
	machineID := map[string]string{}
	for i, m := range c.StateMachines {
		if _, dup := machineID[m.Name]; !dup {
			machineID[m.Name] = "m" + strconv.Itoa(i)
		}
	}
	for i, m := range c.StateMachines {
		mid := "m" + strconv.Itoa(i)
		fmt.Fprintf(&b, "    state \"%s\" as %s {\n", mermaidEscape(m.Name), mid)
		for id, class := range writeMermaidMachine(&b, m, mid+"_", "        ", opt.CurrentStates[m.Name], nil) {
			classes[id] = class
		}
		b.WriteString("    }\n")
	}
	external := map[string]string{}
	ext := func(comp string) string {
		if id, ok := external[comp]; ok {
			return id
		}
		id := "ext" + strconv.Itoa(len(external))
		external[comp] = id
		fmt.Fprintf(&b, "    state \"%s\" as %s\n", mermaidEscape("📡 "+comp), id)
		return id
	}
	for _, l := range componentLinks(c) {
		to := machineID[l.machine]
		if l.component != "" {
			to = ext(l.component)
		}
		if to == "" {
			continue
		}
		fmt.Fprintf(&b, "    %s --> %s: %s\n", machineID[l.from.Name], to, mermaidEscape(l.label))
	}
	writeMermaidClasses(&b, classes)
	return b.String()
}

// link is an arrow between machines (or to another component) in a component diagram.
type link struct {
	from      *Machine
	fromState string // the state the link leaves from
	machine   string // target machine in this component ("" when component is set)
	component string // target component, when another one
	label     string
}

func componentLinks(c *Component) []link {
	var links []link
	for _, m := range c.StateMachines {
		for _, t := range m.Transitions {
			switch {
			case t.Type == InterMachine && t.TargetMachine != "":
				links = append(links, link{m, t.To, t.TargetMachine, "", "🔗 " + t.Event})
			case t.Type == CrossComponent && t.TargetComponent != "":
				if t.TargetComponent == c.Name {
					target := t.TargetMachine
					if target == "" {
						target = c.EntryMachine
					}
					links = append(links, link{m, t.To, target, "", "📡 " + t.Event})
				} else {
					links = append(links, link{m, t.To, "", t.TargetComponent, "📡 " + t.Event})
				}
			}
		}
		for _, s := range m.States {
			for _, r := range s.CascadingRules {
				if r.TargetComponent != "" && r.TargetComponent != c.Name {
					links = append(links, link{m, s.Name, "", r.TargetComponent, "⤷ " + r.Event})
				} else {
					links = append(links, link{m, s.Name, r.TargetMachine, "", "⤷ " + r.Event})
				}
			}
		}
	}
	return links
}

// ---- Graphviz ----

// dotQuote makes a DOT quoted string.
func dotQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r', '\t':
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

const dotHeader = `    rankdir=LR;
    node [shape=box, style="rounded,filled", fillcolor="white", fontname="Helvetica"];
    edge [fontname="Helvetica", fontsize=10];
`

// Dot renders the machine as a Graphviz digraph.
func Dot(m *Machine, opt DiagramOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", dotQuote(m.Name))
	b.WriteString(dotHeader)
	writeDotMachine(&b, m, "", "    ", opt.CurrentState, opt.Counts)
	b.WriteString("}\n")
	return b.String()
}

func writeDotMachine(b *strings.Builder, m *Machine, prefix, indent, current string, counts map[string]int) {
	id := func(state string) string { return dotQuote(prefix + state) }
	start := dotQuote(prefix + "[*]")
	fmt.Fprintf(b, "%s%s [shape=point, width=0.15, label=\"\"];\n", indent, start)
	classes := stateClass(m, current)
	for _, s := range m.States {
		attrs := "label=" + dotQuote(stateLabel(s.Name, counts))
		if class := classes[s.Name]; class != "" {
			for _, c := range diagramClasses {
				if c.name == class {
					attrs += ", " + c.dot
				}
			}
		}
		fmt.Fprintf(b, "%s%s [%s];\n", indent, id(s.Name), attrs)
	}
	if m.InitialState != "" {
		fmt.Fprintf(b, "%s%s -> %s;\n", indent, start, id(m.InitialState))
	}
	for _, t := range m.Transitions {
		attrs := "label=" + dotQuote(transitionLabel(t))
		switch t.Type {
		case InterMachine:
			attrs += `, color="#16a34a", fontcolor="#16a34a", penwidth=2`
		case CrossComponent:
			attrs += `, color="#7c3aed", fontcolor="#7c3aed", penwidth=2`
		case Timeout, Auto:
			attrs += ", style=dashed"
		}
		fmt.Fprintf(b, "%s%s -> %s [%s];\n", indent, id(t.From), id(t.To), attrs)
	}
}

// DotComponent renders every machine of the component as a cluster, with the inter-machine,
// cross-component and cascade links between them.
func DotComponent(c *Component, opt DiagramOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", dotQuote(c.Name))
	b.WriteString(dotHeader)
	b.WriteString("    compound=true;\n")
	initial := map[string]string{}
	for i, m := range c.StateMachines {
		prefix := m.Name + "/"
		if _, dup := initial[m.Name]; !dup {
			initial[m.Name] = prefix + m.InitialState
		}
		fmt.Fprintf(&b, "    subgraph cluster_%d {\n        label=%s;\n", i, dotQuote(m.Name))
		writeDotMachine(&b, m, prefix, "        ", opt.CurrentStates[m.Name], nil)
		b.WriteString("    }\n")
	}
	external := map[string]bool{}
	for _, l := range componentLinks(c) {
		from := dotQuote(l.from.Name + "/" + l.fromState)
		switch {
		case l.component != "":
			to := dotQuote("component/" + l.component)
			if !external[l.component] {
				external[l.component] = true
				fmt.Fprintf(&b, "    %s [label=%s, shape=component, fillcolor=\"#ede9fe\"];\n", to, dotQuote("📡 "+l.component))
			}
			fmt.Fprintf(&b, "    %s -> %s [label=%s, style=dashed, color=\"#7c3aed\"];\n", from, to, dotQuote(l.label))
		case initial[l.machine] != "":
			fmt.Fprintf(&b, "    %s -> %s [label=%s, style=dashed, color=\"#16a34a\"];\n", from, dotQuote(initial[l.machine]), dotQuote(l.label))
		}
	}
	b.WriteString("}\n")
	return b.String()
}
