package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidateReportsPositions(t *testing.T) {
	code, out, _ := runCLI(t, "validate", "testdata/broken.yaml")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{
		`testdata/broken.yaml:11:13: error: stateMachines[0].transitions[0].to`, `"Ennd"`,
		`testdata/broken.yaml:13:9: error: stateMachines[0].transitions[1]`, "timeoutMs",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestValidateJSONAndStrict(t *testing.T) {
	code, out, _ := runCLI(t, "validate", "--json", "testdata/warn.yaml", "../../examples/approval.yaml")
	if code != 0 {
		t.Fatalf("warnings alone must not fail: exit %d\n%s", code, out)
	}
	var reports []struct {
		File     string
		Valid    bool
		Errors   []map[string]any
		Warnings []struct {
			Message string
			Pos     struct{ Line, Col int }
		}
	}
	if err := json.Unmarshal([]byte(out), &reports); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if len(reports) != 2 || !reports[0].Valid || len(reports[0].Warnings) == 0 || len(reports[1].Warnings) != 0 {
		t.Fatalf("reports: %+v", reports)
	}
	var sawTypo, sawUnreachable bool
	for _, w := range reports[0].Warnings {
		sawTypo = sawTypo || (strings.Contains(w.Message, "timeoutMs") && w.Pos.Line == 12)
		sawUnreachable = sawUnreachable || strings.Contains(w.Message, "Island")
	}
	if !sawTypo || !sawUnreachable {
		t.Fatalf("warnings: %+v", reports[0].Warnings)
	}
	if code, _, _ := runCLI(t, "validate", "--strict", "testdata/warn.yaml"); code != 1 {
		t.Fatalf("--strict: exit %d, want 1", code)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	if code, _, _ := runCLI(t, "validate", "--nope", "x.yaml"); code != 2 {
		t.Fatalf("unknown flag: exit %d", code)
	}
	if code, _, _ := runCLI(t, "simulate", "../../examples/approval.yaml"); code != 2 {
		t.Fatalf("missing --machine: exit %d", code)
	}
	if code, _, _ := runCLI(t, "simulate", "../../examples/approval.yaml", "--machine", "Request", "--steps", "{"); code != 2 {
		t.Fatalf("bad steps: exit %d", code)
	}
}

func TestSimulateJSON(t *testing.T) {
	code, out, errOut := runCLI(t, "simulate", "../../examples/approval.yaml", "--machine", "Request",
		"--context", `{"employee":"ann","amount":9000}`, "--json",
		"--steps", `[{"type":"SUBMIT"},{"advance":"168h"},{"type":"APPROVE"}]`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep struct {
		Path      []string
		Instances []struct {
			Index        int
			CurrentState string
			Status       string
			Version      int
			Context      map[string]any
		}
		Steps []struct {
			Step      int
			Accepted  bool
			Error     string
			Processed int
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rep.Path, ","); got != "Draft,Submitted,DirectorReview,Expired" {
		t.Fatalf("path %s", got)
	}
	if rep.Steps[0].Processed != 1 || !rep.Steps[1].Accepted || rep.Steps[2].Accepted || rep.Steps[2].Error == "" {
		t.Fatalf("steps %+v", rep.Steps)
	}
	in := rep.Instances[0]
	if in.CurrentState != "Expired" || in.Status != "error" || in.Version != 3 || in.Context["category"] != "other" {
		t.Fatalf("instance 0: %+v", in)
	}
}

func TestSimulateLoadErrors(t *testing.T) {
	code, _, errOut := runCLI(t, "simulate", "testdata/broken.yaml", "--machine", "M", "--steps", "[]")
	if code != 1 || !strings.Contains(errOut, "Ennd") {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
}

func TestDiagram(t *testing.T) {
	code, out, _ := runCLI(t, "diagram", "../../examples/approval.yaml", "--machine", "Request")
	if code != 0 || !strings.Contains(out, "stateDiagram-v2") || !strings.Contains(out, "Draft --> Submitted") {
		t.Fatalf("mermaid: %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "diagram", "../../examples/approval.yaml", "--format", "dot")
	if code != 0 || !strings.Contains(out, "digraph") {
		t.Fatalf("dot: %d\n%s", code, out)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "xcomponent ") {
		t.Fatalf("%d %q", code, out)
	}
}

// TestLogFormatJSON: with --log-format json every stderr line is a JSON object, the errors
// of the command included; an unknown format is a usage error.
func TestLogFormatJSON(t *testing.T) {
	for _, args := range [][]string{
		{"--log-format", "json", "validate", "testdata/does-not-exist.yaml"},
		{"--log-format", "json", "serve", "--no-such-flag"},
		{"simulate", "--log-format=json", "testdata/does-not-exist.yaml"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(args, strings.NewReader(""), &stdout, &stderr)
		if code == 0 {
			t.Errorf("%v: exit 0", args)
		}
		for _, line := range strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n") {
			if line == "" && stderr.Len() == 0 {
				continue // nothing logged: the report is on stdout
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(line), &v); err != nil || v["level"] == nil || v["msg"] == nil {
				t.Errorf("%v: stderr line is not a JSON log record: %q", args, line)
			}
		}
	}
	var stderr bytes.Buffer
	if code := run([]string{"--log-format", "yaml", "validate", "x.yaml"}, strings.NewReader(""), io.Discard, &stderr); code != 2 {
		t.Errorf("--log-format yaml: exit %d, want 2 (%s)", code, stderr.String())
	}
}
