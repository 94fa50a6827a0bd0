-- xcomponent SQLite schema, version 3: timers any process can fire, and one entry point (see
-- the PostgreSQL migration of the same number).
ALTER TABLE fsm_snapshots ADD COLUMN next_due_at INTEGER; -- earliest pending deadline (ms), NULL: none
ALTER TABLE fsm_snapshots ADD COLUMN timer_lease_until INTEGER; -- end of a process's claim (ms)
UPDATE fsm_snapshots SET next_due_at = (
        SELECT min(json_extract(t.value, '$.dueAt')) FROM json_each(fsm_snapshots.pending_timeouts) t
        WHERE coalesce(json_extract(t.value, '$.spent'), 0) = 0)
    WHERE status = 'active' AND version IS NOT NULL AND json_valid(pending_timeouts)
        AND json_type(pending_timeouts) = 'array';
CREATE INDEX IF NOT EXISTS idx_fsm_snapshots_next_due ON fsm_snapshots (component_name, next_due_at)
    WHERE next_due_at IS NOT NULL;

UPDATE fsm_snapshots SET is_entry_point = 0
    WHERE is_entry_point <> 0 AND EXISTS (
        SELECT 1 FROM fsm_snapshots o
        WHERE o.is_entry_point <> 0 AND o.component_name = fsm_snapshots.component_name
            AND o.machine_name = fsm_snapshots.machine_name
            AND (coalesce(o.created_at, 0), o.instance_id) < (coalesce(fsm_snapshots.created_at, 0), fsm_snapshots.instance_id));
CREATE UNIQUE INDEX IF NOT EXISTS idx_fsm_snapshots_entry_point ON fsm_snapshots (component_name, machine_name)
    WHERE is_entry_point <> 0;
