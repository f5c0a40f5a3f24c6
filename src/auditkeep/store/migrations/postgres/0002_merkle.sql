-- auditkeep schema, version 2 (PostgreSQL): the per-tenant Merkle tree, signed checkpoints and
-- the checkpoint signing keys, as migrations/sqlite/0002. Layout and rationale:
-- docs/verification.md ("How the server stores the tree"). Logs that have events but no tree
-- (log_heads.frontier IS NULL) get it built once by PostgresStore.migrate, right after this.

-- Every perfect subtree of every tenant's tree: (level, idx) covers leaves
-- [idx * 2^level, (idx + 1) * 2^level). Level 0 holds the leaf hashes, at idx = seq - 1, so
-- this primary key also makes a tenant's seqs unique. Write-once.
CREATE TABLE merkle_nodes (
    tenant_id  bigint NOT NULL,
    level      integer NOT NULL,
    idx        bigint NOT NULL,
    hash       bytea NOT NULL,
    PRIMARY KEY (tenant_id, level, idx)
);

-- The writer's state: CompactRange.to_bytes() of the tree of `size` leaves, and its root.
ALTER TABLE log_heads ADD COLUMN frontier bytea;
ALTER TABLE log_heads ADD COLUMN root bytea;

-- Signed checkpoints (C2SP tlog-checkpoint in a signed note), at most one per tree size.
CREATE TABLE checkpoints (
    tenant_id   bigint NOT NULL,
    size        bigint NOT NULL,
    root        bytea NOT NULL,
    created_at  bigint NOT NULL,
    key_ids     text NOT NULL,              -- key IDs (8 hex digits), space-separated
    note        bytea NOT NULL,             -- the signed note, byte for byte as served
    PRIMARY KEY (tenant_id, size)
);

-- Checkpoint signing keys (public halves and history). They belong to the deployment, not to
-- a tenant: tenant_id is always 0, the system tenant, so that this primary key too is led by
-- tenant_id. The private key of a key that still signs is the file keys/<key_id>.key in the
-- data directory of every API node (mode 0600), never in the database.
CREATE TABLE signing_keys (
    tenant_id   bigint NOT NULL DEFAULT 0 CHECK (tenant_id = 0),
    key_id      text COLLATE "C" NOT NULL,  -- C2SP key ID, 8 hex digits
    name        text NOT NULL,              -- key name (the log_origin setting when it was made)
    vkey        text NOT NULL UNIQUE,       -- verifier key string, as published
    state       text NOT NULL,              -- active (signs), retiring (co-signs), retired
    created_at  bigint NOT NULL,
    retired_at  bigint,
    PRIMARY KEY (tenant_id, key_id)
);
