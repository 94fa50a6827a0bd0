package component

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// bigComponent is a valid component of n states in a chain, each with one transition.
func bigComponent(n int) []byte {
	var b strings.Builder
	b.WriteString("name: Big\nentryMachine: M\nstateMachines:\n  - name: M\n    initialState: S0\n    states:\n")
	for i := 0; i < n; i++ {
		typ := "regular"
		switch i {
		case 0:
			typ = "entry"
		case n - 1:
			typ = "final"
		}
		fmt.Fprintf(&b, "      - {name: S%d, type: %s}\n", i, typ)
	}
	b.WriteString("    transitions:\n")
	for i := 0; i+1 < n; i++ {
		fmt.Fprintf(&b, "      - {from: S%d, to: S%d, event: E%d, type: triggerable}\n", i, i+1, i)
	}
	return []byte(b.String())
}

// BenchmarkParseLarge loads components of growing size: the time per state must stay flat
// (linear loading), see docs/benchmarks.md.
func BenchmarkParseLarge(b *testing.B) {
	for _, n := range []int{1000, 10000, 60000} {
		src := bigComponent(n)
		b.Run(fmt.Sprintf("states=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := Parse(src, "big.yaml"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestLoadFileSizeCap: a file over the cap is refused with a message naming it, and an
// endless stream (/dev/zero) is not read beyond the cap.
func TestLoadFileSizeCap(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/big.yaml"
	src := bigComponent(2000)
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFileMax(path, int64(len(src))); err != nil {
		t.Fatalf("file at the cap: %v", err)
	}
	_, err := LoadFileMax(path, int64(len(src))-1)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("file over the cap: %v", err)
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		_, err := LoadFile("/dev/zero")
		if err == nil || !strings.Contains(err.Error(), "/dev/zero") || !strings.Contains(err.Error(), "larger than 10485760 bytes") {
			t.Fatalf("/dev/zero: %v", err)
		}
	}
}

// TestLargeComponentLoadsLinearly: 20,000 states load (quadratic checks took 2 s here, 20 s at 60,000), and their
// warnings (duplicate transitions, unreachable states) are still found. Time is measured by
// BenchmarkParseLarge, not asserted here.
func TestLargeComponentLoadsLinearly(t *testing.T) {
	src := string(bigComponent(20000))
	src = strings.Replace(src, "    transitions:\n", "    transitions:\n      - {from: S0, to: S2, event: E0, type: triggerable}\n", 1)
	src = strings.Replace(src, "      - {name: S5, type: regular}\n", "      - {name: S5, type: regular}\n      - {name: Lost, type: final}\n", 1)
	var dup, lost int
	for _, p := range Validate([]byte(src), "big.yaml") {
		if p.Severity == SeverityError {
			t.Fatalf("error: %v", p)
		}
		if strings.Contains(p.Message, "is never taken") {
			dup++
		}
		if strings.Contains(p.Message, `"Lost" is unreachable`) {
			lost++
		}
	}
	if dup != 1 || lost != 1 {
		t.Fatalf("warnings: %d duplicate transitions, %d unreachable Lost; want 1 and 1", dup, lost)
	}
}
