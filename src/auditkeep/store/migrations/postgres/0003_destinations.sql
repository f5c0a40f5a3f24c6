-- auditkeep schema, version 3 (PostgreSQL): delivery destinations, as
-- migrations/sqlite/0003. Each destination keeps its own cursor over its tenant's log (seq
-- order); events stay in `events`, so nothing is lost however long a receiver is down.
-- Behaviour: docs/delivery.md.
CREATE TABLE destinations (
    tenant_id        bigint NOT NULL,
    dest_id          text COLLATE "C" NOT NULL, -- dst_<random>, shown in the API
    name             text NOT NULL,
    kind             text NOT NULL,             -- webhook | splunk_hec | syslog | s3
    config           text NOT NULL,             -- JSON, no secrets
    secret           bytea,                     -- AES-256-GCM sealed secrets (delivery/secretbox.py)
    state            text NOT NULL,             -- active | paused
    paused_reason    text,
    cursor           bigint NOT NULL,           -- highest seq delivered
    batch_end        bigint,                    -- last seq of the batch in flight (fixed once tried)
    attempts         integer NOT NULL DEFAULT 0,-- failed attempts of the batch in flight
    failing_since    bigint,                    -- first failure of the current failure streak
    next_attempt_at  bigint,                    -- no attempt before this (backoff, Retry-After)
    last_error       text,
    last_attempt_at  bigint,
    last_success_at  bigint,
    delivered        bigint NOT NULL DEFAULT 0, -- events delivered, in total
    lease_owner      text,                      -- the dispatcher (node) delivering it now
    lease_until      bigint,                    -- ... until then; another node may take over after
    created_at       bigint NOT NULL,
    updated_at       bigint NOT NULL,
    PRIMARY KEY (tenant_id, dest_id)
);
CREATE UNIQUE INDEX destinations_by_name ON destinations (tenant_id, name);
