-- xcomponent SQLite schema, version 6: every transition inserts an fsm_events row, and each
-- index of the table is one more b-tree insert on the single writer's path. No query of this
-- store filters or sorts fsm_events by persisted_at, machine_name or event_type (history reads
-- go by instance_id or correlation_id), so those three indexes cost every write and served
-- nothing. The PostgreSQL schema keeps them (it is shared with xcomponent-ai).
DROP INDEX IF EXISTS idx_fsm_events_persisted_at;
DROP INDEX IF EXISTS idx_fsm_events_machine_name;
DROP INDEX IF EXISTS idx_fsm_events_event_type;
