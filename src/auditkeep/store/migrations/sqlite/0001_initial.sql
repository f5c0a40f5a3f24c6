-- auditkeep schema, version 1 (SQLite).
-- Every primary key is led by tenant_id. Times are integer microseconds since the Unix epoch (UTC).

CREATE TABLE tenants (
    tenant_id   INTEGER PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- The head of each tenant's append-only log: its size is the highest seq.
CREATE TABLE log_heads (
    tenant_id   INTEGER PRIMARY KEY REFERENCES tenants (tenant_id),
    size        INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE api_keys (
    tenant_id      INTEGER NOT NULL,
    key_id         TEXT NOT NULL,
    secret_hash    BLOB NOT NULL,          -- SHA-256 of the whole key; the key itself is never stored
    scopes         TEXT NOT NULL,          -- space-separated
    name           TEXT NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER,
    revoked_at     INTEGER,
    rate_limit_rps REAL,
    PRIMARY KEY (tenant_id, key_id)
);
CREATE UNIQUE INDEX api_keys_by_key_id ON api_keys (key_id);

CREATE TABLE events (
    tenant_id    INTEGER NOT NULL,
    seq          INTEGER NOT NULL,         -- 1, 2, 3, ... per tenant, gap-free
    id           TEXT NOT NULL,            -- client-made idempotency key
    action       TEXT NOT NULL,
    category     TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    actor_id     TEXT NOT NULL,
    occurred_at  INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    leaf_hash    BLOB NOT NULL,            -- SHA-256(0x00 || leaf_data)
    leaf_data    BLOB NOT NULL,            -- canonical JSON (docs/canonical-encoding.md)
    PRIMARY KEY (tenant_id, seq)
);
CREATE UNIQUE INDEX events_by_id ON events (tenant_id, id);
CREATE INDEX events_by_time ON events (tenant_id, occurred_at, seq);
CREATE INDEX events_by_actor ON events (tenant_id, actor_id, occurred_at, seq);
CREATE INDEX events_by_action ON events (tenant_id, action, occurred_at, seq);

-- One row per distinct (type, id) target of an event, to find events by what they touched.
CREATE TABLE event_targets (
    tenant_id    INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    occurred_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, seq, target_type, target_id)
) WITHOUT ROWID;
CREATE INDEX event_targets_by_id ON event_targets (tenant_id, target_id, occurred_at, seq);
CREATE INDEX event_targets_by_type ON event_targets (tenant_id, target_type, occurred_at, seq);
