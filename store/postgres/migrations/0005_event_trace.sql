-- xcomponent PostgreSQL schema, version 5: the trace (OpenTelemetry / W3C trace id, 32 hex
-- digits) of each transition, when tracing is on, kept with its event: the audit trail links to
-- the trace. A nullable column: xcomponent-ai's tables stay compatible.
ALTER TABLE fsm_events ADD COLUMN IF NOT EXISTS trace_id TEXT;
