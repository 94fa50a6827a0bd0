// Package component is the component model: the Go form of a component YAML file, its loader
// (with file:line:col positions on every error and warning), its validation, guard expressions,
// contextSchema enforcement and state diagrams.
//
// A *Component is immutable once loaded; the engine shares it between goroutines freely.
package component

import "regexp"

// Pos is a position in a source file. Line and Col are 1-based; zero means unknown.
type Pos struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	Col  int    `json:"col,omitempty"`
}

// Component is one YAML file: one or more state machines.
type Component struct {
	Name                 string         `json:"name"`
	Version              string         `json:"version,omitempty"`
	Description          any            `json:"description,omitempty"`
	Metadata             any            `json:"metadata,omitempty"`
	EntryMachine         string         `json:"entryMachine,omitempty"`
	EntryMachineMode     EntryMode      `json:"entryMachineMode"`
	AutoCreateEntryPoint bool           `json:"autoCreateEntryPoint"`
	Layout               any            `json:"layout,omitempty"`
	StateMachines        []*Machine     `json:"stateMachines"`
	Extra                map[string]any `json:"-"` // unknown keys, kept for announces

	// Raw is the whole document as a generic map with the YAML's own keys (unknown keys
	// included), used when the definition travels (announces, GET /api/components/:c).
	Raw map[string]any `json:"-"`

	Pos      Pos       `json:"-"`
	Warnings []Problem `json:"-"` // validation warnings found at load

	machines map[string]*Machine
}

// EntryMode says how many instances of the entry machine may exist.
type EntryMode string

// Entry-point modes (docs/yaml.md).
const (
	EntrySingleton EntryMode = "singleton"
	EntryMultiple  EntryMode = "multiple"
)

// Machine is one state machine of a component.
type Machine struct {
	Name             string                  `json:"name"`
	InitialState     string                  `json:"initialState"`
	States           []*State                `json:"states"`
	Transitions      []*Transition           `json:"transitions"`
	PublicMemberType string                  `json:"publicMemberType,omitempty"`
	ParentLink       *ParentLink             `json:"parentLink,omitempty"`
	ContextSchema    map[string]*SchemaField `json:"contextSchema,omitempty"`
	// SchemaOrder lists ContextSchema's fields in file order (maps lose it).
	SchemaOrder []string `json:"-"`
	Description any      `json:"description,omitempty"`
	Metadata    any      `json:"metadata,omitempty"`
	Pos         Pos      `json:"-"`

	states map[string]*State
	// byStateEvent indexes transitions by from-state and event, in declaration order.
	byStateEvent map[stateEvent][]*Transition
	// byState lists transitions leaving each state, in declaration order.
	byState map[string][]*Transition
	// byEvent lists transitions on each event, in declaration order.
	byEvent map[string][]*Transition
}

type stateEvent struct{ state, event string }

// StateType is the kind of a state.
type StateType string

// State types (docs/yaml.md).
const (
	StateEntry   StateType = "entry"
	StateRegular StateType = "regular"
	StateFinal   StateType = "final"
	StateError   StateType = "error"
)

// State is one state of a machine.
type State struct {
	Name           string         `json:"name"`
	Type           StateType      `json:"type"`
	OnEntry        string         `json:"onEntry,omitempty"`
	OnExit         string         `json:"onExit,omitempty"`
	CascadingRules []*CascadeRule `json:"cascadingRules,omitempty"`
	Description    any            `json:"description,omitempty"`
	Metadata       any            `json:"metadata,omitempty"`
	Pos            Pos            `json:"-"`

	// Timed lists the timeout and auto transitions leaving this state, armed on entry.
	Timed []*Transition `json:"-"`
}

// Terminal reports whether entering the state ends the instance.
func (s *State) Terminal() bool { return s.Type == StateFinal || s.Type == StateError }

// TransitionType is the kind of a transition.
type TransitionType string

// Transition types (docs/yaml.md, docs/semantics.md).
const (
	Regular        TransitionType = "regular"
	Triggerable    TransitionType = "triggerable"
	Internal       TransitionType = "internal"
	InterMachine   TransitionType = "inter_machine"
	CrossComponent TransitionType = "cross_component"
	Timeout        TransitionType = "timeout"
	Auto           TransitionType = "auto"
)

// Transition is one declared transition.
type Transition struct {
	From              string            `json:"from"`
	To                string            `json:"to"`
	Event             string            `json:"event"`
	Type              TransitionType    `json:"type"`
	TimeoutMs         int64             `json:"timeoutMs,omitempty"`
	ResetOnTransition bool              `json:"resetOnTransition"`
	TargetMachine     string            `json:"targetMachine,omitempty"`
	TargetComponent   string            `json:"targetComponent,omitempty"`
	TargetEvent       string            `json:"targetEvent,omitempty"`
	ContextMapping    map[string]string `json:"contextMapping,omitempty"`
	TriggeredMethod   string            `json:"triggeredMethod,omitempty"`
	MatchingRules     []*MatchingRule   `json:"matchingRules,omitempty"`
	Guards            []*Guard          `json:"guards,omitempty"`
	NotifyParent      *NotifyParent     `json:"notifyParent,omitempty"`
	Description       any               `json:"description,omitempty"`
	Metadata          any               `json:"metadata,omitempty"`
	Pos               Pos               `json:"-"`

	// Index is the position of the transition in its machine's list.
	Index int `json:"-"`
}

// Timed reports whether the transition is fired by a timer.
func (t *Transition) Timed() bool { return t.Type == Timeout || t.Type == Auto }

// Operator is a matching-rule comparison operator.
type Operator string

// Matching-rule operators; "==" and "!=" are accepted at load as aliases of the first two.
const (
	OpEq  Operator = "==="
	OpNe  Operator = "!=="
	OpGt  Operator = ">"
	OpLt  Operator = "<"
	OpGte Operator = ">="
	OpLte Operator = "<="
)

// MatchingRule routes an event to instances: instanceValue OP eventValue.
type MatchingRule struct {
	EventProperty    string   `json:"eventProperty"`
	InstanceProperty string   `json:"instanceProperty"`
	Operator         Operator `json:"operator"`
	Pos              Pos      `json:"-"`
}

// Guard is one compiled guard expression.
type Guard struct {
	Expression string `json:"expression"`
	Pos        Pos    `json:"-"`
	program    *guardProgram
}

// NotifyParent asks a child to notify its parent after a transition.
type NotifyParent struct {
	Event          string `json:"event"`
	IncludeState   bool   `json:"includeState"`
	IncludeContext bool   `json:"includeContext"`
}

// ParentLink makes a child notify its parent on every state change.
type ParentLink struct {
	Enabled       bool   `json:"enabled"`
	OnStateChange string `json:"onStateChange,omitempty"`
}

// CascadeRule sends an event to other instances when a state is entered.
type CascadeRule struct {
	TargetComponent string          `json:"targetComponent,omitempty"`
	TargetMachine   string          `json:"targetMachine"`
	TargetState     string          `json:"targetState"`
	Event           string          `json:"event"`
	MatchingRules   []*MatchingRule `json:"matchingRules,omitempty"`
	Payload         map[string]any  `json:"payload,omitempty"`
	Pos             Pos             `json:"-"`
}

// SchemaField describes one field of a machine's contextSchema.
type SchemaField struct {
	Type        string         `json:"type"` // text|string|number|boolean|select|array
	Label       string         `json:"label,omitempty"`
	Required    bool           `json:"required,omitempty"`
	Placeholder string         `json:"placeholder,omitempty"`
	Description string         `json:"description,omitempty"`
	Options     []SchemaOption `json:"options,omitempty"`
	Min         *float64       `json:"min,omitempty"`
	Max         *float64       `json:"max,omitempty"`
	Pattern     string         `json:"pattern,omitempty"`
	Default     any            `json:"default,omitempty"`
	Pos         Pos            `json:"-"`

	re *regexp.Regexp // Pattern, compiled at load
}

// SchemaOption is one allowed value of a select field.
type SchemaOption struct {
	Value any    `json:"value"`
	Label string `json:"label"`
}

// Machine returns the machine with that name, or nil.
func (c *Component) Machine(name string) *Machine { return c.machines[name] }

// State returns the state with that name, or nil.
func (m *Machine) State(name string) *State { return m.states[name] }

// Candidates returns the transitions leaving state on event, in declaration order.
// The slice is shared: do not modify it.
func (m *Machine) Candidates(state, event string) []*Transition {
	return m.byStateEvent[stateEvent{state, event}]
}

// From returns the transitions leaving state, in declaration order. Shared: do not modify.
func (m *Machine) From(state string) []*Transition { return m.byState[state] }

// TransitionsOn returns every transition of the machine on event, in declaration order.
// Shared: do not modify.
func (m *Machine) TransitionsOn(event string) []*Transition { return m.byEvent[event] }

// index builds the lookup tables; the loader calls it once the machine is valid enough.
func (c *Component) index() {
	c.machines = make(map[string]*Machine, len(c.StateMachines))
	for _, m := range c.StateMachines {
		if _, dup := c.machines[m.Name]; !dup {
			c.machines[m.Name] = m
		}
		m.states = make(map[string]*State, len(m.States))
		for _, s := range m.States {
			if _, dup := m.states[s.Name]; !dup {
				m.states[s.Name] = s
			}
			s.Timed = nil
		}
		m.byStateEvent = make(map[stateEvent][]*Transition)
		m.byState = make(map[string][]*Transition)
		m.byEvent = make(map[string][]*Transition)
		for i, t := range m.Transitions {
			t.Index = i
			k := stateEvent{t.From, t.Event}
			m.byStateEvent[k] = append(m.byStateEvent[k], t)
			m.byState[t.From] = append(m.byState[t.From], t)
			m.byEvent[t.Event] = append(m.byEvent[t.Event], t)
			if t.Timed() {
				if s := m.states[t.From]; s != nil {
					s.Timed = append(s.Timed, t)
				}
			}
		}
	}
}
