-- auditkeep schema, version 2 (SQLite): the per-tenant Merkle tree, signed checkpoints and the
-- checkpoint signing keys. Layout and rationale: docs/verification.md ("How the server stores the
-- tree"). Existing events get their tree built once, by SQLiteStore.migrate, right after this
-- script (log_heads.frontier IS NULL marks a log whose tree is not built yet).

-- Every perfect subtree of every tenant's tree: (level, idx) covers leaves
-- [idx * 2^level, (idx + 1) * 2^level). Level 0 holds the leaf hashes. Write-once.
CREATE TABLE merkle_nodes (
    tenant_id  INTEGER NOT NULL,
    level      INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    hash       BLOB NOT NULL,
    PRIMARY KEY (tenant_id, level, idx)
) WITHOUT ROWID;

-- The writer's state: CompactRange.to_bytes() of the tree of `size` leaves, and its root.
ALTER TABLE log_heads ADD COLUMN frontier BLOB;
ALTER TABLE log_heads ADD COLUMN root BLOB;

-- Signed checkpoints (C2SP tlog-checkpoint in a signed note), at most one per tree size.
CREATE TABLE checkpoints (
    tenant_id   INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    root        BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    key_ids     TEXT NOT NULL,             -- key IDs (8 hex digits) of the signatures, space-separated
    note        BLOB NOT NULL,             -- the signed note, byte for byte as served
    PRIMARY KEY (tenant_id, size)
) WITHOUT ROWID;

-- Checkpoint signing keys (public halves and history). The private key of a key that still
-- signs is the file keys/<key_id>.key in the data directory (mode 0600), never in the database.
CREATE TABLE signing_keys (
    key_id      TEXT PRIMARY KEY,          -- C2SP key ID, 8 hex digits
    name        TEXT NOT NULL,             -- key name (the log_origin setting when it was made)
    vkey        TEXT NOT NULL UNIQUE,      -- verifier key string, as published
    state       TEXT NOT NULL,             -- active (signs), retiring (co-signs), retired
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
)
