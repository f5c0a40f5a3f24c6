-- auditkeep schema, version 5 (SQLite): the Merkle tree stored as C2SP tlog-tiles instead of one
-- row per perfect subtree. A tile of height 8 at (level, idx) holds the hashes of the subtrees
-- (8 * level, 256 * idx + k), k < width, concatenated (width * 32 bytes); a full tile
-- (width 256) is written once, the last tile of each level is rewritten as it grows; every other
-- node is recomputed from the tile that holds it (integrity/tiles.py, docs/verification.md).
-- SQLiteStore.migrate then moves the existing trees from merkle_nodes (levels 0, 8, 16, ...)
-- into tiles and drops merkle_nodes, in this same transaction.
CREATE TABLE merkle_tiles (
    tenant_id  INTEGER NOT NULL,
    level      INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    width      INTEGER NOT NULL,
    hashes     BLOB NOT NULL,
    PRIMARY KEY (tenant_id, level, idx)
) WITHOUT ROWID
