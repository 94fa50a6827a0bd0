package e2e

import (
	"path/filepath"
	"testing"
)

// TestServeStartsInboxPruning: `serve` on a SQL store starts the periodic inbox pruning with
// the retention of --inbox-retention; --inbox-retention 0 and the memory store start none.
func TestServeStartsInboxPruning(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, spec, retention, want string
	}{
		{"sqlite", "sqlite:" + filepath.Join(dir, "a.db"), "36h", "36h0m0s"},
		{"never", "sqlite:" + filepath.Join(dir, "b.db"), "0", ""},
		{"memory", "memory", "36h", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServe(t, "prune-"+tc.name, tc.spec, "--inbox-retention", tc.retention)
			got := srv.Logged("inbox pruning")
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("pruning started: %+v", got)
			case tc.want != "" && (len(got) != 1 || got[0].Attrs["retention"] != tc.want || got[0].Attrs["every"] != "1h0m0s"):
				t.Errorf("pruning log lines %+v, want one with retention %s every 1h", got, tc.want)
			}
		})
	}
}
