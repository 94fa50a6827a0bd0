-- xcomponent SQLite schema, version 4: runtimes sharing the database file route broadcasts,
-- cascades and cross-component events against the live snapshot rows (store.Matcher).
CREATE INDEX IF NOT EXISTS idx_fsm_snapshots_live ON fsm_snapshots (component_name, machine_name, current_state) WHERE status = 'active';
