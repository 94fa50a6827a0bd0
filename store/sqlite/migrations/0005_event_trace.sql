-- xcomponent SQLite schema, version 5: the trace (OpenTelemetry / W3C trace id) of each
-- transition, when tracing is on, kept with its event.
ALTER TABLE fsm_events ADD COLUMN trace_id TEXT;
