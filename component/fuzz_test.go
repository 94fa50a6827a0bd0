package component

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParse checks that no input makes the loader panic or hang (5 s at most), that Parse
// and Validate agree, that every problem has a message and a position inside the file, that a
// component it accepts can be diagrammed and validated, and that it survives the trip a
// distributed dashboard makes it take (checkAnnounced).
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
		start := time.Now()
		ps := Validate(data, "fuzz.yaml")
		c, err := Parse(data, "fuzz.yaml")
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("loading %d bytes took %v", len(data), d)
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		hasError := false
		for _, p := range ps {
			if p.Message == "" || p.Pos.Line < 0 || p.Pos.Line > lines+1 || p.Pos.Col < 0 {
				t.Fatalf("problem without a message or outside the file (%d lines): %+v", lines, p)
			}
			hasError = hasError || p.Severity == SeverityError
		}
		if err != nil {
			var le *LoadError
			if !errors.As(err, &le) || len(le.Problems) == 0 {
				t.Fatalf("Parse error is not a *LoadError with problems: %v", err)
			}
			if !hasError {
				t.Fatalf("Parse failed (%v) but Validate found no error", err)
			}
			return
		}
		if hasError {
			t.Fatalf("Parse accepted what Validate has errors for: %v", ps)
		}
		checkAnnounced(t, c)
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

// checkAnnounced: a runtime announces its component as JSON (its Raw document, see
// distributed's componentJSON) and dashboards load that JSON with Parse. What they load must be
// the component the runtime runs.
func checkAnnounced(t *testing.T, c *Component) {
	t.Helper()
	if c.Raw == nil {
		return
	}
	announced, err := json.Marshal(c.Raw)
	if err != nil {
		return // runtimes then announce json.Marshal(c): not a document Parse reads
	}
	back, err := Parse(announced, "announce")
	if err != nil {
		t.Fatalf("the announced JSON of a valid component does not load: %v\n%s", err, announced)
	}
	want, err1 := json.Marshal(c)
	got, err2 := json.Marshal(back)
	if err1 != nil || err2 != nil {
		t.Fatalf("components do not encode: %v / %v", err1, err2)
	}
	if !bytes.Equal(want, got) {
		t.Fatalf("the announced component differs from the loaded one:\nloaded    %s\nannounced %s", want, got)
	}
}
