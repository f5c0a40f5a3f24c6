-- auditkeep schema, version 4 (SQLite): a counter bumped in the same transaction as every key
-- revocation, so that each process serving this store (and `auditkeep keys revoke --data-dir`
-- beside a running server) can drop its cached keys as soon as it sees the counter move,
-- without reading the key table on every request (auth.Authenticator). One row, of tenant 0
-- (the operator's), as signing_keys.
CREATE TABLE key_revision (
    tenant_id  INTEGER PRIMARY KEY CHECK (tenant_id = 0),
    revision   INTEGER NOT NULL
);
INSERT INTO key_revision (tenant_id, revision) VALUES (0, 0)
