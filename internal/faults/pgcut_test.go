package faults_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/internal/faults"
	"github.com/xcomponent/xcomponent/internal/tcpproxy"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
)

// TestServePostgresCut: `serve` on PostgreSQL through a TCP proxy, under a stream of events
// from concurrent senders; the proxy resets every database connection and refuses new ones,
// twice, while requests are in flight. During the cut requests fail (503, or an unknown
// outcome when the connection died during a COMMIT), the process stays up; once the
// database is back the stream resumes without a restart. Every acknowledged event is stored
// once with the version its answer gave, every instance is consistent with its log. Time to
// recover: from the restore to the first acknowledged event.
func TestServePostgresCut(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection: -short")
	}
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	proxy := tcpproxy.New(t, "127.0.0.1:5432")
	viaProxy := strings.Replace(dsn, "127.0.0.1:5432", proxy.Addr(), 1)
	if viaProxy == dsn {
		t.Fatalf("unexpected DSN %s", dsn)
	}
	srv := startServe(t, "serve-pgcut", viaProxy)
	var ids []string
	for i := range 8 {
		ids = append(ids, createHTTP(t, srv.URL, map[string]any{"key": fmt.Sprint("pgcut-", i)}))
	}
	led := faults.NewLedger()
	tr := startHTTPTraffic(led, srv.URL, "pgcut", ids)
	var worst time.Duration
	const rounds = 2
	for round := range rounds {
		tr.waitAcks(t, 150, fmt.Sprintf("round %d: before the cut", round))
		failed := tr.failures.Load()
		proxy.Cut()
		// Cut until the server has seen it: requests failing and a reconnection refused.
		if err := faults.Poll(waitFor, func() (bool, error) { return tr.failures.Load() > failed && proxy.Refused() > 0, nil }); err != nil {
			t.Fatalf("round %d: the cut went unnoticed (%s): %v", round, tr.statusCounts(), err)
		}
		proxy.Restore()
		d := tr.waitAcks(t, 1, fmt.Sprintf("round %d: after the restore", round))
		worst = max(worst, d)
		t.Logf("round %d: PostgreSQL cut; first event acknowledged %v after the restore", round, d.Round(time.Millisecond))
	}
	tr.waitAcks(t, 100, "after the last restore")
	tr.halt()
	srv.Stop()
	for st, body := range tr.sampleAnswers() {
		t.Logf("answer %d during the cuts, e.g. %s", st, body)
	}

	st, err := faults.ReadSpec(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	v := faults.Judge(led, st, faults.ByToken)
	faults.Check(t, v)
	if v.Acked < rounds*150 {
		t.Errorf("%d events acknowledged", v.Acked)
	}
	row := faults.RowOf(faults.ScenarioPostgresCut, "`serve`, PostgreSQL", v, st)
	row.Recovery, row.RecoveryFrom = worst, "restore → first event acknowledged, worst of 2 cuts"
	row.Notes = fmt.Sprintf("8 concurrent senders; %d cuts; answers %s (0: no answer); of the 503s, %d said \"outcome unknown\" (connection lost during COMMIT), the others \"nothing applied\" and were not",
		rounds, tr.statusCounts(), tr.unknownOutcome.Load())
	faults.Record(t, row)
}
