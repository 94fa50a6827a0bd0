-- xcomponent PostgreSQL schema, version 6: the reason an operator gave for what they did
-- (create, send, terminate, retry), kept with its event for the audit trail. A nullable
-- column: xcomponent-ai's tables stay compatible.
ALTER TABLE fsm_events ADD COLUMN IF NOT EXISTS reason TEXT;
