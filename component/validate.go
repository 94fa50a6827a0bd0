package component

import (
	"fmt"
	"slices"
	"strings"
)

// resolve checks the references between parts of the component: unique names, known states,
// machines and entry machine. Machines with broken references are left out of analyse.
func (l *loader) resolve(c *Component) {
	machines := map[string]*Machine{}
	var names []string
	for _, m := range c.StateMachines {
		if m.Name == "" {
			continue
		}
		if first, dup := machines[m.Name]; dup {
			l.errorf(l.at(m, "name"), "duplicate machine name %q (first declared at line %d)", m.Name, first.Pos.Line)
			continue
		}
		machines[m.Name] = m
		names = append(names, m.Name)
	}
	if c.EntryMachine != "" && machines[c.EntryMachine] == nil {
		l.errorf(l.at(c, "entryMachine"), "unknown machine %q in entryMachine (declared machines: %s)", c.EntryMachine, quoteList(names))
	}
	for _, m := range c.StateMachines {
		l.resolveMachine(c, m, machines, names)
	}
}

func (l *loader) resolveMachine(c *Component, m *Machine, machines map[string]*Machine, machineNames []string) {
	states := map[string]*State{}
	var names []string
	for _, s := range m.States {
		if s.Name == "" {
			continue
		}
		if first, dup := states[s.Name]; dup {
			l.errorf(l.at(s, "name"), "duplicate state name %q in machine %q (first declared at line %d)", s.Name, m.Name, first.Pos.Line)
			continue
		}
		states[s.Name] = s
		names = append(names, s.Name)
	}
	unknownState := func(obj any, key, name string) {
		l.errorf(l.at(obj, key), "unknown state %q in %s (declared states: %s)", name, key, quoteList(names))
	}
	if m.InitialState != "" && states[m.InitialState] == nil {
		unknownState(m, "initialState", m.InitialState)
	}
	for _, t := range m.Transitions {
		if t.From != "" && states[t.From] == nil {
			unknownState(t, "from", t.From)
		}
		if t.To != "" && states[t.To] == nil {
			unknownState(t, "to", t.To)
		}
		if t.Type == InterMachine && t.TargetMachine != "" && machines[t.TargetMachine] == nil {
			l.errorf(l.at(t, "targetMachine"), "unknown machine %q in targetMachine (declared machines: %s)", t.TargetMachine, quoteList(machineNames))
		}
	}
	for _, s := range m.States {
		for _, r := range s.CascadingRules {
			if r.TargetComponent != "" && r.TargetComponent != c.Name {
				continue // checked by ValidateSet, when the other component is known
			}
			if r.TargetMachine == "" {
				continue
			}
			target := machines[r.TargetMachine]
			if target == nil {
				l.errorf(l.at(r, "targetMachine"), "unknown machine %q in targetMachine (declared machines: %s)", r.TargetMachine, quoteList(machineNames))
				continue
			}
			if r.TargetState == "" {
				continue
			}
			if !slices.ContainsFunc(target.States, func(ts *State) bool { return ts.Name == r.TargetState }) {
				l.errorf(l.at(r, "targetState"), "unknown state %q in targetState (states of machine %s: %s)", r.TargetState, target.Name, quoteList(stateNames(target)))
				continue
			}
			if !handles(target, r.TargetState, r.Event) {
				l.warnf(l.at(r, "event"), "machine %s has no transition from %s on %q: the cascaded event will be ignored", target.Name, r.TargetState, r.Event)
			}
		}
	}
}

func stateNames(m *Machine) []string {
	names := make([]string, 0, len(m.States))
	for _, s := range m.States {
		names = append(names, s.Name)
	}
	return names
}

// handles reports whether m has a transition from state on event.
func handles(m *Machine, state, event string) bool {
	return slices.ContainsFunc(m.Transitions, func(t *Transition) bool { return t.From == state && t.Event == event })
}

// sound reports whether the machine's states and transitions reference each other correctly,
// which the graph warnings need.
func sound(m *Machine) bool {
	states := map[string]bool{}
	for _, s := range m.States {
		states[s.Name] = true
	}
	if !states[m.InitialState] {
		return false
	}
	for _, t := range m.Transitions {
		if !states[t.From] || !states[t.To] {
			return false
		}
	}
	return true
}

// analyse adds the warnings about each machine's graph (docs/yaml.md, Validation/Warnings).
func (l *loader) analyse(c *Component) {
	for _, m := range c.StateMachines {
		if sound(m) {
			l.analyseMachine(m)
		}
	}
}

func (l *loader) analyseMachine(m *Machine) {
	out := map[string][]*Transition{}
	for _, t := range m.Transitions {
		out[t.From] = append(out[t.From], t)
	}
	reach := reachable(m, m.InitialState)

	terminalReachable := false
	for _, s := range m.States {
		if reach[s.Name] && s.Terminal() {
			terminalReachable = true
		}
		if !reach[s.Name] {
			l.warnf(l.at(s, "name"), "state %q is unreachable from initial state %q", s.Name, m.InitialState)
		}
		if s.Terminal() {
			continue
		}
		leaving := out[s.Name]
		if len(leaving) == 0 {
			l.warnf(l.at(s, "name"), "state %q is a dead end: it is neither final nor error and has no outgoing transition", s.Name)
			continue
		}
		if slices.ContainsFunc(leaving, func(t *Transition) bool { return t.To != s.Name }) {
			continue
		}
		if slices.ContainsFunc(leaving, func(t *Transition) bool { return t.Type == Timeout }) {
			l.warnf(l.at(s, "name"), "state %q can never be left: its only way out is a timeout that loops back to it", s.Name)
		} else {
			l.warnf(l.at(s, "name"), "state %q is a dead end: all its transitions loop back to it", s.Name)
		}
	}
	if len(m.Transitions) > 0 && !terminalReachable {
		l.warnf(l.at(m, ""), "no final or error state is reachable from initial state %q: instances of %s never complete", m.InitialState, m.Name)
	}

	// The first plain transition of each (state, event), found by a map rather than by
	// scanning the earlier transitions (quadratic on large machines).
	type leave struct{ from, event string }
	first := map[leave]*Transition{}
	for _, t := range m.Transitions {
		if distinguishable(t) {
			continue
		}
		k := leave{t.From, t.Event}
		u, seen := first[k]
		if !seen {
			first[k] = t
			continue
		}
		l.warnf(l.at(t, ""), "transition %s --%s--> %s is never taken: the transition at line %d leaves %q on the same event and nothing (guard, matchingRules) tells them apart",
			t.From, t.Event, t.To, l.at(u, "").pos.Line, t.From)
	}
}

// distinguishable reports whether something selects between the transition and another one
// leaving the same state on the same event.
func distinguishable(t *Transition) bool { return len(t.Guards) > 0 || len(t.MatchingRules) > 0 }

// reachable returns the states reachable from start through transitions of every type.
func reachable(m *Machine, start string) map[string]bool {
	// Outgoing transitions by state, built once: scanning every transition for each state
	// reached was quadratic (60,000 states took 20 s).
	next := make(map[string][]string, len(m.States))
	for _, t := range m.Transitions {
		next[t.From] = append(next[t.From], t.To)
	}
	seen := map[string]bool{start: true}
	queue := []string{start}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, to := range next[s] {
			if !seen[to] {
				seen[to] = true
				queue = append(queue, to)
			}
		}
	}
	return seen
}

// ValidateSet checks the references between components loaded together (cross_component
// transitions and cascading rules with a targetComponent) and returns warnings for the targets
// that are not among them. Two components with one name are an error.
func ValidateSet(comps []*Component) []Problem {
	byName := map[string]*Component{}
	var names []string
	var problems []Problem
	for _, c := range comps {
		if c == nil {
			continue
		}
		if first, dup := byName[c.Name]; dup {
			problems = append(problems, Problem{Severity: SeverityError, Pos: c.Pos, Path: "name",
				Message: fmt.Sprintf("component %q is loaded twice (also from %s)", c.Name, first.Pos.File)})
			continue
		}
		byName[c.Name] = c
		names = append(names, c.Name)
	}
	for _, c := range comps {
		if c == nil {
			continue
		}
		for mi, m := range c.StateMachines {
			for ti, t := range m.Transitions {
				if t.Type != CrossComponent || t.TargetComponent == "" {
					continue
				}
				path := fmt.Sprintf("stateMachines[%d].transitions[%d]", mi, ti)
				problems = append(problems, checkTarget(byName, names, t.Pos, path, t.TargetComponent, t.TargetMachine, "", t.TargetEvent)...)
			}
			for si, s := range m.States {
				for ri, r := range s.CascadingRules {
					if r.TargetComponent == "" || r.TargetComponent == c.Name {
						continue
					}
					path := fmt.Sprintf("stateMachines[%d].states[%d].cascadingRules[%d]", mi, si, ri)
					problems = append(problems, checkTarget(byName, names, r.Pos, path, r.TargetComponent, r.TargetMachine, r.TargetState, r.Event)...)
				}
			}
		}
	}
	sortProblems(problems)
	return problems
}

// checkTarget checks one reference to machine (default: the entry machine) of another
// component, and when given that state exists and something handles event.
func checkTarget(byName map[string]*Component, names []string, pos Pos, path, comp, machine, state, event string) []Problem {
	warn := func(field, format string, args ...any) []Problem {
		return []Problem{{Severity: SeverityWarning, Pos: pos, Path: join(path, field), Message: fmt.Sprintf(format, args...)}}
	}
	target := byName[comp]
	if target == nil {
		return warn("targetComponent", "component %q is not loaded (loaded components: %s)", comp, quoteList(names))
	}
	if machine == "" {
		if target.EntryMachine == "" {
			return warn("targetMachine", "no targetMachine given and component %s has no entryMachine", comp)
		}
		machine = target.EntryMachine
	}
	m := target.Machine(machine)
	if m == nil {
		m = findMachine(target, machine)
	}
	if m == nil {
		var ms []string
		for _, x := range target.StateMachines {
			ms = append(ms, x.Name)
		}
		return warn("targetMachine", "component %s has no machine %q (its machines: %s)", comp, machine, quoteList(ms))
	}
	if state != "" {
		if !slices.ContainsFunc(m.States, func(s *State) bool { return s.Name == state }) {
			return warn("targetState", "machine %s.%s has no state %q (its states: %s)", comp, machine, state, quoteList(stateNames(m)))
		}
		if event != "" && !handles(m, state, event) {
			return warn("event", "machine %s.%s has no transition from %s on %q: the event will be ignored", comp, machine, state, event)
		}
		return nil
	}
	if event != "" && !slices.ContainsFunc(m.Transitions, func(t *Transition) bool { return t.Event == event }) {
		return warn("targetEvent", "machine %s.%s has no transition on %q: the event will be ignored", comp, machine, event)
	}
	return nil
}

func findMachine(c *Component, name string) *Machine {
	for _, m := range c.StateMachines {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// sortProblems orders problems by position, keeping the order of those at one position.
func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if c := strings.Compare(a.Pos.File, b.Pos.File); c != 0 {
			return c
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return a.Pos.Col - b.Pos.Col
	})
}
