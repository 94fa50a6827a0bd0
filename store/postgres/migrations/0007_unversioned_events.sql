-- xcomponent PostgreSQL schema, version 8: a partial index on the events written without a
-- version (by another tool, such as xcomponent-ai), so that the first page of a paged history
-- finds them without scanning the instance's versioned events.
-- Versioned rows (every row this store writes) are not in the index: it costs writes nothing.
CREATE INDEX IF NOT EXISTS idx_fsm_events_unversioned ON fsm_events (instance_id) WHERE seq IS NULL;
