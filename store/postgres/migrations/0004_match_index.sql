-- xcomponent PostgreSQL schema, version 4: routing by data against the database. Runtimes that
-- share the database resolve broadcasts, cascades and cross-component events with one query on
-- the live snapshot rows (store.Matcher). This index serves the live rows of a machine (and
-- state); the properties that equality rules look at get their own partial expression indexes
-- (idx_fsm_route_*), created by the runtimes for the properties their components route on
-- (store.RouteIndexer): a GIN index on the whole context would tax every transition's snapshot
-- write. Only new indexes on fsm_snapshots.
CREATE INDEX IF NOT EXISTS idx_fsm_snapshots_live ON fsm_snapshots (component_name, machine_name, current_state) WHERE status = 'active';
