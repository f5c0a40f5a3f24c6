-- auditkeep schema, version 3 (SQLite): delivery destinations. Each destination keeps its own
-- cursor over its tenant's log (seq order); events stay in `events`, so nothing is lost however
-- long a receiver is down. Behaviour: docs/delivery.md.
CREATE TABLE destinations (
    tenant_id        INTEGER NOT NULL,
    dest_id          TEXT NOT NULL,             -- dst_<random>, shown in the API
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,             -- webhook | splunk_hec | syslog | s3
    config           TEXT NOT NULL,             -- JSON, no secrets
    secret           BLOB,                      -- AES-256-GCM sealed secrets (delivery/secretbox.py)
    state            TEXT NOT NULL,             -- active | paused
    paused_reason    TEXT,
    cursor           INTEGER NOT NULL,          -- highest seq delivered
    batch_end        INTEGER,                   -- last seq of the batch in flight (fixed once tried)
    attempts         INTEGER NOT NULL DEFAULT 0,-- failed attempts of the batch in flight
    failing_since    INTEGER,                   -- first failure of the current failure streak
    next_attempt_at  INTEGER,                   -- no attempt before this (backoff, Retry-After)
    last_error       TEXT,
    last_attempt_at  INTEGER,
    last_success_at  INTEGER,
    delivered        INTEGER NOT NULL DEFAULT 0,-- events delivered, in total
    lease_owner      TEXT,                      -- the dispatcher (node) delivering it now
    lease_until      INTEGER,                   -- ... until then; another node may take over after
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, dest_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX destinations_by_name ON destinations (tenant_id, name)
