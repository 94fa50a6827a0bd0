-- xcomponent PostgreSQL schema, version 3: timers any runtime can fire, and one entry point.
--
-- next_due_at is the earliest pending deadline of an active instance (ms epoch, NULL when it
-- has none), computed from pending_timeouts on every write; timer_lease_until is the end of a
-- runtime's claim on the instance's due timers (ms epoch), cleared by every write. A runtime
-- claims due instances of its component with FOR UPDATE SKIP LOCKED, so that the timers of a
-- runtime that died are fired by another one.
ALTER TABLE fsm_snapshots ADD COLUMN IF NOT EXISTS next_due_at BIGINT;
ALTER TABLE fsm_snapshots ADD COLUMN IF NOT EXISTS timer_lease_until BIGINT;
UPDATE fsm_snapshots s SET next_due_at = (
        SELECT min((t->>'dueAt')::bigint) FROM jsonb_array_elements(s.pending_timeouts) t
        WHERE NOT coalesce((t->>'spent')::boolean, false))
    WHERE s.status = 'active' AND s.version IS NOT NULL AND jsonb_typeof(s.pending_timeouts) = 'array'
        AND s.next_due_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_fsm_snapshots_next_due ON fsm_snapshots (component_name, next_due_at)
    WHERE next_due_at IS NOT NULL;

-- At most one entry-point instance per component and machine, whichever runtime creates it
-- (is_entry_point: the auto-created entry point, every instance of a singleton entry machine).
-- Runtimes started together before this index existed may have created several: the oldest
-- keeps the flag, the others become ordinary instances.
UPDATE fsm_snapshots s SET is_entry_point = false
    WHERE s.is_entry_point AND EXISTS (
        SELECT 1 FROM fsm_snapshots o
        WHERE o.is_entry_point AND o.component_name = s.component_name AND o.machine_name = s.machine_name
            AND (coalesce(o.created_at, 'epoch'), o.instance_id) < (coalesce(s.created_at, 'epoch'), s.instance_id));
CREATE UNIQUE INDEX IF NOT EXISTS idx_fsm_snapshots_entry_point ON fsm_snapshots (component_name, machine_name)
    WHERE is_entry_point;
