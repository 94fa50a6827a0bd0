package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/internal/faults"
)

// faultsLedger is the ledger in the fault-injection suite's terms (internal/faults): each
// sender is an ordered stream; a 5xx that does not say it applied nothing leaves the outcome
// unknown.
func (l *ledger) faultsLedger() *faults.Ledger {
	fl := faults.NewLedger()
	for _, s := range l.senders {
		for _, tok := range s.sent {
			fl.Sent(s.id, tok)
		}
		for _, a := range s.acks {
			fl.Ack(a.token, a.instance, a.version)
		}
		for _, tok := range s.unknown {
			fl.Unanswered(tok)
		}
		for tok, rej := range s.rejected {
			if rej.status >= 500 && !faults.SaysNotApplied(rej.body) {
				fl.Unanswered(tok)
			} else {
				fl.Refused(tok)
			}
		}
	}
	return fl
}

// judgeAndRecord judges the ledger against the store with the suite's checker (failing the
// test if a guarantee broke) and records the scenario's row.
func judgeAndRecord(t *testing.T, b backend, l *ledger, scenario, target string, recovery time.Duration, from, notes string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), conditionTimeout)
	defer cancel()
	st, err := faults.ReadSpec(ctx, b.spec)
	if err != nil {
		t.Fatal(err)
	}
	v := faults.Judge(l.faultsLedger(), st, faults.ByToken)
	faults.Check(t, v)
	row := faults.RowOf(scenario, target, v, st)
	row.Recovery, row.RecoveryFrom, row.Notes = recovery, from, notes
	faults.Record(t, row)
}
