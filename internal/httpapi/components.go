package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/xcomponent/xcomponent/component"
)

// machineView is a machine as the API shows it: the model's camelCase JSON plus the file
// order of its contextSchema fields (JSON objects lose it), for generated forms.
type machineView struct {
	*component.Machine
	SchemaOrder []string `json:"schemaOrder,omitempty"`
}

func machineViews(c *component.Component) []machineView {
	out := make([]machineView, len(c.StateMachines))
	for i, m := range c.StateMachines {
		out[i] = machineView{Machine: m, SchemaOrder: m.SchemaOrder}
	}
	return out
}

// componentSummary is one entry of GET /api/components (and of the stream's components_list).
type componentSummary struct {
	Name                 string              `json:"name"`
	Version              string              `json:"version,omitempty"`
	EntryMachine         string              `json:"entryMachine,omitempty"`
	EntryMachineMode     component.EntryMode `json:"entryMachineMode"`
	AutoCreateEntryPoint bool                `json:"autoCreateEntryPoint"`
	StateMachines        []machineView       `json:"stateMachines"`
	Warnings             []component.Problem `json:"warnings"`
}

func summarize(c *component.Component) componentSummary {
	w := c.Warnings
	if w == nil {
		w = []component.Problem{}
	}
	return componentSummary{Name: c.Name, Version: c.Version, EntryMachine: c.EntryMachine,
		EntryMachineMode: c.EntryMachineMode, AutoCreateEntryPoint: c.AutoCreateEntryPoint,
		StateMachines: machineViews(c), Warnings: w}
}

func (s *server) summaries() []componentSummary {
	cs := s.b.Components()
	out := make([]componentSummary, len(cs))
	for i, c := range cs {
		out[i] = summarize(c)
	}
	return out
}

// component returns a known component, or a 404 error.
func (s *server) component(name string) (*component.Component, error) {
	if l, ok := s.b.(componentLookup); ok {
		if c := l.Component(name); c != nil {
			return c, nil
		}
		return nil, notFound("component %s not found", truncate(name, 64))
	}
	for _, c := range s.b.Components() {
		if c.Name == name {
			return c, nil
		}
	}
	return nil, notFound("component %s not found", truncate(name, 64))
}

// componentLookup is implemented by backends that find a component by name without listing
// them all (the local one: a map lookup instead of a sorted copy of the list per request).
type componentLookup interface {
	Component(name string) *component.Component
}

func (s *server) handleComponents(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]any{"components": s.summaries()})
}

// handleComponent answers the definition: the model's camelCase JSON (defaults applied),
// with the document's unknown top-level keys kept and the load warnings.
func (s *server) handleComponent(w http.ResponseWriter, r *http.Request) error {
	c, err := s.component(r.PathValue("component"))
	if err != nil {
		return err
	}
	def, err := definition(c)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, def)
}

func definition(c *component.Component) (map[string]any, error) {
	b, err := json.Marshal(struct {
		*component.Component
		StateMachines []machineView       `json:"stateMachines"`
		Warnings      []component.Problem `json:"warnings"`
	}{c, machineViews(c), summarize(c).Warnings})
	if err != nil {
		return nil, err
	}
	var def map[string]any
	if err := json.Unmarshal(b, &def); err != nil {
		return nil, err
	}
	for k, v := range c.Raw {
		if _, ok := def[k]; !ok {
			def[k] = v
		}
	}
	return def, nil
}

func (s *server) handleMachines(w http.ResponseWriter, r *http.Request) error {
	c, err := s.component(r.PathValue("component"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"machines": machineViews(c)})
}

// handleDiagram answers a machine's Mermaid state diagram. The machine is looked up in
// ?component= when given, else in the first component that has it; ?instanceId= highlights
// that instance's state, else ?currentState=.
func (s *server) handleDiagram(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("machine")
	q := r.URL.Query()
	var comp *component.Component
	var m *component.Machine
	if cn := q.Get("component"); cn != "" {
		c, err := s.component(cn)
		if err != nil {
			return err
		}
		comp, m = c, c.Machine(name)
	} else {
		for _, c := range s.b.Components() {
			if m = c.Machine(name); m != nil {
				comp = c
				break
			}
		}
	}
	if m == nil {
		return notFound("machine %s not found", truncate(name, 64))
	}
	current := q.Get("currentState")
	if id := strings.ToLower(q.Get("instanceId")); id != "" {
		if err := checkID(id); err != nil {
			return err
		}
		ctx, cancel := s.ctx(r)
		defer cancel()
		in, err := s.b.Instance(ctx, id)
		if err != nil {
			return err
		}
		if in.MachineName == m.Name && in.ComponentName == comp.Name {
			current = in.CurrentState
		}
	}
	if current != "" {
		if err := checkName("currentState", current); err != nil {
			return err
		}
	}
	return writeJSON(w, http.StatusOK, map[string]any{
		"diagram":       component.Mermaid(m, component.DiagramOptions{CurrentState: current}),
		"machineName":   m.Name,
		"componentName": comp.Name,
		"currentState":  current,
	})
}

func (s *server) handleRuntimes(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := s.ctx(r)
	defer cancel()
	rts, err := s.b.Runtimes(ctx)
	if err != nil {
		return err
	}
	if rts == nil {
		rts = []Runtime{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"runtimes": rts})
}
