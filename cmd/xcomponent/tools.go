package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/internal/simulate"
)

// fileReport is one file's result in `validate --json`.
type fileReport struct {
	File      string              `json:"file"`
	Component string              `json:"component,omitempty"`
	Valid     bool                `json:"valid"`
	Errors    []component.Problem `json:"errors"`
	Warnings  []component.Problem `json:"warnings"`
}

func newValidateCmd(g *globals) *cobra.Command {
	var strict, asJSON bool
	var maxSize int64
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check component files: errors and warnings with file:line:col",
		Long: "Loads each component file and reports structural errors and semantic warnings.\n" +
			"Exit status 1 when a file has errors (or warnings, with --strict).",
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, files []string) error {
			var reports []fileReport
			var loaded []*component.Component
			for _, f := range files {
				r := fileReport{File: f, Errors: []component.Problem{}, Warnings: []component.Problem{}}
				c, err := component.LoadFileMax(f, maxSize)
				var le *component.LoadError
				switch {
				case errors.As(err, &le):
					r.Errors = append(r.Errors, le.Problems...)
				case err != nil:
					r.Errors = append(r.Errors, component.Problem{Severity: component.SeverityError, Pos: component.Pos{File: f}, Message: err.Error()})
				default:
					r.Component = c.Name
					r.Warnings = append(r.Warnings, c.Warnings...)
					loaded = append(loaded, c)
				}
				reports = append(reports, r)
			}
			if len(loaded) > 0 {
				for _, p := range component.ValidateSet(loaded) {
					for i := range reports {
						if reports[i].File == p.Pos.File {
							reports[i].Warnings = append(reports[i].Warnings, p)
						}
					}
				}
			}
			failed := false
			for i := range reports {
				r := &reports[i]
				if strict {
					for _, w := range r.Warnings {
						w.Severity = component.SeverityError
						r.Errors = append(r.Errors, w)
					}
					r.Warnings = []component.Problem{}
				}
				r.Valid = len(r.Errors) == 0
				failed = failed || !r.Valid
			}
			if asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(reports); err != nil {
					return err
				}
			} else {
				for _, r := range reports {
					for _, p := range r.Errors {
						fmt.Fprintln(g.stdout, p.String())
					}
					for _, p := range r.Warnings {
						fmt.Fprintln(g.stdout, p.String())
					}
					status := "ok"
					if !r.Valid {
						status = "invalid"
					}
					fmt.Fprintf(g.stdout, "%s: %s (%d errors, %d warnings)\n", r.File, status, len(r.Errors), len(r.Warnings))
				}
			}
			if failed {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&strict, "strict", false, "treat warnings as errors")
	cmd.Flags().Int64Var(&maxSize, "max-size", component.MaxFileSize, "largest component file read, in bytes")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func loadOne(file string) (*component.Component, error) {
	c, err := component.LoadFile(file)
	if err != nil {
		return nil, &exitError{code: 1, err: err}
	}
	return c, nil
}

func newDiagramCmd(g *globals) *cobra.Command {
	var machine, format, current string
	cmd := &cobra.Command{
		Use:   "diagram FILE",
		Short: "Print state diagrams (mermaid or dot)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := loadOne(args[0])
			if err != nil {
				return err
			}
			var machines []*component.Machine
			if machine != "" {
				m := c.Machine(machine)
				if m == nil {
					return &exitError{code: 1, err: fmt.Errorf("machine %s not found in component %s", machine, c.Name)}
				}
				machines = append(machines, m)
			} else {
				machines = c.StateMachines
			}
			opt := component.DiagramOptions{CurrentState: current}
			for i, m := range machines {
				if i > 0 {
					fmt.Fprintln(g.stdout)
				}
				switch format {
				case "mermaid":
					if len(machines) > 1 {
						fmt.Fprintf(g.stdout, "%%%% machine %s\n", m.Name)
					}
					fmt.Fprint(g.stdout, component.Mermaid(m, opt))
				case "dot":
					fmt.Fprint(g.stdout, component.Dot(m, opt))
				default:
					return &usageError{fmt.Errorf("--format: %q is not one of mermaid, dot", format)}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&machine, "machine", "", "only this machine")
	cmd.Flags().StringVar(&format, "format", "mermaid", "mermaid|dot")
	cmd.Flags().StringVar(&current, "current-state", "", "highlight this state")
	return cmd
}

func newSimulateCmd(g *globals) *cobra.Command {
	var machine, contextJSON, stepsJSON string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "simulate FILE --machine M --steps JSON [--context JSON]",
		Short: "Run steps against a fresh instance, in memory, on a virtual clock",
		Long: "Loads the component, creates instance 0 of machine M, applies the steps in order and\n" +
			"prints the path. Steps (a JSON array; @FILE reads a file, - reads stdin):\n" +
			"  {\"type\":\"E\",\"payload\":{...},\"instance\":N}   event E to instance N (default 0)\n" +
			"  {\"advance\":\"150ms\"}                          move the virtual clock; due timers fire\n" +
			"  {\"create\":{\"machine\":\"M2\",\"context\":{...}}}  create an instance as the API would\n" +
			"  {\"broadcast\":{\"machine\":\"M2\",\"type\":\"E\",\"payload\":{...},\"state\":\"S\"}}",
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if machine == "" {
				return &usageError{errors.New("--machine is required")}
			}
			c, err := loadOne(args[0])
			if err != nil {
				return err
			}
			var ctxData map[string]any
			if contextJSON != "" {
				raw, err := readArg(contextJSON, g)
				if err != nil {
					return &usageError{fmt.Errorf("--context: %w", err)}
				}
				if err := json.Unmarshal(raw, &ctxData); err != nil {
					return &usageError{fmt.Errorf("--context: not a JSON object: %w", err)}
				}
			}
			var steps []simulate.Step
			if stepsJSON != "" {
				raw, err := readArg(stepsJSON, g)
				if err != nil {
					return &usageError{fmt.Errorf("--steps: %w", err)}
				}
				if steps, err = simulate.ParseSteps(raw); err != nil {
					return &usageError{fmt.Errorf("--steps: %w", err)}
				}
			}
			ctx, stop := signalContext()
			defer stop()
			rep, err := simulate.Run(ctx, c, simulate.Options{Machine: machine, Context: ctxData, Steps: steps, Logger: g.logger()})
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			if asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printTrace(g, rep)
			return nil
		},
	}
	cmd.Flags().StringVar(&machine, "machine", "", "machine of instance 0 (required)")
	cmd.Flags().StringVar(&contextJSON, "context", "", "data of instance 0, a JSON object (@FILE reads a file)")
	cmd.Flags().StringVar(&stepsJSON, "steps", "", "the steps, a JSON array (@FILE reads a file, - stdin)")
	cmd.Flags().StringVar(&stepsJSON, "events", "", "alias of --steps")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// readArg returns a flag's JSON: inline, @FILE, or - for stdin.
func readArg(v string, g *globals) ([]byte, error) {
	switch {
	case v == "-":
		var b strings.Builder
		buf := make([]byte, 32<<10)
		for {
			n, err := g.stdin.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return []byte(b.String()), nil
	case strings.HasPrefix(v, "@"):
		return os.ReadFile(v[1:])
	}
	return []byte(v), nil
}

func printTrace(g *globals, rep *simulate.Report) {
	w := g.stdout
	fmt.Fprintf(w, "path: %s\n", strings.Join(rep.Path, " → "))
	for _, st := range rep.Steps {
		status := "accepted"
		if !st.Accepted {
			status = "refused: " + st.Error
		}
		fmt.Fprintf(w, "step %d: %s (%d instances transitioned)\n", st.Step, status, st.Processed)
		for _, ev := range st.Trace {
			switch d := ev.Data.(type) {
			case xc.StateChanged:
				fmt.Fprintf(w, "  %s %s: %s → %s on %s\n", short(ev.InstanceID), d.MachineName, d.PreviousState, d.NewState, d.Event.Type)
			case xc.InstanceCreated:
				fmt.Fprintf(w, "  %s %s: created in %s\n", short(ev.InstanceID), d.MachineName, d.CurrentState)
			case xc.EventIgnored:
				fmt.Fprintf(w, "  %s ignored: %s\n", short(ev.InstanceID), d.Reason)
			case xc.TimeoutFired:
				fmt.Fprintf(w, "  %s timer fired: %s\n", short(ev.InstanceID), d.Event.Type)
			case xc.HookError:
				fmt.Fprintf(w, "  %s %s: %s\n", short(ev.InstanceID), ev.Kind(), d.Error)
			case xc.InstanceError:
				fmt.Fprintf(w, "  %s %s: %s\n", short(ev.InstanceID), ev.Kind(), d.Error)
			}
		}
	}
	fmt.Fprintln(w, "instances:")
	for _, in := range rep.Instances {
		ctx, _ := json.Marshal(in.Context)
		fmt.Fprintf(w, "  [%d] %s %s %s (%s, version %d) %s\n", in.Index, short(in.ID), in.MachineName, in.CurrentState, in.Status, in.Version, ctx)
	}
}

// short abbreviates an id for traces: the end of a UUIDv7 varies, its start is a timestamp.
func short(id string) string {
	if len(id) > 8 {
		return id[len(id)-8:]
	}
	return id
}
