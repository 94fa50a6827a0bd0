-- xcomponent SQLite schema, version 2: what went wrong without undoing a transition (an onEntry
-- hook that failed, a hook method without a handler) is kept with its event.
ALTER TABLE fsm_events ADD COLUMN note TEXT;
