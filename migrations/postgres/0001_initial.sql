-- Accepted trigger events. A redelivery is recognised by (flow, dedup_key).
CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    flow        TEXT NOT NULL,
    source      TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    headers     TEXT NOT NULL,
    body        BYTEA NOT NULL,
    dedup_key   TEXT
);
CREATE UNIQUE INDEX events_dedup ON events (flow, dedup_key) WHERE dedup_key IS NOT NULL;
CREATE INDEX events_received ON events (received_at);

-- Refused requests, kept for inspection.
CREATE TABLE rejected_events (
    id          TEXT PRIMARY KEY,
    flow        TEXT,
    source      TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    headers     TEXT NOT NULL,
    body        BYTEA NOT NULL,
    status      BIGINT NOT NULL,
    reason      TEXT NOT NULL
);
CREATE INDEX rejected_received ON rejected_events (received_at);

-- Pending work. `due_at` is when a ready item may be claimed, or when a leased item's lease
-- expires: either way the item is claimable once `due_at` has passed.
CREATE TABLE queue (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    flow         TEXT NOT NULL,
    event_id     TEXT,
    run_id       TEXT,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('ready', 'leased', 'dead')),
    due_at       BIGINT NOT NULL,
    enqueued_at  BIGINT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    lease_owner  TEXT,
    lease_token  TEXT,
    last_error   TEXT
);
CREATE INDEX queue_due ON queue (due_at, seq) WHERE state IN ('ready', 'leased');
CREATE INDEX queue_dead ON queue (seq) WHERE state = 'dead';
CREATE INDEX queue_event ON queue (event_id);

-- Run summaries: kept small so that list pages read few pages; the bulky parts live in run_data.
CREATE TABLE runs (
    id          TEXT PRIMARY KEY,
    flow        TEXT NOT NULL,
    status      TEXT NOT NULL,
    event_id    TEXT,
    resubmit_of TEXT,
    created_at  BIGINT NOT NULL,
    started_at  BIGINT,
    ended_at    BIGINT,
    error       TEXT,
    search_text TEXT NOT NULL
);
CREATE INDEX runs_created ON runs (created_at, id);
CREATE INDEX runs_flow ON runs (flow, created_at, id);
CREATE INDEX runs_status ON runs (status, created_at, id);
CREATE INDEX runs_flow_status ON runs (flow, status, created_at, id);
CREATE INDEX runs_event ON runs (event_id);
CREATE INDEX runs_resubmit ON runs (resubmit_of) WHERE resubmit_of IS NOT NULL;

CREATE TABLE run_data (
    run_id TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    inputs TEXT NOT NULL,
    record TEXT
);

CREATE TABLE action_results (
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    status     TEXT NOT NULL,
    started_at BIGINT,
    ended_at   BIGINT,
    result     TEXT NOT NULL,
    PRIMARY KEY (run_id, name)
);

CREATE TABLE watermarks (
    flow       TEXT NOT NULL,
    trigger_name TEXT NOT NULL,
    value      TEXT NOT NULL,
    version    BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (flow, trigger_name)
);

CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE flow_states (
    flow       TEXT PRIMARY KEY,
    enabled    BOOLEAN NOT NULL,
    updated_at BIGINT NOT NULL
);
