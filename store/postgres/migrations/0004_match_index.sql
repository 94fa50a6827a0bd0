-- xcomponent PostgreSQL schema, version 4: routing by data against the database. Runtimes that
-- share the database resolve broadcasts, cascades and cross-component events with one query on
-- the live snapshot rows (store.Matcher): the live rows of a machine, and their context by
-- containment (context @> '{"orderId": "…"}'). Only new indexes on fsm_snapshots, partial on
-- the live rows.
CREATE INDEX IF NOT EXISTS idx_fsm_snapshots_live ON fsm_snapshots (component_name, machine_name, current_state) WHERE status = 'active';
CREATE INDEX IF NOT EXISTS idx_fsm_snapshots_live_context ON fsm_snapshots USING GIN (context jsonb_path_ops) WHERE status = 'active';
