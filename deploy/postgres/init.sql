-- Generated from store/postgres/migrations by `go generate ./store/postgres`. DO NOT EDIT.
-- The xcomponent runtime applies the same migrations itself at start.

-- migration 0001_init.sql
-- xcomponent PostgreSQL schema, version 1.
--
-- fsm_events and fsm_snapshots are column-compatible with xcomponent-ai: their columns, types,
-- defaults and indexes are xcomponent-ai's, and ours are added as nullable columns, so that
-- xcomponent-ai tools keep working on a database written by xcomponent (and a database
-- created by xcomponent-ai is adopted as it is). Every statement is idempotent.

-- Append-only audit log: one row per creation and per transition.
CREATE TABLE IF NOT EXISTS fsm_events (
    id                     UUID PRIMARY KEY,
    instance_id            UUID NOT NULL,
    machine_name           VARCHAR(255) NOT NULL,
    component_name         VARCHAR(255),
    event_type             VARCHAR(255) NOT NULL,
    event_payload          JSONB DEFAULT '{}',
    from_state             VARCHAR(255),
    to_state               VARCHAR(255),
    context                JSONB DEFAULT '{}',
    public_member_snapshot JSONB,
    source_component_name  VARCHAR(255),
    correlation_id         UUID,
    causation_id           UUID,
    caused                 JSONB DEFAULT '[]',
    persisted_at           BIGINT NOT NULL,
    created_at             TIMESTAMPTZ DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_fsm_events_instance_id ON fsm_events (instance_id);
CREATE INDEX IF NOT EXISTS idx_fsm_events_persisted_at ON fsm_events (persisted_at);
CREATE INDEX IF NOT EXISTS idx_fsm_events_correlation_id ON fsm_events (correlation_id);
CREATE INDEX IF NOT EXISTS idx_fsm_events_machine_name ON fsm_events (machine_name);
CREATE INDEX IF NOT EXISTS idx_fsm_events_event_type ON fsm_events (event_type);

-- Our columns (nullable). seq: the instance version after the event (0 = creation);
-- actor: who sent it (API token name, timer, hook, component); source: api, timer, cascade, …;
-- ord: insertion order, the tie-break between events of the same millisecond.
CREATE SEQUENCE IF NOT EXISTS fsm_events_ord_seq;
ALTER TABLE fsm_events ADD COLUMN IF NOT EXISTS seq BIGINT;
ALTER TABLE fsm_events ADD COLUMN IF NOT EXISTS actor VARCHAR(255);
ALTER TABLE fsm_events ADD COLUMN IF NOT EXISTS source VARCHAR(255);
ALTER TABLE fsm_events ADD COLUMN IF NOT EXISTS ord BIGINT DEFAULT nextval('fsm_events_ord_seq');
ALTER SEQUENCE fsm_events_ord_seq OWNED BY fsm_events.ord;
CREATE UNIQUE INDEX IF NOT EXISTS idx_fsm_events_instance_seq ON fsm_events (instance_id, seq) WHERE seq IS NOT NULL;

-- Current state: one row per instance, written on every transition.
CREATE TABLE IF NOT EXISTS fsm_snapshots (
    instance_id      UUID PRIMARY KEY,
    machine_name     VARCHAR(255) NOT NULL,
    current_state    VARCHAR(255) NOT NULL,
    context          JSONB DEFAULT '{}',
    event_count      INTEGER DEFAULT 0,
    pending_timeouts JSONB DEFAULT '[]',
    created_at       TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_fsm_snapshots_machine_name ON fsm_snapshots (machine_name);
CREATE INDEX IF NOT EXISTS idx_fsm_snapshots_current_state ON fsm_snapshots (current_state);
CREATE INDEX IF NOT EXISTS idx_fsm_snapshots_updated_at ON fsm_snapshots (updated_at);

-- Our columns (nullable). event_count = version + 1; pending_timeouts holds store.Timer JSON.
ALTER TABLE fsm_snapshots ADD COLUMN IF NOT EXISTS component_name VARCHAR(255);
ALTER TABLE fsm_snapshots ADD COLUMN IF NOT EXISTS status VARCHAR(16);
ALTER TABLE fsm_snapshots ADD COLUMN IF NOT EXISTS is_entry_point BOOLEAN;
ALTER TABLE fsm_snapshots ADD COLUMN IF NOT EXISTS parent_instance_id UUID;
ALTER TABLE fsm_snapshots ADD COLUMN IF NOT EXISTS parent_machine_name VARCHAR(255);
ALTER TABLE fsm_snapshots ADD COLUMN IF NOT EXISTS version BIGINT;
CREATE INDEX IF NOT EXISTS idx_fsm_snapshots_component_updated ON fsm_snapshots (component_name, updated_at DESC, instance_id);
CREATE INDEX IF NOT EXISTS idx_fsm_snapshots_parent ON fsm_snapshots (parent_instance_id) WHERE parent_instance_id IS NOT NULL;

-- Transactional outbox: messages a committed transition must still deliver.
CREATE TABLE IF NOT EXISTS outbox (
    seq        BIGSERIAL PRIMARY KEY, -- insertion order
    id         TEXT NOT NULL UNIQUE,
    component  VARCHAR(255) NOT NULL,
    kind       VARCHAR(255) NOT NULL,
    body       BYTEA,
    created_at BIGINT NOT NULL -- ms epoch
);
CREATE INDEX IF NOT EXISTS idx_outbox_component ON outbox (component, seq);

-- Inbox: ids of applied commands and messages (idempotency), pruned by age.
CREATE TABLE IF NOT EXISTS inbox (
    id         TEXT PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_inbox_applied_at ON inbox (applied_at);

-- Readable history, newest first.
DROP VIEW IF EXISTS event_history;
CREATE VIEW event_history AS
    SELECT e.*, to_timestamp(e.persisted_at / 1000.0) AS event_time
    FROM fsm_events e
    ORDER BY e.persisted_at DESC;

-- Live instances.
DROP VIEW IF EXISTS active_instances;
CREATE VIEW active_instances AS
    SELECT * FROM fsm_snapshots WHERE status = 'active';

-- migration 0002_event_note.sql
-- xcomponent PostgreSQL schema, version 2: what went wrong without undoing a transition (an
-- onEntry hook that failed, a hook method without a handler) is kept with its event.
ALTER TABLE fsm_events ADD COLUMN IF NOT EXISTS note TEXT;

-- migration 0003_timer_claims.sql
-- xcomponent PostgreSQL schema, version 3: timers any runtime can fire, and one entry point.
--
-- next_due_at is the earliest pending deadline of an active instance (ms epoch, NULL when it
-- has none), computed from pending_timeouts on every write; timer_lease_until is the end of a
-- runtime's claim on the instance's due timers (ms epoch), cleared by every write. A runtime
-- claims due instances of its component with FOR UPDATE SKIP LOCKED, so that the timers of a
-- runtime that died are fired by another one.
ALTER TABLE fsm_snapshots ADD COLUMN IF NOT EXISTS next_due_at BIGINT;
ALTER TABLE fsm_snapshots ADD COLUMN IF NOT EXISTS timer_lease_until BIGINT;
UPDATE fsm_snapshots s SET next_due_at = (
        SELECT min((t->>'dueAt')::bigint) FROM jsonb_array_elements(s.pending_timeouts) t
        WHERE NOT coalesce((t->>'spent')::boolean, false))
    WHERE s.status = 'active' AND s.version IS NOT NULL AND jsonb_typeof(s.pending_timeouts) = 'array'
        AND s.next_due_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_fsm_snapshots_next_due ON fsm_snapshots (component_name, next_due_at)
    WHERE next_due_at IS NOT NULL;

-- At most one entry-point instance per component and machine, whichever runtime creates it
-- (is_entry_point: the auto-created entry point, every instance of a singleton entry machine).
-- Runtimes started together before this index existed may have created several: the oldest
-- keeps the flag, the others become ordinary instances.
UPDATE fsm_snapshots s SET is_entry_point = false
    WHERE s.is_entry_point AND EXISTS (
        SELECT 1 FROM fsm_snapshots o
        WHERE o.is_entry_point AND o.component_name = s.component_name AND o.machine_name = s.machine_name
            AND (coalesce(o.created_at, 'epoch'), o.instance_id) < (coalesce(s.created_at, 'epoch'), s.instance_id));
CREATE UNIQUE INDEX IF NOT EXISTS idx_fsm_snapshots_entry_point ON fsm_snapshots (component_name, machine_name)
    WHERE is_entry_point;

-- migration 0004_match_index.sql
-- xcomponent PostgreSQL schema, version 4: routing by data against the database. Runtimes that
-- share the database resolve broadcasts, cascades and cross-component events with one query on
-- the live snapshot rows (store.Matcher). This index serves the live rows of a machine (and
-- state); the properties that equality rules look at get their own partial expression indexes
-- (idx_fsm_route_*), created by the runtimes for the properties their components route on
-- (store.RouteIndexer): a GIN index on the whole context would tax every transition's snapshot
-- write. Only new indexes on fsm_snapshots.
CREATE INDEX IF NOT EXISTS idx_fsm_snapshots_live ON fsm_snapshots (component_name, machine_name, current_state) WHERE status = 'active';

-- migration 0005_event_trace.sql
-- xcomponent PostgreSQL schema, version 5: the trace (OpenTelemetry / W3C trace id, 32 hex
-- digits) of each transition, when tracing is on, kept with its event: the audit trail links to
-- the trace. A nullable column: xcomponent-ai's tables stay compatible.
ALTER TABLE fsm_events ADD COLUMN IF NOT EXISTS trace_id TEXT;

-- migration 0006_event_reason.sql
-- xcomponent PostgreSQL schema, version 6: the reason an operator gave for what they did
-- (create, send, terminate, retry), kept with its event for the audit trail. A nullable
-- column: xcomponent-ai's tables stay compatible.
ALTER TABLE fsm_events ADD COLUMN IF NOT EXISTS reason TEXT;

-- migration 0007_unversioned_events.sql
-- xcomponent PostgreSQL schema, version 8: a partial index on the events written without a
-- version (by another tool, such as xcomponent-ai), so that the first page of a paged history
-- finds them without scanning the instance's versioned events.
-- Versioned rows (every row this store writes) are not in the index: it costs writes nothing.
CREATE INDEX IF NOT EXISTS idx_fsm_events_unversioned ON fsm_events (instance_id) WHERE seq IS NULL;
