package faults_test

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/internal/faults"
)

// history builds an instance's log: a creation then one TICK per token (self-loops on S).
func history(id string, toks ...string) []faults.Event {
	evs := []faults.Event{{ID: id + "-c", Instance: id, Type: "INSTANCE_CREATED", To: "S", Seq: 0}}
	for i, tok := range toks {
		evs = append(evs, faults.Event{ID: tok, Instance: id, Type: "TICK", From: "S", To: "S", Seq: int64(i + 1),
			Payload: map[string]any{"tok": tok}})
	}
	return evs
}

func snapshot(id string, version int64) faults.Snapshot {
	return faults.Snapshot{ID: id, State: "S", Version: version, EventCount: version + 1}
}

// TestJudge: the judge itself, on logs with each kind of fault it must catch, and one without.
func TestJudge(t *testing.T) {
	t.Parallel()
	ledger := func() *faults.Ledger {
		l := faults.NewLedger()
		for _, tok := range []string{"a", "b", "c", "d"} {
			l.Sent("s", tok)
		}
		l.Ack("a", "i", 1)
		l.Ack("b", "i", 2)
		l.Unanswered("c")
		l.Refused("d")
		return l
	}
	state := func(toks ...string) *faults.State {
		return &faults.State{Events: map[string][]faults.Event{"i": history("i", toks...)},
			Snapshots: map[string]faults.Snapshot{"i": snapshot("i", int64(len(toks)))}}
	}
	for _, tc := range []struct {
		name  string
		state *faults.State
		check func(v faults.Verdict) bool
	}{
		{"sound", state("a", "b", "c"), func(v faults.Verdict) bool {
			return v.OK() && v.Sent == 4 && v.Acked == 2 && v.Applied == 3 && v.AppliedUnanswered == 1 && v.Refused == 1
		}},
		{"acknowledged lost", state("a", "c"), func(v faults.Verdict) bool { return v.LostAcked == 1 }},
		{"acknowledged at another version", state("b", "a"), func(v faults.Verdict) bool { return v.LostAcked == 2 && v.OutOfOrder == 1 }},
		{"applied twice", state("a", "b", "b"), func(v faults.Verdict) bool { return v.AppliedTwice == 1 }},
		{"refused but applied", state("a", "b", "d"), func(v faults.Verdict) bool { return v.AppliedRefused == 1 }},
		{"never sent", state("a", "b", "z"), func(v faults.Verdict) bool { return v.Foreign == 1 }},
		{"out of order", state("c", "a", "b"), func(v faults.Verdict) bool { return v.OutOfOrder == 1 }},
		{"snapshot behind its log", func() *faults.State {
			s := state("a", "b")
			s.Snapshots["i"] = snapshot("i", 1)
			return s
		}(), func(v faults.Verdict) bool { return v.Inconsistent == 1 }},
		{"gap in the log", func() *faults.State {
			s := state("a", "b")
			s.Events["i"][2].Seq = 3
			s.Snapshots["i"] = snapshot("i", 3)
			return s
		}(), func(v faults.Verdict) bool { return v.Inconsistent == 1 }},
		{"lost update", func() *faults.State {
			s := state("a", "b")
			s.Events["i"][2].From = "T"
			return s
		}(), func(v faults.Verdict) bool { return v.Inconsistent == 1 }},
	} {
		v := faults.Judge(ledger(), tc.state, faults.ByToken)
		if !tc.check(v) {
			t.Errorf("%s: verdict %+v", tc.name, v)
		}
		if tc.name != "sound" && v.OK() {
			t.Errorf("%s: judged sound", tc.name)
		}
	}
}

// TestReport: rows recorded to the report file render as the markdown table, a rerun's row
// replacing the first.
func TestReport(t *testing.T) {
	path := t.TempDir() + "/r.jsonl"
	t.Setenv(faults.ReportEnv, path)
	faults.Record(t, faults.Row{Scenario: faults.ScenarioPoison, Target: "x", Sent: 1})
	faults.Record(t, faults.Row{Scenario: faults.ScenarioKillServe, Target: "y", Sent: 2, Recovery: 1500 * time.Millisecond, RecoveryFrom: "restart"})
	faults.Record(t, faults.Row{Scenario: faults.ScenarioPoison, Target: "x", Sent: 3})
	data, err := readFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := faults.ReadRows(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := faults.Markdown(&b, rows, faults.ScenarioOrder()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[2], "| kill -9 of `serve`") || !strings.Contains(lines[2], "1.5s (restart)") ||
		!strings.HasPrefix(lines[3], "| poison message | x | 3 |") {
		t.Fatalf("table:\n%s", b.String())
	}
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }
