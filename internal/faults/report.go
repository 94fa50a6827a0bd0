package faults

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// ReportEnv names the file the scenarios append their rows to (JSON lines), when set:
// XCOMPONENT_FAULTS_REPORT=/tmp/faults.jsonl go test -race ./internal/faults/ ./internal/e2e/ ./distributed/
// then `go run ./internal/faults/cmd/faultreport /tmp/faults.jsonl` prints the markdown table
// of docs/reliability.md.
const ReportEnv = "XCOMPONENT_FAULTS_REPORT"

// Row is one scenario's figures.
type Row struct {
	// Scenario names the fault ("kill -9 of serve under load"), Target what took it
	// ("serve, SQLite").
	Scenario string `json:"scenario"`
	Target   string `json:"target"`
	// Sent, Acked, Applied… are the Verdict's counts.
	Sent              int `json:"sent"`
	Acked             int `json:"acked"`
	Applied           int `json:"applied"`
	AppliedUnanswered int `json:"appliedUnanswered"`
	Refused           int `json:"refused"`
	LostAcked         int `json:"lostAcked"`
	AppliedTwice      int `json:"appliedTwice"`
	OutOfOrder        int `json:"outOfOrder"`
	Inconsistent      int `json:"inconsistent"`
	// Instances is the number of instances checked against their event log.
	Instances int `json:"instances"`
	// Recovery is the time to recover, measured as RecoveryFrom says.
	Recovery     time.Duration `json:"recoveryNs"`
	RecoveryFrom string        `json:"recoveryFrom"`
	// Notes says anything else the scenario measured (dead letters, faults injected…).
	Notes string `json:"notes,omitempty"`
	// Test is the test that produced the row; Race says it ran with -race; CPUs, Go the machine.
	Test string `json:"test"`
	Race bool   `json:"race"`
	CPUs int    `json:"cpus"`
	Go   string `json:"go"`
	At   string `json:"at"`
}

// RowOf fills a row's counts from a verdict, with the number of instances of the state.
func RowOf(scenario, target string, v Verdict, s *State) Row {
	n := 0
	if s != nil {
		n = len(s.Snapshots)
	}
	return Row{Scenario: scenario, Target: target, Sent: v.Sent, Acked: v.Acked, Applied: v.Applied,
		AppliedUnanswered: v.AppliedUnanswered, Refused: v.Refused, LostAcked: v.LostAcked + v.AppliedRefused + v.Foreign,
		AppliedTwice: v.AppliedTwice, OutOfOrder: v.OutOfOrder, Inconsistent: v.Inconsistent, Instances: n}
}

// Check fails the test with the verdict's problems unless every guarantee held.
func Check(t testing.TB, v Verdict) {
	t.Helper()
	if v.OK() {
		return
	}
	t.Errorf("fault-injection verdict: %d acknowledged lost, %d applied twice, %d applied although refused, %d never sent, %d out of order, %d instances inconsistent with their log:\n  %s",
		v.LostAcked, v.AppliedTwice, v.AppliedRefused, v.Foreign, v.OutOfOrder, v.Inconsistent, strings.Join(v.Problems, "\n  "))
}

// Record logs the row and appends it to the report file when ReportEnv is set. It does not
// judge: the scenario asserts (Check and its own conditions) before recording.
func Record(t testing.TB, r Row) {
	t.Helper()
	r.Test, r.Race, r.CPUs, r.Go = t.Name(), raceEnabled, runtime.NumCPU(), runtime.Version()
	r.At = time.Now().UTC().Format(time.RFC3339)
	t.Logf("faults: %s — %s: sent %d, acknowledged %d, applied %d (%d without answer), refused %d; lost %d, applied twice %d, out of order %d, inconsistent %d of %d instances; recovery %v (%s) %s",
		r.Scenario, r.Target, r.Sent, r.Acked, r.Applied, r.AppliedUnanswered, r.Refused, r.LostAcked, r.AppliedTwice,
		r.OutOfOrder, r.Inconsistent, r.Instances, r.Recovery.Round(time.Millisecond), r.RecoveryFrom, r.Notes)
	path := os.Getenv(ReportEnv)
	if path == "" || t.Failed() {
		return
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Errorf("faults: report row: %v", err)
		return
	}
	// One write per row with O_APPEND: the packages' test binaries run concurrently.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("faults: report: %v", err)
		return
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		t.Errorf("faults: report: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("faults: report: %v", err)
	}
}

// ReadRows reads a report file (JSON lines). A scenario recorded twice (a rerun appending to
// the same file) keeps its last row.
func ReadRows(r io.Reader) ([]Row, error) {
	var rows []Row
	idx := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var row Row
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			return nil, fmt.Errorf("faults: report line %q: %w", line, err)
		}
		k := row.Scenario + "\x00" + row.Target
		if i, ok := idx[k]; ok {
			rows[i] = row
			continue
		}
		idx[k] = len(rows)
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("faults: read report: %w", err)
	}
	return rows, nil
}

// Markdown writes the rows as the table of docs/reliability.md, in the order of order (the
// scenarios' names; others after, sorted).
func Markdown(w io.Writer, rows []Row, order []string) error {
	rank := map[string]int{}
	for i, s := range order {
		rank[s] = i + 1
	}
	sort.SliceStable(rows, func(i, j int) bool {
		ri, rj := rank[rows[i].Scenario], rank[rows[j].Scenario]
		if ri == 0 {
			ri = len(order) + 1
		}
		if rj == 0 {
			rj = len(order) + 1
		}
		if ri != rj {
			return ri < rj
		}
		if rows[i].Scenario != rows[j].Scenario {
			return rows[i].Scenario < rows[j].Scenario
		}
		return rows[i].Target < rows[j].Target
	})
	var b strings.Builder
	b.WriteString("| scenario | target | sent | acknowledged | applied (unanswered) | refused | acknowledged lost | applied twice | out of order | inconsistent / instances | time to recover | notes |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, r := range rows {
		rec := "—"
		if r.RecoveryFrom != "" {
			rec = fmt.Sprintf("%s (%s)", fmtDuration(r.Recovery), r.RecoveryFrom)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d (%d) | %d | **%d** | **%d** | %d | %d / %d | %s | %s |\n",
			r.Scenario, r.Target, r.Sent, r.Acked, r.Applied, r.AppliedUnanswered, r.Refused, r.LostAcked, r.AppliedTwice,
			r.OutOfOrder, r.Inconsistent, r.Instances, rec, r.Notes)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func fmtDuration(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

// ScenarioOrder is the order of the scenarios in the published table.
func ScenarioOrder() []string {
	return []string{ScenarioKillServe, ScenarioKillRuntime, ScenarioBrokerCut, ScenarioBrokerRestart, ScenarioPostgresCut,
		ScenarioDashboardRestart, ScenarioPoison, ScenarioDuplicate, ScenarioReorder, ScenarioClockJump}
}

// The scenarios' names, as the table shows them.
const (
	ScenarioKillServe        = "kill -9 of `serve` under load, restart"
	ScenarioKillRuntime      = "kill -9 of a runtime under load"
	ScenarioBrokerCut        = "RabbitMQ connections cut (TCP proxy)"
	ScenarioBrokerRestart    = "RabbitMQ restarted (stop_app/start_app)"
	ScenarioPostgresCut      = "PostgreSQL connections cut (TCP proxy)"
	ScenarioDashboardRestart = "dashboard killed and restarted"
	ScenarioPoison           = "poison message"
	ScenarioDuplicate        = "duplicated delivery"
	ScenarioReorder          = "reordered delivery"
	ScenarioClockJump        = "wall-clock jump, timers pending"
)
