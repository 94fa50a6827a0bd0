-- xcomponent SQLite schema, version 7: the reason an operator gave for what they did (create,
-- send, terminate, retry), kept with its event for the audit trail.
ALTER TABLE fsm_events ADD COLUMN reason TEXT;
