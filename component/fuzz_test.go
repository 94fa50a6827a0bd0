package component

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input makes the loader panic or hang, and that a component it
// accepts can be diagrammed and validated.
func FuzzParse(f *testing.F) {
	// The small fixtures only: large seeds slow the fuzzing engine to a crawl.
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil && len(data) <= 2048 {
			f.Add(data)
		}
	}
	for _, s := range []string{
		"", "~", "[]", "name: X", minimal, diagramSource,
		"a: &x [*x]",
		"name: X\nstateMachines: &m [{name: M, initialState: A, states: *m}]",
		"<<: {name: X}\nstateMachines: []",
		"name: X\nstateMachines:\n  - name: M\n\tinitialState: A\n",
		minimal + "        guard: \"context.a ===\"\n",
		minimal + "        guards: [{expression: 'len(context.x) > (1'}]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ps := Validate(data, "fuzz.yaml")
		c, err := Parse(data, "fuzz.yaml")
		if err != nil {
			if len(ps) == 0 {
				t.Fatalf("Parse failed (%v) but Validate found nothing", err)
			}
			return
		}
		for _, m := range c.StateMachines {
			_ = Mermaid(m, DiagramOptions{CurrentState: m.InitialState})
			_ = Dot(m, DiagramOptions{})
			_, _ = m.ValidateContext(map[string]any{"amount": "12", "x": nil})
			for _, tr := range m.Transitions {
				_, _ = tr.GuardsPass(map[string]any{"a": 1}, tr.Event, nil)
			}
		}
		_ = MermaidComponent(c, DiagramOptions{})
		_ = DotComponent(c, DiagramOptions{})
		_ = ValidateSet([]*Component{c, c})
	})
}
