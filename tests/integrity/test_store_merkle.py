"""The SQLite store keeps each tenant's RFC 9162 tree as the writer commits events."""

from __future__ import annotations

import logging
import sqlite3
import stat
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditkeep.errors import ConfigError, StoreError
from auditkeep.integrity.checkpoint import parse_verifier
from auditkeep.integrity.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MemoryNodeStore,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaves,
    root_hash,
)
from auditkeep.model import PreparedEvent, now_micros, prepare_event
from auditkeep.store.base import TenantAppend
from auditkeep.store.sqlite import SQLiteStore
from tests.conftest import event, make_core


def _events(tag: str, n: int, tenant: str = "acme") -> list[PreparedEvent]:
    return [prepare_event(event(f"{tag}{i}"), tenant, now_micros()) for i in range(n)]


def _all_nodes(store: SQLiteStore, tenant_id: int) -> dict[tuple[int, int], bytes]:
    """Every node the tenant's tiles hold (stored or recomputed inside a tile)."""
    log = store.log(tenant_id)
    nodes: dict[tuple[int, int], bytes] = {}
    for level in range(64):
        found = log.nodes_in_range(level, 0, 1 << 40)
        if not found:
            break
        nodes.update({(level, idx): h for idx, h in found.items()})
    return nodes


def _tiles(store: SQLiteStore, tenant_id: int) -> dict[tuple[int, int], tuple[int, bytes]]:
    conn = sqlite3.connect(store.path)
    rows = conn.execute(
        "SELECT level, idx, width, hashes FROM merkle_tiles WHERE tenant_id = ?", (tenant_id,)
    ).fetchall()
    conn.close()
    return {(level, idx): (width, bytes(h)) for level, idx, width, h in rows}


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "data", durability="normal")
    s.migrate()
    return s


def test_writer_stores_exactly_the_perfect_subtrees(store: SQLiteStore) -> None:
    acme = store.create_tenant("acme", "acme")
    globex = store.create_tenant("globex", "globex")
    leaves: list[bytes] = []
    for round_ in range(7):
        a = _events(f"a{round_}-", round_ * 3 + 1)
        g = _events(f"g{round_}-", 2, "globex")
        # two tenants, and acme twice, in one group commit; one duplicate of an earlier event
        store.append(
            [
                TenantAppend(acme.tenant_id, a[:1]),
                TenantAppend(globex.tenant_id, g),
                TenantAppend(acme.tenant_id, a[1:] + a[:1]),
            ]
        )
        leaves += [e.leaf_hash for e in a]
    expected, tree = MemoryNodeStore.from_leaf_hashes(leaves)
    stored = _all_nodes(store, acme.tenant_id)
    assert len(stored) == len(expected) == 2 * len(leaves) - len(leaves).bit_count()
    assert stored == {node: expected.get_nodes([node])[0] for node in stored}
    head = store.log(acme.tenant_id).head()
    assert head.size == len(leaves) == store.events(acme.tenant_id).size()
    assert head.root == root_from_leaves(leaves) == tree.root()
    assert CompactRange.from_bytes(head.frontier) == tree
    assert store.log(globex.tenant_id).head().size == 14


def test_proofs_from_sqlite_match_the_reference(store: SQLiteStore) -> None:
    tenant = store.create_tenant("acme", "acme")
    events = _events("e", 300)
    for start in range(0, 300, 37):
        store.append([TenantAppend(tenant.tenant_id, events[start : start + 37])])
    reference, _ = MemoryNodeStore.from_leaf_hashes([e.leaf_hash for e in events])
    reader = store.log(tenant.tenant_id)
    for size in (1, 2, 37, 128, 255, 300):
        assert root_hash(size, reader) == root_hash(size, reference)
        for index in {0, size // 2, size - 1}:
            assert inclusion_proof(index, size, reader) == inclusion_proof(index, size, reference)
        for old in {0, 1, size // 3, size - 1, size}:
            assert consistency_proof(old, size, reader) == consistency_proof(old, size, reference)


def test_node_reader_is_tenant_scoped_and_reports_missing_nodes(store: SQLiteStore) -> None:
    acme = store.create_tenant("acme", "acme")
    globex = store.create_tenant("globex", "globex")
    store.append([TenantAppend(acme.tenant_id, _events("a", 4))])
    assert len(store.log(acme.tenant_id).get_nodes([(2, 0), (0, 3)])) == 2
    with pytest.raises(KeyError, match=r"node \(level=2, index=0\) is not stored"):
        store.log(globex.tenant_id).get_nodes([(2, 0)])


def test_tile_reads_use_the_whole_primary_key(store: SQLiteStore) -> None:
    """A regression guard: a proof's tile read must search the primary key, not scan."""
    with store._reader() as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT level, idx, hashes FROM merkle_tiles"
            " WHERE tenant_id = ? AND level = ? AND idx IN (?, ?)"
            " UNION ALL SELECT level, idx, hashes FROM merkle_tiles"
            " WHERE tenant_id = ? AND level = ? AND idx IN (?)",
            (1, 0, 0, 1, 1, 1, 0),
        ).fetchall()
    assert all("SCAN" not in row[3] for row in plan), plan
    assert any("(tenant_id=? AND level=? AND idx=?)" in row[3] for row in plan), plan


def test_a_commit_writes_tiles_not_nodes(store: SQLiteStore) -> None:
    """Full tiles are written once and keep their bytes; each level's last tile is partial;
    a commit of 600 leaves writes 3 level-0 tiles and one level-1 tile."""
    acme = store.create_tenant("acme", "acme")
    events = _events("t", 1000)
    store.append([TenantAppend(acme.tenant_id, events[:300])])
    first = _tiles(store, acme.tenant_id)
    assert {k: w for k, (w, _) in first.items()} == {(0, 0): 256, (0, 1): 44, (1, 0): 1}
    store.append([TenantAppend(acme.tenant_id, events[300:900])])
    second = _tiles(store, acme.tenant_id)
    assert {k: w for k, (w, _) in second.items()} == {
        (0, 0): 256,
        (0, 1): 256,
        (0, 2): 256,
        (0, 3): 132,
        (1, 0): 3,
    }
    assert second[(0, 0)] == first[(0, 0)]  # written once
    assert second[(0, 1)][1][: 44 * 32] == first[(0, 1)][1]  # a partial tile only grows
    leaves = b"".join(e.leaf_hash for e in events[:900])
    assert b"".join(second[(0, i)][1] for i in range(4)) == leaves


def test_a_frontier_that_disagrees_with_the_head_stops_the_writer(store: SQLiteStore) -> None:
    tenant = store.create_tenant("acme", "acme")
    store.append([TenantAppend(tenant.tenant_id, _events("a", 3))])
    conn = sqlite3.connect(store.path)
    conn.execute("UPDATE log_heads SET size = 2 WHERE tenant_id = ?", (tenant.tenant_id,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="the log head has size 2 but its Merkle frontier has"):
        store.append([TenantAppend(tenant.tenant_id, _events("b", 1))])


def test_migration_builds_the_tree_of_an_existing_store(tmp_path: Path) -> None:
    """A data directory made before schema 2 (events, no tree) gets its tree once."""
    path = tmp_path / "old"
    path.mkdir()
    conn = sqlite3.connect(path / "auditkeep.db")
    v1 = (resources.files("auditkeep.store") / "migrations/sqlite/0001_initial.sql").read_text()
    conn.executescript(v1)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INT)")
    conn.execute("INSERT INTO schema_migrations VALUES (1, 0)")
    conn.execute("INSERT INTO tenants VALUES (1, 'acme', 'acme', 0)")
    conn.execute("INSERT INTO log_heads VALUES (1, 11)")
    events = _events("old", 11)
    for seq, ev in enumerate(events, 1):
        conn.execute(
            "INSERT INTO events VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                seq,
                ev.id,
                ev.action,
                ev.category,
                ev.outcome,
                ev.actor_id,
                ev.occurred_at,
                ev.received_at,
                ev.leaf_hash,
                ev.leaf_data,
            ),
        )
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    assert store.migrate() == 5  # the latest schema version; the tree came with schema 2
    expected, tree = MemoryNodeStore.from_leaf_hashes([e.leaf_hash for e in events])
    assert len(_all_nodes(store, 1)) == len(expected)
    assert store.log(1).head().root == tree.root()
    store.append([TenantAppend(1, _events("new", 2))])  # the writer carries on from there
    assert store.log(1).head().size == 13
    assert store.migrate() == 5  # nothing to do the second time
    store.close()


def test_migration_refuses_a_log_with_a_gap(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "d")
    store.migrate()
    tenant = store.create_tenant("acme", "acme")
    store.append([TenantAppend(tenant.tenant_id, _events("a", 5))])
    store.close()
    conn = sqlite3.connect(tmp_path / "d" / "auditkeep.db")
    conn.execute("DELETE FROM events WHERE seq = 3")
    conn.execute("UPDATE log_heads SET frontier = NULL")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="seq 3 is missing"):
        SQLiteStore(tmp_path / "d").migrate()


def test_checkpoints_one_per_size(tmp_path: Path) -> None:
    core = make_core(tmp_path / "data", checkpoint_interval=0)
    tenant = core.create_tenant("acme")
    empty, made = core.tlog.sign(tenant)
    assert made and empty.size == 0 and empty.root == EMPTY_ROOT
    assert core.tlog.sign(tenant) == (empty, False)
    core.store.append([TenantAppend(tenant.tenant_id, _events("a", 3))])
    cp, made = core.tlog.sign(tenant)
    assert made and cp.size == 3
    forced, made = core.tlog.sign(tenant, force=True)  # same size: the row is replaced
    assert made and forced.size == 3
    history = core.store.log(tenant.tenant_id).checkpoints()
    assert [c.size for c in history] == [0, 3] and history[1].note == forced.note
    core.close()


def test_signing_key_file_is_private_and_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    core = make_core(tmp_path / "data", checkpoint_interval=0)
    core.start()
    core.create_tenant("acme")
    core.tlog.sign_all()
    (record,) = core.keys.records()
    path = tmp_path / "data" / "keys" / f"{record.key_id}.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    secret = path.read_text().strip()
    assert secret.startswith("PRIVATE+KEY+auditkeep.local+")
    core.keys.rotate()
    core.close()
    # PRIVATE+KEY+<name>+<key id>+<base64 key material> (the material may hold '+' itself)
    material = secret.split("+", 4)[4]
    assert len(material) > 20
    assert secret not in caplog.text and material not in caplog.text
    assert record.vkey in caplog.text  # the public key is logged when it is made


def test_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    core = make_core(tmp_path / "data")
    core.keys.ensure_key()
    for f in (tmp_path / "data" / "keys").iterdir():
        f.unlink()
    fresh = make_core(tmp_path / "data")
    with pytest.raises(ConfigError, match="cannot read checkpoint signing key"):
        fresh.keys.signers()
    core.close()
    fresh.close()


def test_log_origin_must_be_a_key_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not usable as a checkpoint key name"):
        make_core(tmp_path / "data", log_origin="audit example")


def test_the_first_key_fixes_the_log_name(tmp_path: Path) -> None:
    data = tmp_path / "data"
    core = make_core(data, log_origin="audit.example.com")
    cp, _ = core.tlog.sign(core.create_tenant("acme"))
    assert cp.note.startswith(b"audit.example.com/acme\n")
    core.close()
    # commands without the setting (e.g. the CLI on the data directory) use the log's name
    plain = make_core(data)
    assert plain.tlog.origin("acme") == "audit.example.com/acme"
    assert parse_verifier(plain.keys.rotate().vkey).name == "audit.example.com"
    plain.close()
    with pytest.raises(ConfigError, match=r"logs are named 'audit\.example\.com'"):
        make_core(data, log_origin="other.example.com")


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 70), st.lists(st.integers(0, 40), max_size=5))
def test_extend_equals_appending_one_by_one(start: int, batches: list[int]) -> None:
    one, many = CompactRange(), CompactRange()
    n = 0
    for _ in range(start):
        h = leaf_hash(str(n).encode())
        one.append(h)
        many.append(h)
        n += 1
    for size in batches:
        hashes = [leaf_hash(str(n + i).encode()) for i in range(size)]
        n += size
        expected = [node for h in hashes for node in one.append(h)]
        created = many.extend(hashes)
        assert sorted(created) == sorted(expected) and len(created) == len(set(created))
        assert many == one


def test_a_missing_partial_tile_stops_the_writer(store: SQLiteStore) -> None:
    """The writer extends the stored partial tile; without it, it refuses instead of writing a
    tile that would lose the hashes before it."""
    acme = store.create_tenant("acme", "acme")
    store.append([TenantAppend(acme.tenant_id, _events("a", 10))])
    with store._transaction() as conn:
        conn.execute("DELETE FROM merkle_tiles WHERE tenant_id = ?", (acme.tenant_id,))
    with pytest.raises(StoreError, match=r"Merkle tile \(level 0, index 0\) is missing"):
        store.append([TenantAppend(acme.tenant_id, _events("b", 1))])
    assert store.events(acme.tenant_id).size() == 10  # nothing of that append was written
