-- xcomponent SQLite schema, version 1.
-- The same tables as the PostgreSQL store (store/postgres/migrations), in SQLite types:
-- ids are TEXT, JSON is TEXT, times are INTEGER milliseconds since the epoch.

-- Append-only audit log: one row per creation and per transition.
CREATE TABLE IF NOT EXISTS fsm_events (
    id                     TEXT PRIMARY KEY,
    instance_id            TEXT NOT NULL,
    machine_name           TEXT NOT NULL,
    component_name         TEXT,
    event_type             TEXT NOT NULL,
    event_payload          TEXT DEFAULT '{}',
    from_state             TEXT,
    to_state               TEXT,
    context                TEXT DEFAULT '{}',
    public_member_snapshot TEXT, -- kept for compatibility; the SQLite store leaves it NULL
    source_component_name  TEXT,
    correlation_id         TEXT,
    causation_id           TEXT,
    caused                 TEXT DEFAULT '[]',
    persisted_at           INTEGER NOT NULL,
    created_at             INTEGER DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    seq                    INTEGER, -- the instance version after this event
    actor                  TEXT,
    source                 TEXT
);
CREATE INDEX IF NOT EXISTS idx_fsm_events_instance_id ON fsm_events (instance_id);
CREATE INDEX IF NOT EXISTS idx_fsm_events_persisted_at ON fsm_events (persisted_at);
CREATE INDEX IF NOT EXISTS idx_fsm_events_correlation_id ON fsm_events (correlation_id);
CREATE INDEX IF NOT EXISTS idx_fsm_events_machine_name ON fsm_events (machine_name);
CREATE INDEX IF NOT EXISTS idx_fsm_events_event_type ON fsm_events (event_type);
CREATE UNIQUE INDEX IF NOT EXISTS idx_fsm_events_instance_seq ON fsm_events (instance_id, seq) WHERE seq IS NOT NULL;

-- Current state: one row per instance, written on every transition.
CREATE TABLE IF NOT EXISTS fsm_snapshots (
    instance_id         TEXT PRIMARY KEY,
    machine_name        TEXT NOT NULL,
    current_state       TEXT NOT NULL,
    context             TEXT DEFAULT '{}',
    event_count         INTEGER DEFAULT 0, -- events of the instance, creation included (version + 1)
    pending_timeouts    TEXT DEFAULT '[]', -- the armed timers (store.Timer JSON)
    created_at          INTEGER,
    updated_at          INTEGER,
    component_name      TEXT,
    status              TEXT,
    is_entry_point      INTEGER,
    parent_instance_id  TEXT,
    parent_machine_name TEXT,
    version             INTEGER
);
CREATE INDEX IF NOT EXISTS idx_fsm_snapshots_machine_name ON fsm_snapshots (machine_name);
CREATE INDEX IF NOT EXISTS idx_fsm_snapshots_current_state ON fsm_snapshots (current_state);
CREATE INDEX IF NOT EXISTS idx_fsm_snapshots_updated_at ON fsm_snapshots (updated_at);
CREATE INDEX IF NOT EXISTS idx_fsm_snapshots_component_updated ON fsm_snapshots (component_name, updated_at);
CREATE INDEX IF NOT EXISTS idx_fsm_snapshots_parent ON fsm_snapshots (parent_instance_id) WHERE parent_instance_id IS NOT NULL;

-- Transactional outbox: messages a committed transition must still deliver.
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY, -- insertion order
    id         TEXT NOT NULL UNIQUE,
    component  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    body       BLOB,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_outbox_component ON outbox (component, seq);

-- Inbox: ids of applied commands and messages (idempotency), pruned by age.
CREATE TABLE IF NOT EXISTS inbox (
    id         TEXT PRIMARY KEY,
    applied_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_inbox_applied_at ON inbox (applied_at);

DROP VIEW IF EXISTS event_history;
CREATE VIEW event_history AS
    SELECT fsm_events.*, datetime(persisted_at / 1000.0, 'unixepoch', 'subsec') AS event_time
    FROM fsm_events
    ORDER BY persisted_at DESC;

DROP VIEW IF EXISTS active_instances;
CREATE VIEW active_instances AS
    SELECT * FROM fsm_snapshots WHERE status = 'active';
