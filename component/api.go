package component

import (
	"fmt"
	"strings"
)

// Severity says whether a problem stops a component from loading.
type Severity string

// Problem severities.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Problem is one load error or validation warning, with where it is.
type Problem struct {
	Severity Severity `json:"severity"`
	Pos      Pos      `json:"pos"`
	// Path is the YAML path, e.g. "stateMachines[1].transitions[3].to".
	Path    string `json:"path"`
	Message string `json:"message"`
}

// String formats the problem as "file:line:col: severity: path: message".
func (p Problem) String() string {
	var b strings.Builder
	if p.Pos.File != "" {
		b.WriteString(p.Pos.File)
		b.WriteByte(':')
	}
	if p.Pos.Line > 0 {
		fmt.Fprintf(&b, "%d:%d: ", p.Pos.Line, p.Pos.Col)
	} else if p.Pos.File != "" {
		b.WriteByte(' ')
	}
	b.WriteString(string(p.Severity))
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// LoadError is returned when a component has errors; it lists all of them.
type LoadError struct {
	File     string
	Problems []Problem // errors first, in file order; warnings are not included
}

func (e *LoadError) Error() string {
	if len(e.Problems) == 0 {
		return "load " + e.File + ": invalid component"
	}
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// FieldError is one contextSchema violation, named by field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error formats the violation as "field message", e.g. "amount is required".
func (e FieldError) Error() string { return e.Field + " " + e.Message }
