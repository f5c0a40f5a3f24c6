"""Migration 0005 upgrades stores made by schema-4 code in place, from the committed fixtures
(tests/fixtures/make_schema4.py): a SQLite data directory and a PostgreSQL dump.

After the migration every root and proof equals what the fixture's signed checkpoint says,
`auditkeep verify` passes, and new appends continue the same tree.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auditkeep.integrity.merkle import (
    CompactRange,
    consistency_proof,
    inclusion_proof,
    root_from_leaves,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from auditkeep.model import now_micros, prepare_event
from auditkeep.store import AnyStore
from auditkeep.store.base import TenantAppend
from auditkeep.store.postgres import PostgresStore
from auditkeep.store.sqlite import SQLiteStore
from tests import pg
from tests.conftest import AUDITKEEP, event
from tests.pg import PgCluster, fresh_database

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "schema4-expected.json").read_text())


@pytest.fixture(params=["sqlite", "postgres"])
def schema4(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """``(kind, data directory, environment for the CLI)`` of a schema-4 store."""
    with tarfile.open(FIXTURES / "schema4-sqlite.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    env = {"AUDITKEEP_LOG_ORIGIN": EXPECTED["origin"]}
    if request.param == "sqlite":
        yield "sqlite", tmp_path / "data", env
        return
    server: PgCluster = request.getfixturevalue("pg_server")
    with fresh_database(server, "mig_") as url:
        subprocess.run(
            [pg._bin("psql"), "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", "-"],
            input=gzip.decompress((FIXTURES / "schema4-postgres.sql.gz").read_bytes()),
            capture_output=True,
            check=True,
        )
        yield "postgres", tmp_path / "pg-keys", {**env, "AUDITKEEP_DATABASE_URL": url}


def _open(kind: str, data_dir: Path, env: dict[str, str]) -> AnyStore:
    if kind == "sqlite":
        return SQLiteStore(data_dir)
    return PostgresStore(env["AUDITKEEP_DATABASE_URL"], pool_size=2)


def _verify(data_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AUDITKEEP, "verify", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


def test_migration_0005_keeps_every_root_and_proof(
    schema4: tuple[str, Path, dict[str, str]],
) -> None:
    kind, data_dir, env = schema4
    store = _open(kind, data_dir, env)
    try:
        assert store.schema_version() == 4
        assert store.migrate() == 5
        assert store.migrate() == 5  # nothing left to do
        for slug, want in EXPECTED[kind].items():
            tenant = store.get_tenant(slug)
            assert tenant is not None
            log = store.log(tenant.tenant_id)
            leaves = [bytes.fromhex(h) for h in want["leaves"]]
            size, root = want["size"], bytes.fromhex(want["root"])
            assert size == len(leaves) and root_from_leaves(leaves) == root
            head = log.head()
            assert (head.size, head.root) == (size, root)
            assert log.node_count() == 2 * size - size.bit_count()
            assert root_hash(size, log) == root
            checkpoint = log.checkpoint(size)
            assert checkpoint is not None and checkpoint.root == root
            for index, leaf in enumerate(leaves):
                verify_inclusion(leaf, index, size, inclusion_proof(index, size, log), root)
            for old in range(1, size):
                old_root = root_from_leaves(leaves[:old])
                assert root_hash(old, log) == old_root
                proof = consistency_proof(old, size, log)
                verify_consistency(old, size, old_root, root, proof)
    finally:
        store.close()
    if kind == "sqlite":  # the old table is gone
        with SQLiteStore(data_dir)._reader() as conn:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "merkle_nodes" not in names and "merkle_tiles" in names
    out = _verify(data_dir, env)
    assert out.returncode == 0, out.stdout + out.stderr
    for slug, want in EXPECTED[kind].items():
        assert f"tenant {slug}: {want['size']} events OK" in out.stdout


def test_appends_after_migration_continue_the_same_tree(
    schema4: tuple[str, Path, dict[str, str]],
) -> None:
    kind, data_dir, env = schema4
    store = _open(kind, data_dir, env)
    try:
        store.migrate()
        want = EXPECTED[kind]["acme"]
        leaves = [bytes.fromhex(h) for h in want["leaves"]]
        acme = store.get_tenant("acme")
        assert acme is not None
        now = now_micros()
        for lo in range(0, 700, 350):  # across tiles of levels 0 and 1
            batch = [prepare_event(event(f"after-{i}"), "acme", now) for i in range(lo, lo + 350)]
            results = store.append([TenantAppend(acme.tenant_id, batch)])[0]
            assert [r.seq for r in results] == list(range(len(leaves) + 1, len(leaves) + 351))
            leaves += [e.leaf_hash for e in batch]
        log = store.log(acme.tenant_id)
        size = len(leaves)
        head = log.head()
        assert head.size == size and head.root == root_from_leaves(leaves)
        assert CompactRange.from_bytes(head.frontier).root() == head.root
        old_size, old_root = want["size"], bytes.fromhex(want["root"])
        proof = consistency_proof(old_size, size, log)
        verify_consistency(old_size, size, old_root, head.root, proof)
        for index in (0, old_size - 1, old_size, size - 1):
            proof = inclusion_proof(index, size, log)
            verify_inclusion(leaves[index], index, size, proof, head.root)
    finally:
        store.close()
    out = _verify(data_dir, env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"tenant acme: {len(leaves)} events OK" in out.stdout


def test_the_fixtures_are_schema_4() -> None:
    """The fixtures record the commit whose code made them (tests/fixtures/make_schema4.py)."""
    assert EXPECTED["schema"] == 4 and len(EXPECTED["commit"]) == 40
