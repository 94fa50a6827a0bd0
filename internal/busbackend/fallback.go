package busbackend

import (
	"context"
	"errors"
	"fmt"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/wire"
)

// storeLookupTimeout bounds the database look-up of a command whose answer did not come.
const storeLookupTimeout = 5 * time.Second

// outcomeFromStore is what the database the runtimes share says of a command whose answer
// did not come within CommandTimeout: our runtimes record what a command did under its id
// (bus.CommandEventID: the create's INSTANCE_CREATED, the trigger's transition, the
// operator's INSTANCE_TERMINATED / HOOK_RETRIED) in the same transaction as the instance and
// the inbox row, so an entry with that id in the instance's history means the command was
// applied, and the instance record is what it led to (or what followed since). The entry is
// read by its key (store.EventGetter) where the store can. ok is false when there is no
// database, no instance to look in (a create for xcomponent-ai runtimes), no such entry (not
// applied yet, refused, or still queued: the caller answers 504) or the database does not
// answer. A keyed command (Idempotency-Key) found applied is answered as applied, whichever
// attempt applied it.
//
// The reply, when it comes late, is then ignored as for any command no longer awaited.
func (b *Backend) outcomeFromStore(ctx context.Context, w *waiter) (outcome, bool) {
	st := b.cfg.Store
	if st == nil || w.instanceID == "" || ctx.Err() != nil {
		return outcome{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, storeLookupTimeout)
	defer cancel()
	ev, found, err := store.FindEvent(ctx, st, w.instanceID, bus.CommandEventID(w.commandID))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		b.log.Warn("command unanswered and its outcome unreadable in the database", "commandId", w.commandID, "instanceId", w.instanceID, "err", err)
		return outcome{}, false
	}
	if !found {
		// The answer may have come meanwhile.
		select {
		case o := <-w.ch:
			return o, true
		default:
			return outcome{}, false
		}
	}
	rec, err := st.Instance(ctx, w.instanceID)
	if err != nil {
		b.log.Warn("command applied but its instance unreadable in the database", "commandId", w.commandID, "instanceId", w.instanceID, "err", err)
		return outcome{}, false
	}
	in := xc.View(&rec, b.publicMember(rec.Component, rec.Machine), b.clk.Now().UnixMilli())
	o := outcome{in: in, prev: ev.FromState, next: ev.ToState, runtime: b.runtimeOfEvent(ev.ID)}
	if w.channel == wire.ChannelRetryHook && ev.Note != "" {
		// Recorded, but the hook failed again: the runtime's reply would have been a refusal
		// (hook_failed) with the note.
		o.err = fmt.Errorf("%s: %w", ev.Note, xc.ErrHookFailed)
	}
	b.storeAnswers.Add(1)
	b.log.Info("command answer missing at the deadline: answered from the database, where it is applied",
		"commandId", w.commandID, "command", w.channel, "instanceId", w.instanceID, "state", ev.ToState)
	return o, true
}

// StoreAnswers is the number of commands answered from the database because their answer did
// not come in time (for metrics and tests).
func (b *Backend) StoreAnswers() int64 { return b.storeAnswers.Load() }

// CommandsPublished returns the commands published to our runtimes' partitions and
// confirmed by the broker, and the broker messages that carried them (bus.Batcher: several
// commands of one partition per message under load).
func (b *Backend) CommandsPublished() (commands, messages int64) {
	messages, commands = b.batch.Stats()
	return commands, messages
}

// runtimeOfEvent is the name of the runtime that applied event id, when the dashboard saw it.
func (b *Backend) runtimeOfEvent(id string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.runtimeOf[id]
}
