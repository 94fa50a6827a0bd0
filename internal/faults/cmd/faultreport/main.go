// Command faultreport prints the markdown table of docs/reliability.md from the rows the
// fault-injection scenarios appended to XCOMPONENT_FAULTS_REPORT (JSON lines):
//
//	go run ./internal/faults/cmd/faultreport /tmp/faults.jsonl
package main

import (
	"fmt"
	"os"

	"github.com/xcomponent/xcomponent/internal/faults"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: faultreport REPORT.jsonl")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "faultreport:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rows, err := faults.ReadRows(f)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return fmt.Errorf("%s: no rows", path)
	}
	r := rows[0]
	fmt.Printf("%d scenarios, %s, %d CPUs, race detector %v, %s.\n\n", len(rows), r.Go, r.CPUs, r.Race, r.At[:10])
	return faults.Markdown(os.Stdout, rows, faults.ScenarioOrder())
}
