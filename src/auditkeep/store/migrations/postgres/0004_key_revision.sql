-- auditkeep schema, version 4 (PostgreSQL): a counter bumped in the same transaction as every
-- key revocation, as migrations/sqlite/0004: every API node drops its cached keys as soon as it
-- sees the counter move (auth.Authenticator). One row, of tenant 0 (the operator's), as
-- signing_keys.
CREATE TABLE key_revision (
    tenant_id  bigint PRIMARY KEY CHECK (tenant_id = 0),
    revision   bigint NOT NULL
);
INSERT INTO key_revision (tenant_id, revision) VALUES (0, 0);
