// Package conformance runs scenarios through the real `xcomponent` binary, the way an
// external conformance suite does: `xcomponent simulate FILE --machine M [--context JSON]
// --steps JSON --json`, parsing its JSON; and `xcomponent validate` on broken files.
//
// The scenarios live in one file per theme of docs/semantics.md (selection, timers, effects,
// routing, lifecycle, validation, xcomponent-ai compatibility); the component files in
// testdata/. A failing scenario documents expected behaviour: it is never
// skipped.
package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// bin is the xcomponent binary built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if b := os.Getenv("XCOMPONENT_BIN"); b != "" {
		bin = b
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "xc-conformance-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "xcomponent")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/xcomponent/xcomponent/cmd/xcomponent")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "conformance: go build ./cmd/xcomponent:", err)
		return 1
	}
	return m.Run()
}

// result is what `xcomponent` did.
type result struct {
	code           int
	stdout, stderr string
}

func runBin(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = strings.NewReader("")
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run %s %v: %v", bin, args, err)
		}
		code = ee.ExitCode()
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// report is the JSON of `simulate --json`.
type report struct {
	Path      []string     `json:"path"`
	Instances []instReport `json:"instances"`
	Steps     []stepReport `json:"steps"`
}

type instReport struct {
	Index            int            `json:"index"`
	ID               string         `json:"id"`
	MachineName      string         `json:"machineName"`
	CurrentState     string         `json:"currentState"`
	Status           string         `json:"status"`
	Context          map[string]any `json:"context"`
	ParentInstanceID string         `json:"parentInstanceId"`
	Version          int            `json:"version"`
}

type stepReport struct {
	Step      int    `json:"step"`
	Accepted  bool   `json:"accepted"`
	Error     string `json:"error"`
	Processed int    `json:"processed"`
}

// scenario is one simulate run and what it must produce.
type scenario struct {
	name    string
	file    string // under testdata/
	machine string
	ctx     string // JSON object; "" = no --context
	steps   string // JSON array

	path  []string // states of instance 0; nil = not checked
	n     int      // number of instances; 0 = not checked
	insts []want
	// acc describes each step: space-separated tokens "A1" (accepted, processed 1), "R0"
	// (refused, processed 0), "A" / "R" (processed not checked), "?1" (accepted not checked).
	// "" = not checked; when set, the number of steps must match.
	acc  string
	errs map[int]string // step index → substring of its error (the step must be refused)
	// check runs extra assertions on the report.
	check func(t *testing.T, r *report)
	// exitCode other than 0 expects simulate to fail; stderr must contain each of stderrHas.
	exitCode  int
	stderrHas []string
}

// want describes one instance of the report.
type want struct {
	i              int
	machine, state string
	status         string // "" = not checked
	version        int    // -1 = not checked
	ctx            string // JSON object: keys that must have these values
	exact          bool   // the context must equal ctx exactly
	absent         []string
	parent         int // index of the parent; -1 = none; -2 = not checked
}

// I describes instance i in machine m and state s (empty strings are not checked).
func I(i int, m, s string) want {
	return want{i: i, machine: m, state: s, version: -1, parent: -2}
}

func (w want) St(status string) want { w.status = status; return w }
func (w want) V(v int) want          { w.version = v; return w }
func (w want) Ctx(js string) want    { w.ctx = js; return w }
func (w want) Exact(js string) want  { w.ctx = js; w.exact = true; return w }
func (w want) Absent(keys ...string) want {
	w.absent = append(w.absent, keys...)
	return w
}
func (w want) Parent(i int) want { w.parent = i; return w }
func (w want) NoParent() want    { w.parent = -1; return w }

// simulate runs a scenario's command and decodes its report (nil when exitCode is expected).
func (sc *scenario) run(t *testing.T) *report {
	t.Helper()
	args := []string{"simulate", filepath.Join("testdata", sc.file), "--machine", sc.machine, "--json"}
	if sc.ctx != "" {
		args = append(args, "--context", sc.ctx)
	}
	steps := sc.steps
	if steps == "" {
		steps = "[]"
	}
	args = append(args, "--steps", steps)
	res := runBin(t, args...)
	if sc.exitCode != 0 {
		if res.code == 0 {
			t.Fatalf("simulate exited 0, want a failure\nstdout: %s", res.stdout)
		}
		if sc.exitCode > 0 && res.code != sc.exitCode {
			t.Errorf("exit code %d, want %d\nstderr: %s", res.code, sc.exitCode, res.stderr)
		}
		for _, s := range sc.stderrHas {
			if !strings.Contains(res.stderr, s) {
				t.Errorf("stderr lacks %q:\n%s", s, res.stderr)
			}
		}
		return nil
	}
	if res.code != 0 {
		t.Fatalf("simulate exited %d\nargs: %q\nstderr: %s\nstdout: %s", res.code, args, res.stderr, res.stdout)
	}
	var r report
	dec := json.NewDecoder(strings.NewReader(res.stdout))
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("simulate output is not the JSON report: %v\n%s", err, res.stdout)
	}
	return &r
}

func (sc *scenario) verify(t *testing.T, r *report) {
	t.Helper()
	dump := func() string {
		b, _ := json.MarshalIndent(r, "", "  ")
		return string(b)
	}
	failed := false
	fail := func(format string, a ...any) {
		t.Helper()
		failed = true
		t.Errorf(format, a...)
	}
	if sc.path != nil && strings.Join(r.Path, ",") != strings.Join(sc.path, ",") {
		fail("path = %v, want %v", r.Path, sc.path)
	}
	// Invariants of every report.
	ids := map[string]bool{}
	for i, in := range r.Instances {
		if in.Index != i {
			fail("instances[%d].index = %d", i, in.Index)
		}
		if !uuidRE.MatchString(in.ID) || ids[in.ID] {
			fail("instances[%d].id %q is not a fresh UUID", i, in.ID)
		}
		ids[in.ID] = true
		if in.Status != "active" && in.Status != "completed" && in.Status != "error" {
			fail("instances[%d].status = %q", i, in.Status)
		}
		if in.Version < 0 {
			fail("instances[%d].version = %d", i, in.Version)
		}
	}
	for i, in := range r.Instances {
		if in.ParentInstanceID != "" && !ids[in.ParentInstanceID] {
			fail("instances[%d].parentInstanceId %s is not a listed instance", i, in.ParentInstanceID)
		}
	}
	if len(r.Instances) == 0 {
		fail("no instances")
	} else if len(r.Path) != r.Instances[0].Version+1 {
		fail("path has %d entries but instance 0 made %d transitions", len(r.Path), r.Instances[0].Version)
	} else if len(r.Path) > 0 && r.Path[len(r.Path)-1] != r.Instances[0].CurrentState {
		fail("path ends in %s, instance 0 is in %s", r.Path[len(r.Path)-1], r.Instances[0].CurrentState)
	}
	var given []json.RawMessage
	if err := json.Unmarshal([]byte(orEmpty(sc.steps)), &given); err == nil && len(given) != len(r.Steps) {
		fail("%d step results for %d steps", len(r.Steps), len(given))
	}
	if sc.n > 0 && len(r.Instances) != sc.n {
		fail("%d instances, want %d", len(r.Instances), sc.n)
	}
	for _, w := range sc.insts {
		if w.i >= len(r.Instances) {
			fail("no instance %d (have %d)", w.i, len(r.Instances))
			continue
		}
		in := r.Instances[w.i]
		if w.machine != "" && in.MachineName != w.machine {
			fail("instance %d machine = %s, want %s", w.i, in.MachineName, w.machine)
		}
		if w.state != "" && in.CurrentState != w.state {
			fail("instance %d state = %s, want %s", w.i, in.CurrentState, w.state)
		}
		if w.status != "" && in.Status != w.status {
			fail("instance %d status = %s, want %s", w.i, in.Status, w.status)
		}
		if w.version >= 0 && in.Version != w.version {
			fail("instance %d version = %d, want %d", w.i, in.Version, w.version)
		}
		if w.ctx != "" {
			exp := mustObject(t, w.ctx)
			if w.exact {
				if !sameJSON(exp, in.Context) {
					fail("instance %d context = %s, want exactly %s", w.i, js(in.Context), js(exp))
				}
			} else {
				for _, k := range sortedKeys(exp) {
					got, ok := in.Context[k]
					if !ok {
						fail("instance %d context lacks %q (want %s): %s", w.i, k, js(exp[k]), js(in.Context))
					} else if !sameJSON(exp[k], got) {
						fail("instance %d context[%q] = %s, want %s", w.i, k, js(got), js(exp[k]))
					}
				}
			}
		}
		for _, k := range w.absent {
			if v, ok := in.Context[k]; ok {
				fail("instance %d context has %q = %s, want it absent", w.i, k, js(v))
			}
		}
		switch {
		case w.parent == -1 && in.ParentInstanceID != "":
			fail("instance %d parentInstanceId = %s, want none", w.i, in.ParentInstanceID)
		case w.parent >= 0:
			if w.parent >= len(r.Instances) {
				fail("instance %d: parent %d does not exist", w.i, w.parent)
			} else if in.ParentInstanceID != r.Instances[w.parent].ID {
				fail("instance %d parentInstanceId = %q, want instance %d (%s)", w.i, in.ParentInstanceID, w.parent, r.Instances[w.parent].ID)
			}
		}
	}
	if sc.acc != "" {
		toks := strings.Fields(sc.acc)
		if len(toks) != len(r.Steps) {
			fail("%d step results, want %d", len(r.Steps), len(toks))
		}
		for i, tok := range toks {
			if i >= len(r.Steps) {
				break
			}
			s := r.Steps[i]
			if s.Step != i {
				fail("steps[%d].step = %d", i, s.Step)
			}
			switch tok[0] {
			case 'A':
				if !s.Accepted {
					fail("step %d refused (%q), want accepted", i, s.Error)
				}
			case 'R':
				if s.Accepted {
					fail("step %d accepted, want refused", i)
				} else if s.Error == "" {
					fail("step %d refused without an error message", i)
				}
			}
			if len(tok) > 1 && tok[1:] != "?" {
				p, err := strconv.Atoi(tok[1:])
				if err != nil {
					t.Fatalf("bad acc token %q", tok)
				}
				if s.Processed != p {
					fail("step %d processed = %d, want %d", i, s.Processed, p)
				}
			}
		}
	}
	for i, sub := range sc.errs {
		if i >= len(r.Steps) {
			fail("no step %d", i)
			continue
		}
		s := r.Steps[i]
		if s.Accepted {
			fail("step %d accepted, want refused with %q", i, sub)
		} else if !strings.Contains(strings.ToLower(s.Error), strings.ToLower(sub)) {
			fail("step %d error %q lacks %q", i, s.Error, sub)
		}
	}
	if sc.check != nil {
		sc.check(t, r)
		failed = failed || t.Failed()
	}
	if failed {
		t.Logf("report:\n%s", dump())
	}
}

func runScenarios(t *testing.T, scs []scenario) {
	t.Helper()
	seen := map[string]bool{}
	for i := range scs {
		sc := scs[i]
		if seen[sc.name] {
			t.Fatalf("duplicate scenario name %q", sc.name)
		}
		seen[sc.name] = true
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			r := sc.run(t)
			if r == nil {
				return
			}
			sc.verify(t, r)
		})
	}
}

// scenarioCount is reported by TestScenarioCount.
var allTables []func() []scenario

func register(f func() []scenario) bool {
	allTables = append(allTables, f)
	return true
}

func TestScenarioCount(t *testing.T) {
	n := 0
	for _, f := range allTables {
		n += len(f())
	}
	t.Logf("%d simulate scenarios in %d tables", n, len(allTables))
}

// JSON helpers.

func mustObject(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("bad expected JSON %s: %v", s, err)
	}
	return m
}

func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// sameJSON compares two decoded JSON values; nil and empty maps are the same.
func sameJSON(a, b any) bool {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if (aok || a == nil) && (bok || b == nil) && (aok || bok) {
		if len(am) != len(bm) {
			return false
		}
		for k, v := range am {
			w, ok := bm[k]
			if !ok || !sameJSON(v, w) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func orEmpty(steps string) string {
	if steps == "" {
		return "[]"
	}
	return steps
}

// ctxOf returns instance i's context, failing the test when it does not exist.
func ctxOf(t *testing.T, r *report, i int) map[string]any {
	t.Helper()
	if i >= len(r.Instances) {
		t.Fatalf("no instance %d", i)
	}
	return r.Instances[i].Context
}
