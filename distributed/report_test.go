package distributed_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/internal/faults"
	"github.com/xcomponent/xcomponent/wire"
)

// judgeTraffic judges, with the fault-injection suite's checker, the commands of traffic(ids,
// k) against the database: the create and the k TICKs of each instance are one ordered stream;
// a reply "applied"/"duplicate" is an acknowledgement, "refused"/"dead-lettered" says not
// applied. Every acknowledged command must be in fsm_events once, none twice, in order, and
// every instance (of the whole database) consistent with its log. It fails the test if not,
// and records the scenario's row (internal/faults).
func judgeTraffic(t *testing.T, dsn string, ids []string, k int, rep *replies, scenario, target string, recovery time.Duration, from, notes string) {
	t.Helper()
	led := faults.NewLedger()
	for _, id := range ids {
		led.Sent(id, "create-"+id)
		for n := range k {
			led.Sent(id, fmt.Sprintf("tick-%s-%d", id, n))
		}
	}
	rep.mu.Lock()
	for cmd, reps := range rep.by {
		for _, r := range reps {
			switch r.Status {
			case wire.ReplyApplied:
				var v int64
				if r.Command == wire.ChannelTriggerEvent && r.Instance != nil {
					v = r.Instance.Version
				}
				led.Ack(cmd, instanceOf(cmd), v)
			case wire.ReplyDuplicate:
				led.Ack(cmd, instanceOf(cmd), 0)
			case wire.ReplyRefused, wire.ReplyDeadLettered:
				led.Refused(cmd)
			}
		}
	}
	rep.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	st, err := faults.ReadSpec(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	v := faults.Judge(led, st, func(e faults.Event) string {
		switch {
		case e.Seq == 0:
			return "create-" + e.Instance
		case e.Type == "TICK":
			return fmt.Sprintf("tick-%s-%v", e.Instance, e.Payload["n"])
		}
		return ""
	})
	faults.Check(t, v)
	row := faults.RowOf(scenario, target, v, st)
	row.Recovery, row.RecoveryFrom, row.Notes = recovery, from, notes
	faults.Record(t, row)
}

// since waits for cond and returns how long it took from start.
func since(t *testing.T, start time.Time, what string, cond func() bool) time.Duration {
	t.Helper()
	eventually(t, what, cond)
	return time.Since(start)
}
