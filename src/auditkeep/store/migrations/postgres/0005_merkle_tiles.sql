-- auditkeep schema, version 5 (PostgreSQL): the Merkle tree stored as C2SP tlog-tiles, as
-- migrations/sqlite/0005. PostgresStore.migrate then moves the existing trees from merkle_nodes
-- (levels 0, 8, 16, ...) into tiles and drops merkle_nodes, in this same transaction.
CREATE TABLE merkle_tiles (
    tenant_id  bigint NOT NULL,
    level      integer NOT NULL,
    idx        bigint NOT NULL,
    width      integer NOT NULL CHECK (width BETWEEN 1 AND 256),
    hashes     bytea NOT NULL,
    PRIMARY KEY (tenant_id, level, idx)
);
