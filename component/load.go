package component

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The keys of each level of a component file (docs/yaml.md). Anything else is kept and
// warned about.
var (
	componentKeys = []string{"name", "version", "description", "metadata", "entryMachine",
		"entryMachineMode", "autoCreateEntryPoint", "layout", "stateMachines", "triggeredMethods"}
	layoutKeys  = []string{"algorithm", "machines"}
	machineKeys = []string{"name", "initialState", "states", "transitions", "publicMemberType",
		"parentLink", "contextSchema", "description", "metadata"}
	stateKeys = []string{"name", "type", "onEntry", "onExit", "entryMethod", "exitMethod",
		"cascadingRules", "description", "metadata"}
	transitionKeys = []string{"from", "to", "event", "type", "timeoutMs", "resetOnTransition",
		"targetMachine", "targetComponent", "targetEvent", "contextMapping", "triggeredMethod",
		"matchingRules", "guard", "guards", "specificTriggeringRule", "notifyParent",
		"description", "metadata"}
	matchingRuleKeys = []string{"eventProperty", "instanceProperty", "operator"}
	cascadeKeys      = []string{"targetComponent", "targetMachine", "targetState", "event",
		"matchingRules", "payload"}
	// legacyGuardKeys are xcomponent-ai's pre-expression guard forms, never evaluated there.
	legacyGuardKeys = []string{"keys", "contains", "customFunction"}
	guardKeys       = []string{"expression", "description", "keys", "contains", "customFunction",
		"type", "condition", "property", "operator", "value"}
	notifyParentKeys = []string{"event", "includeState", "includeContext"}
	parentLinkKeys   = []string{"enabled", "onStateChange"}
	schemaFieldKeys  = []string{"type", "label", "required", "placeholder", "description",
		"options", "min", "max", "pattern", "default"}
	schemaOptionKeys = []string{"value", "label"}

	stateTypes      = []string{string(StateEntry), string(StateRegular), string(StateFinal), string(StateError)}
	transitionTypes = []string{string(Regular), string(Triggerable), string(Internal), string(InterMachine),
		string(CrossComponent), string(Timeout), string(Auto)}
	operators       = []string{string(OpEq), string(OpNe), string(OpGt), string(OpLt), string(OpGte), string(OpLte)}
	fieldTypes      = []string{"text", "string", "number", "boolean", "select", "array"}
	entryModes      = []string{string(EntrySingleton), string(EntryMultiple)}
	layoutAlgorithm = []string{"force", "grid", "hierarchical"}

	componentNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)
)

// Parse reads one component from YAML. file names the source in positions and messages. When
// the component has errors, the result is nil and the error is a *LoadError listing all of
// them; warnings are in the component's Warnings.
func Parse(data []byte, file string) (*Component, error) {
	c, errs, _ := parse(data, file)
	if len(errs) > 0 {
		return nil, &LoadError{File: file, Problems: errs}
	}
	return c, nil
}

// MaxFileSize is the largest component file LoadFile reads (10 MiB): a component is
// written by people, and the cap keeps a wrong path (/dev/zero, a log file) from exhausting
// memory.
const MaxFileSize = 10 << 20

// LoadFile reads and parses the component file at path, of at most MaxFileSize bytes.
func LoadFile(path string) (*Component, error) { return LoadFileMax(path, MaxFileSize) }

// LoadFileMax is LoadFile with another size cap (bytes; <= 0: MaxFileSize). The file is read
// through the cap, so an endless stream stops at max+1 bytes.
func LoadFileMax(path string, max int64) (*Component, error) {
	if max <= 0 {
		max = MaxFileSize
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load component: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("load component %s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("load component %s: the file is larger than %d bytes (the limit for a component file)", path, max)
	}
	return Parse(data, path)
}

// Validate parses a component and returns every problem found, errors first then warnings,
// each in file order. It is what `xcomponent validate` shows; warnings are computed as far as
// the errors allow.
func Validate(data []byte, file string) []Problem {
	_, errs, warns := parse(data, file)
	return append(errs, warns...)
}

// parse runs the whole load: YAML, decoding with defaults, references, then the warnings.
func parse(data []byte, file string) (*Component, []Problem, []Problem) {
	l := &loader{file: file, src: data, objs: map[any]*object{}, dupLines: map[int]bool{}}
	c := l.load(data)
	sortProblems(l.errs)
	sortProblems(l.warns)
	if c == nil || len(l.errs) > 0 {
		return nil, l.errs, l.warns
	}
	c.Warnings = l.warns
	c.index()
	return c, nil, l.warns
}

func (l *loader) load(data []byte) *Component {
	root := l.document(data)
	if root == nil {
		return nil
	}
	var raw any
	var typeErr *yaml.TypeError
	err := root.Decode(&raw)
	if err != nil && !errors.As(err, &typeErr) {
		// Alias problems: self-containing anchors, alias bombs.
		l.errorf(l.locOf(root, ""), "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		return nil
	}
	c := l.component(root)
	if typeErr != nil {
		// After component(), which reports the duplicates it meets with their path.
		l.duplicateKeys(typeErr)
	}
	if c == nil {
		return nil
	}
	if m, ok := normalize(raw).(map[string]any); ok {
		c.Raw = m
		if c.Version != "" {
			m["version"] = c.Version // as written: 1.0 stays "1.0"
		}
	}
	l.resolve(c)
	l.analyse(c)
	return c
}

// document parses the YAML text and returns its root node, or nil after reporting why not.
func (l *loader) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.errorf(loc{pos: Pos{File: l.file, Line: 1, Col: 1}}, "empty document: a component needs at least name and stateMachines")
		} else {
			l.syntaxError(err)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		l.errorf(l.locOf(&next, ""), "a file holds one component: found a second YAML document")
		return nil
	case !errors.Is(err, io.EOF):
		l.syntaxError(err)
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && isNull(root) {
		l.errorf(l.locOf(root, ""), "empty document: a component needs at least name and stateMachines")
		return nil
	}
	return root
}

func (l *loader) component(root *yaml.Node) *Component {
	o := l.object(root, "", componentKeys)
	if o == nil {
		return nil
	}
	c := &Component{Pos: l.pos(o.node), EntryMachineMode: EntryMultiple}
	l.remember(c, o)

	if c.Name = o.required("name"); c.Name != "" && !componentNameRE.MatchString(c.Name) {
		l.errorf(o.loc("name"), "invalid component name %q: it must start with a letter and contain only letters, digits, '_' and '-'", c.Name)
	}
	c.Version, _ = o.str("version")
	c.Description = o.any("description")
	c.Metadata = o.any("metadata")
	c.Layout = l.layout(o)
	c.EntryMachine, _ = o.str("entryMachine")
	if mode, ok := o.str("entryMachineMode"); ok {
		c.EntryMachineMode = EntryMode(mode)
		l.checkEnum(o, "entryMachineMode", mode, entryModes)
	}
	auto, autoSet := o.boolean("autoCreateEntryPoint")
	switch {
	case c.EntryMachine == "":
		if autoSet && auto {
			l.warnf(o.loc("autoCreateEntryPoint"), "autoCreateEntryPoint has no effect without entryMachine")
		}
		c.AutoCreateEntryPoint = false
	case autoSet:
		c.AutoCreateEntryPoint = auto
	default:
		c.AutoCreateEntryPoint = c.EntryMachineMode == EntrySingleton
	}

	if o.has("triggeredMethods") {
		// xcomponent-ai files may carry JavaScript hook bodies here; they are kept (they
		// travel with the definition) but never run.
		l.warnf(o.keyLoc("triggeredMethods"), "triggeredMethods holds JavaScript, which is not run: register Go handlers (Engine.Handle) or serve with --hooks-url")
		c.Extra = map[string]any{"triggeredMethods": o.any("triggeredMethods")}
	}
	if !o.has("stateMachines") {
		o.required("stateMachines")
	}
	items := o.list("stateMachines")
	if o.has("stateMachines") && len(items) == 0 && o.value("stateMachines").Kind == yaml.SequenceNode {
		l.errorf(o.loc("stateMachines"), "stateMachines must list at least one machine")
	}
	for i, n := range items {
		if m := l.machine(n, index("stateMachines", i)); m != nil {
			c.StateMachines = append(c.StateMachines, m)
		}
	}

	for _, k := range o.order {
		if !slices.Contains(componentKeys, k) || k == "triggeredMethods" {
			if c.Extra == nil {
				c.Extra = map[string]any{}
			}
			c.Extra[k] = o.any(k)
		}
	}
	return c
}

// layout decodes the dashboard hints; only their shape is checked, and only with warnings.
func (l *loader) layout(o *object) any {
	v := o.any("layout")
	if lo := o.value("layout"); lo != nil && lo.Kind == yaml.MappingNode {
		lay := l.object(lo, "layout", layoutKeys)
		if alg, ok := lay.str("algorithm"); ok && !slices.Contains(layoutAlgorithm, alg) {
			l.warnf(lay.loc("algorithm"), "unknown layout algorithm %q (expected one of %s)", alg, strings.Join(layoutAlgorithm, ", "))
		}
	} else if lo != nil {
		l.warnf(o.loc("layout"), "layout should be a mapping {algorithm, machines}, got %s", kindOf(lo))
	}
	return v
}

// checkEnum reports a value outside allowed, with a typo hint.
func (l *loader) checkEnum(o *object, key, val string, allowed []string) bool {
	if slices.Contains(allowed, val) {
		return true
	}
	msg := fmt.Sprintf("unknown %s %q", key, val)
	if s := suggest(val, allowed); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	l.errorf(o.loc(key), "%s; expected one of %s", msg, strings.Join(allowed, ", "))
	return false
}

func (l *loader) machine(n *yaml.Node, path string) *Machine {
	o := l.object(n, path, machineKeys)
	if o == nil {
		return nil
	}
	m := &Machine{Pos: l.pos(o.node)}
	l.remember(m, o)
	m.Name = o.required("name")
	m.InitialState = o.required("initialState")
	m.PublicMemberType, _ = o.str("publicMemberType")
	m.Description = o.any("description")
	m.Metadata = o.any("metadata")

	if !o.has("states") {
		o.required("states")
	}
	states := o.list("states")
	if o.has("states") && len(states) == 0 && o.value("states").Kind == yaml.SequenceNode {
		l.errorf(o.loc("states"), "states must list at least one state")
	}
	for i, sn := range states {
		if s := l.state(sn, index(o.sub("states"), i)); s != nil {
			m.States = append(m.States, s)
		}
	}
	for i, tn := range o.list("transitions") {
		if t := l.transition(tn, index(o.sub("transitions"), i)); t != nil {
			t.Index = len(m.Transitions)
			m.Transitions = append(m.Transitions, t)
		}
	}
	if m.Transitions == nil {
		m.Transitions = []*Transition{}
	}
	if p := o.child("parentLink", parentLinkKeys); p != nil {
		m.ParentLink = &ParentLink{}
		m.ParentLink.Enabled, _ = p.boolean("enabled")
		m.ParentLink.OnStateChange, _ = p.str("onStateChange")
		switch {
		case m.ParentLink.Enabled && m.ParentLink.OnStateChange == "":
			l.warnf(p.loc(""), "parentLink is enabled but has no onStateChange event: the parent is never notified")
		case !m.ParentLink.Enabled && m.ParentLink.OnStateChange != "":
			l.warnf(p.loc("onStateChange"), "parentLink.onStateChange is ignored unless enabled: true")
		}
	}
	if s := o.child("contextSchema", nil); s != nil {
		l.contextSchema(m, s)
	}
	return m
}

func (l *loader) state(n *yaml.Node, path string) *State {
	o := l.object(n, path, stateKeys)
	if o == nil {
		return nil
	}
	s := &State{Pos: l.pos(o.node), Type: StateRegular}
	l.remember(s, o)
	s.Name = o.required("name")
	if typ, ok := o.str("type"); ok {
		s.Type = StateType(typ)
		l.checkEnum(o, "type", typ, stateTypes)
	}
	s.OnEntry = l.hook(o, "onEntry", "entryMethod")
	s.OnExit = l.hook(o, "onExit", "exitMethod")
	s.Description = o.any("description")
	s.Metadata = o.any("metadata")
	for i, rn := range o.list("cascadingRules") {
		if r := l.cascade(rn, index(o.sub("cascadingRules"), i)); r != nil {
			s.CascadingRules = append(s.CascadingRules, r)
		}
	}
	return s
}

// hook reads a method name given under its key or its legacy alias.
func (l *loader) hook(o *object, key, legacy string) string {
	v, ok := o.str(key)
	old, oldOK := o.str(legacy)
	switch {
	case ok && oldOK && v != old:
		l.warnf(o.keyLoc(legacy), "both %s and its legacy alias %s are given; %s %q is used", key, legacy, key, v)
	case !ok && oldOK:
		return old
	}
	return v
}

func (l *loader) transition(n *yaml.Node, path string) *Transition {
	o := l.object(n, path, transitionKeys)
	if o == nil {
		return nil
	}
	t := &Transition{Pos: l.pos(o.node), Type: Regular, ResetOnTransition: true}
	l.remember(t, o)
	t.From = o.required("from")
	t.To = o.required("to")
	t.Event = o.required("event")
	typeOK := true
	if typ, ok := o.str("type"); ok {
		t.Type = TransitionType(typ)
		typeOK = l.checkEnum(o, "type", typ, transitionTypes)
	}
	t.TriggeredMethod, _ = o.str("triggeredMethod")
	t.Description = o.any("description")
	t.Metadata = o.any("metadata")
	t.TargetMachine, _ = o.str("targetMachine")
	t.TargetComponent, _ = o.str("targetComponent")
	t.TargetEvent, _ = o.str("targetEvent")

	timeoutMs, timeoutSet := o.integer("timeoutMs")
	t.TimeoutMs = timeoutMs
	if reset, set := o.boolean("resetOnTransition"); set {
		t.ResetOnTransition = reset
		if typeOK && t.Type != Timeout {
			l.warnf(o.keyLoc("resetOnTransition"), "resetOnTransition is only used by timeout transitions; ignored on a %s transition", t.Type)
		}
	}

	if cm := o.child("contextMapping", nil); cm != nil {
		t.ContextMapping = make(map[string]string, len(cm.order))
		for _, k := range cm.order {
			if v, ok := cm.str(k); ok {
				t.ContextMapping[k] = v
			} else if cm.value(k) == nil {
				l.errorf(cm.loc(k), "contextMapping.%s needs a source path", k)
			}
		}
	}
	for i, rn := range o.list("matchingRules") {
		if r := l.matchingRule(rn, index(o.sub("matchingRules"), i)); r != nil {
			t.MatchingRules = append(t.MatchingRules, r)
		}
	}
	if o.has("guard") {
		if g := l.guard(o.value("guard"), o.sub("guard")); g != nil {
			t.Guards = append(t.Guards, g)
		}
	}
	for i, gn := range o.list("guards") {
		if g := l.guard(gn, index(o.sub("guards"), i)); g != nil {
			t.Guards = append(t.Guards, g)
		}
	}
	// xcomponent-ai's specificTriggeringRule is a JavaScript condition on (event, context):
	// a guard by another name.
	if o.has("specificTriggeringRule") {
		if g := l.guard(o.value("specificTriggeringRule"), o.sub("specificTriggeringRule")); g != nil {
			t.Guards = append(t.Guards, g)
		}
	}
	if np := o.child("notifyParent", notifyParentKeys); np != nil {
		t.NotifyParent = &NotifyParent{IncludeState: true}
		t.NotifyParent.Event = np.required("event")
		if v, set := np.boolean("includeState"); set {
			t.NotifyParent.IncludeState = v
		}
		t.NotifyParent.IncludeContext, _ = np.boolean("includeContext")
	}

	if typeOK {
		l.checkTransitionType(o, t, timeoutSet)
	}
	return t
}

// checkTransitionType checks the keys each transition type needs or ignores.
func (l *loader) checkTransitionType(o *object, t *Transition, timeoutSet bool) {
	switch t.Type {
	case Timeout:
		switch {
		case !timeoutSet && !o.has("timeoutMs"):
			l.errorf(loc{l.pos(o.node), o.sub("timeoutMs")}, "timeout transition needs a positive timeoutMs")
		case timeoutSet && t.TimeoutMs <= 0:
			l.errorf(o.loc("timeoutMs"), "timeoutMs must be positive for a timeout transition, got %d", t.TimeoutMs)
		}
	case Auto:
		if timeoutSet && t.TimeoutMs < 0 {
			l.errorf(o.loc("timeoutMs"), "timeoutMs must not be negative, got %d", t.TimeoutMs)
		}
	default:
		if timeoutSet {
			l.warnf(o.keyLoc("timeoutMs"), "timeoutMs is only used by timeout and auto transitions; ignored on a %s transition", t.Type)
		}
	}

	switch t.Type {
	case InterMachine:
		if t.TargetMachine == "" {
			l.errorf(loc{l.pos(o.node), o.sub("targetMachine")}, "inter_machine transition needs targetMachine")
		}
	case CrossComponent:
		if t.TargetComponent == "" {
			l.errorf(loc{l.pos(o.node), o.sub("targetComponent")}, "cross_component transition needs targetComponent")
		}
	}
	if t.TargetEvent != "" && len(t.MatchingRules) == 0 {
		l.errorf(o.loc("targetEvent"), "targetEvent %q needs matchingRules to find the target instances", t.TargetEvent)
	}

	ignored := func(key string, hint TransitionType) {
		if o.has(key) {
			l.warnf(o.keyLoc(key), "%s is ignored on a %s transition (did you mean type: %s?)", key, t.Type, hint)
		}
	}
	switch t.Type {
	case InterMachine:
		ignored("targetComponent", CrossComponent)
		ignored("targetEvent", CrossComponent)
	case CrossComponent:
	default:
		ignored("targetMachine", InterMachine)
		ignored("targetComponent", CrossComponent)
		ignored("targetEvent", CrossComponent)
		ignored("contextMapping", InterMachine)
	}
}

func (l *loader) matchingRule(n *yaml.Node, path string) *MatchingRule {
	o := l.object(n, path, matchingRuleKeys)
	if o == nil {
		return nil
	}
	r := &MatchingRule{Pos: l.pos(o.node), Operator: OpEq}
	l.remember(r, o)
	r.EventProperty = o.required("eventProperty")
	r.InstanceProperty = o.required("instanceProperty")
	if strings.HasPrefix(r.EventProperty, "payload.") {
		l.warnf(o.loc("eventProperty"), "eventProperty is a path inside the event payload: %q looks for a key \"payload\" in it; did you mean %q?",
			r.EventProperty, strings.TrimPrefix(r.EventProperty, "payload."))
	}
	if strings.HasPrefix(r.InstanceProperty, "context.") {
		l.warnf(o.loc("instanceProperty"), "instanceProperty is a path inside the instance data: %q looks for a key \"context\" in it; did you mean %q?",
			r.InstanceProperty, strings.TrimPrefix(r.InstanceProperty, "context."))
	}
	if op, ok := o.str("operator"); ok {
		switch op {
		case "==":
			r.Operator = OpEq
		case "!=":
			r.Operator = OpNe
		default:
			r.Operator = Operator(op)
			l.checkEnum(o, "operator", op, operators)
		}
	}
	return r
}

func (l *loader) cascade(n *yaml.Node, path string) *CascadeRule {
	o := l.object(n, path, cascadeKeys)
	if o == nil {
		return nil
	}
	r := &CascadeRule{Pos: l.pos(o.node)}
	l.remember(r, o)
	r.TargetComponent, _ = o.str("targetComponent")
	r.TargetMachine = o.required("targetMachine")
	r.TargetState = o.required("targetState")
	r.Event = o.required("event")
	for i, rn := range o.list("matchingRules") {
		if mr := l.matchingRule(rn, index(o.sub("matchingRules"), i)); mr != nil {
			r.MatchingRules = append(r.MatchingRules, mr)
		}
	}
	if p := o.value("payload"); p != nil {
		if m, ok := o.any("payload").(map[string]any); ok {
			r.Payload = m
		} else {
			l.errorf(o.loc("payload"), "payload must be a mapping, got %s", kindOf(p))
		}
	}
	return r
}

// guard reads one guard: an expression string or {expression: EXPR}, and compiles it.
// xcomponent-ai's typed forms are read too: {type: custom, condition: EXPR} and
// {type: context, property, operator, value} (value "{{path}}" names another data field).
func (l *loader) guard(n *yaml.Node, path string) *Guard {
	exprNode, exprPath := n, path
	if n.Kind == yaml.MappingNode {
		o := l.object(n, path, guardKeys)
		if !o.has("expression") && o.has("type") {
			return l.typedGuard(n, o, path)
		}
		if !o.has("expression") {
			for _, k := range legacyGuardKeys {
				if o.has(k) {
					l.warnf(o.keyLoc(k), "legacy guard form %q is not evaluated; write the condition as expression: \"…\"", k)
					return nil
				}
			}
			o.required("expression")
			return nil
		}
		exprNode, exprPath = o.value("expression"), o.sub("expression")
	}
	if exprNode.Kind != yaml.ScalarNode {
		l.errorf(l.locOf(exprNode, exprPath), "a guard must be an expression string or {expression: …}, got %s", kindOf(exprNode))
		return nil
	}
	src := exprNode.Value
	g := &Guard{Expression: src, Pos: l.pos(exprNode)}
	p, err := compileGuard(src)
	if err != nil {
		at, msg := l.guardErrorAt(exprNode, exprPath, err)
		l.errorf(at, "invalid guard expression %q: %s", src, msg)
		return nil
	}
	g.program = p
	return g
}

// typedGuard reads xcomponent-ai's {type: custom|context, …} guard forms as expressions.
func (l *loader) typedGuard(n *yaml.Node, o *object, path string) *Guard {
	typ, _ := o.any("type").(string)
	var src string
	switch typ {
	case "custom":
		cond, ok := o.any("condition").(string)
		if !ok {
			o.required("condition")
			return nil
		}
		src = cond
	case "context":
		prop, _ := o.any("property").(string)
		if prop == "" {
			o.required("property")
			return nil
		}
		op, _ := o.any("operator").(string)
		if op == "" {
			op = "==="
		}
		if !isGuardOperator(op) {
			l.errorf(o.loc("operator"), "unknown guard operator %q (want ===, !==, ==, !=, >, <, >=, <=)", op)
			return nil
		}
		src = "context." + prop + " " + op + " " + guardLiteral(o.any("value"))
	default:
		l.warnf(o.loc("type"), "guard type %q is not evaluated; write the condition as expression: \"…\"", typ)
		return nil
	}
	g := &Guard{Expression: src, Pos: l.pos(n)}
	p, err := compileGuard(src)
	if err != nil {
		l.errorf(l.locOf(n, path), "invalid guard %q: %v", src, err)
		return nil
	}
	g.program = p
	return g
}

func isGuardOperator(op string) bool {
	switch op {
	case "===", "!==", "==", "!=", ">", "<", ">=", "<=":
		return true
	}
	return false
}

// guardLiteral writes a YAML value as an expression operand: "{{path}}" reads the instance
// data at path; anything else is a literal.
func guardLiteral(v any) string {
	if s, ok := v.(string); ok {
		t := strings.TrimSpace(s)
		if strings.HasPrefix(t, "{{") && strings.HasSuffix(t, "}}") {
			return "context." + strings.TrimPrefix(strings.TrimSpace(t[2:len(t)-2]), "context.")
		}
	}
	if v == nil {
		return "nil"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "nil"
	}
	return string(b)
}
