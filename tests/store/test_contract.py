"""The store contract (store/base.py), held by SQLite and PostgreSQL alike, and what only the
PostgreSQL store promises: several API nodes appending to one tenant at once, primary keys led
by tenant_id, monthly partitions, schema-version and connection errors that say what to do.

Tests taking ``store`` or ``backend`` run once per backend (tests/store/conftest.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from auditkeep.errors import ConfigError, Conflict, StoreError, StoreUnavailable
from auditkeep.integrity.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MemoryNodeStore,
    consistency_proof,
    inclusion_proof,
    root_from_leaves,
    root_hash,
)
from auditkeep.model import PreparedEvent, format_timestamp, now_micros, prepare_event
from auditkeep.settings import Config
from auditkeep.store import AnyStore, open_store
from auditkeep.store import postgres as postgres_module
from auditkeep.store.base import (
    ApiKey,
    Destination,
    EventFilter,
    PageRequest,
    Position,
    SigningKeyRecord,
    StoredEvent,
    TenantAppend,
)
from auditkeep.store.postgres import PostgresStore, _month_bounds, redact
from auditkeep.store.sqlite import SQLiteStore
from auditkeep.translog import stored_log_input, verify_store_log
from tests.conftest import event, free_port, make_core
from tests.store.conftest import Backend

pytestmark = pytest.mark.timeout(180)

T0 = 1_793_577_600_000_000  # 2026-11-01T00:00:00Z in microseconds
MINUTE = 60_000_000


def prep(n: int | str, tenant: str = "acme", received_at: int | None = None, **fields: Any) -> Any:
    return prepare_event(event(n, **fields), tenant, received_at or now_micros())


def append1(store: AnyStore, tenant_id: int, events: list[PreparedEvent]) -> list[Any]:
    return store.append([TenantAppend(tenant_id, events)])[0]


def all_nodes(store: AnyStore, tenant_id: int) -> dict[tuple[int, int], bytes]:
    log = store.log(tenant_id)
    nodes: dict[tuple[int, int], bytes] = {}
    for level in range(48):
        found = log.nodes_in_range(level, 0, 1 << 48)
        if not found:
            break
        nodes.update({(level, idx): h for idx, h in found.items()})
    return nodes


class FakeSigner:
    """A CheckpointSigner whose notes are easy to recognise."""

    def __init__(self, *key_ids: str) -> None:
        self.ids = key_ids or ("0badc0de",)
        self.signed: list[int] = []

    def key_ids(self) -> tuple[str, ...]:
        return self.ids

    def __call__(self, size: int, root: bytes) -> bytes:
        self.signed.append(size)
        return f"note {size} {root.hex()} {' '.join(self.ids)}".encode()


def make_destination(tenant_id: int, dest_id: str, name: str, **changes: Any) -> Destination:
    values: dict[str, Any] = {
        "tenant_id": tenant_id,
        "dest_id": dest_id,
        "name": name,
        "kind": "webhook",
        "config": {"url": "https://example.com/hook", "headers": {"x": "ü"}},
        "secret": b"\x00sealed\xff",
        "state": "active",
        "paused_reason": None,
        "cursor": 0,
        "batch_end": None,
        "attempts": 0,
        "failing_since": None,
        "next_attempt_at": None,
        "last_error": None,
        "last_attempt_at": None,
        "last_success_at": None,
        "delivered": 0,
        "created_at": 1000,
        "updated_at": 1000,
    }
    values.update(changes)
    return Destination(**values)


# -- schema, tenants, keys ---------------------------------------------------------------------


def test_schema_version_is_5_and_migrate_is_idempotent(backend: Backend) -> None:
    store = backend.open(migrate=False)
    assert store.schema_version() == 0
    assert store.migrate() == 5
    assert store.migrate() == 5
    assert store.schema_version() == 5
    store.check_ready()
    # a second store (another API node) over the same data sees the same schema
    assert backend.open().schema_version() == 5


def test_tenants(store: AnyStore) -> None:
    acme = store.create_tenant("acme", "Acme Inc.")
    globex = store.create_tenant("globex", "Globex")
    assert acme.tenant_id != globex.tenant_id and 0 not in (acme.tenant_id, globex.tenant_id)
    assert store.get_tenant("acme") == acme
    assert store.get_tenant("nope") is None
    assert store.get_tenant("ac\x00me") is None
    assert store.get_tenant("_system") is not None  # the operator keys' tenant
    assert [t.slug for t in store.list_tenants()] == ["acme", "globex"]  # not _system
    with pytest.raises(Conflict, match="acme"):
        store.create_tenant("acme", "again")
    head = store.log(acme.tenant_id).head()
    assert (head.size, head.root, head.frontier) == (0, EMPTY_ROOT, CompactRange().to_bytes())
    assert store.events(acme.tenant_id).size() == 0
    # a failed create left nothing behind: the next tenant is fine
    assert store.create_tenant("initech", "Initech").slug == "initech"


def _key(tenant_id: int, slug: str, key_id: str, created_at: int) -> ApiKey:
    return ApiKey(
        tenant_id=tenant_id,
        tenant_slug=slug,
        key_id=key_id,
        secret_hash=bytes(range(32)),
        scopes=frozenset({"events:write", "events:read"}),
        name=f"key {key_id}",
        created_at=created_at,
        expires_at=None if key_id != "k3" else created_at + 10,
        revoked_at=None,
        rate_limit_rps=None if key_id != "k2" else 2.5,
    )


def test_keys(store: AnyStore) -> None:
    acme = store.create_tenant("acme", "acme")
    globex = store.create_tenant("globex", "globex")
    keys = [_key(acme.tenant_id, "acme", f"k{i}", 100 - i) for i in range(1, 4)]
    for key in keys:
        store.create_key(key)
    other = _key(globex.tenant_id, "globex", "g1", 5)
    store.create_key(other)
    assert store.find_key("k2") == keys[1]
    assert store.find_key("nope") is None
    assert store.find_key("k\x002") is None
    assert store.list_keys(acme.tenant_id) == sorted(keys, key=lambda k: k.created_at)
    assert store.list_keys(globex.tenant_id) == [other]
    with pytest.raises(StoreError):
        store.create_key(keys[0])  # the same key id again
    revision = store.key_revision()
    revoked = store.revoke_key(acme.tenant_id, "k1", 777)
    assert revoked is not None and revoked.revoked_at == 777
    # the revision moves with the revocation, for every process serving the store
    moved = store.key_revision()
    assert moved > revision
    again = store.revoke_key(acme.tenant_id, "k1", 999)
    assert again is not None and again.revoked_at == 777  # the first revocation stays
    # another tenant's key: invisible, and not revoked
    assert store.revoke_key(acme.tenant_id, "g1", 1) is None
    found = store.find_key("g1")
    assert found is not None and found.revoked_at is None
    assert store.key_revision() == moved  # nothing more was revoked


# -- append ------------------------------------------------------------------------------------


def test_append_accepts_dedupes_and_rejects_conflicts(store: AnyStore) -> None:
    acme = store.create_tenant("acme", "acme")
    globex = store.create_tenant("globex", "globex")
    first = [prep(i) for i in range(5)]
    results = append1(store, acme.tenant_id, first)
    assert [(r.status, r.seq) for r in results] == [("accepted", s) for s in range(1, 6)]
    # same content (a later received_at does not matter): duplicate with the original seq;
    # same id, different content: conflict, also naming the original seq; within one call,
    # a repeated new id is decided against its first occurrence
    retry = [
        prep(3),
        prep(9),
        prep(1, action="user.logout"),
        prep(9),
        prep(9, outcome="failure"),
        prep(10),
    ]
    results = append1(store, acme.tenant_id, retry)
    assert [(r.status, r.seq) for r in results] == [
        ("duplicate", 4),
        ("accepted", 6),
        ("conflict", 2),
        ("duplicate", 6),
        ("conflict", 6),
        ("accepted", 7),
    ]
    # several batches, tenants interleaved and acme twice, in one call
    results2 = store.append(
        [
            TenantAppend(acme.tenant_id, [prep("a1")]),
            TenantAppend(globex.tenant_id, [prep("a1", "globex"), prep("g2", "globex")]),
            TenantAppend(acme.tenant_id, [prep("a1"), prep("a2")]),
        ]
    )
    assert [[(r.status, r.seq) for r in rs] for rs in results2] == [
        [("accepted", 8)],
        [("accepted", 1), ("accepted", 2)],
        [("duplicate", 8), ("accepted", 9)],
    ]
    events = store.events(acme.tenant_id)
    assert events.size() == 9 and store.events(globex.tenant_id).size() == 2
    seqs = [e.seq for e in events.scan(batch=4)]
    assert seqs == list(range(1, 10))  # gap-free
    assert events.stats() == (9, 9)
    stored = events.get("evt-1")
    assert stored is not None and stored.seq == 2
    assert stored.leaf_data == first[1].leaf_data and stored.leaf_hash == first[1].leaf_hash
    assert stored.to_json()["action"] == "user.login"
    assert store.append([]) == []


def test_a_failed_append_writes_nothing(backend: Backend) -> None:
    store = backend.open()
    acme = store.create_tenant("acme", "acme")
    append1(store, acme.tenant_id, [prep("before")])
    batch = [prep(i) for i in range(4)]
    with pytest.raises(StoreError, match="no log head"):
        store.append([TenantAppend(acme.tenant_id, batch), TenantAppend(424242, [prep("x")])])
    events = store.events(acme.tenant_id)
    assert events.size() == 1 and events.stats() == (1, 1)
    assert events.get("evt-0") is None and events.after_seq(1, 10) == []
    assert store.log(acme.tenant_id).node_count() == 1
    # the ids were not taken: they are accepted now, right after the first event
    results = append1(store, acme.tenant_id, batch)
    assert [(r.status, r.seq) for r in results] == [("accepted", s) for s in range(2, 6)]


def test_idempotency_survives_reopening(backend: Backend) -> None:
    store = backend.open()
    acme = store.create_tenant("acme", "acme")
    append1(store, acme.tenant_id, [prep(i) for i in range(3)])
    store.close()
    reopened = backend.open()  # a restart, or another API node
    results = append1(reopened, acme.tenant_id, [prep(1), prep(2, outcome="failure"), prep(3)])
    assert [(r.status, r.seq) for r in results] == [
        ("duplicate", 2),
        ("conflict", 3),
        ("accepted", 4),
    ]


# -- queries -----------------------------------------------------------------------------------

ACTIONS = [
    "user.login",
    "user.logout",
    "user.password.reset",
    "users.list",  # not under "user."
    "user-x.y",  # sorts just before "user."
    "document.read",
    "document.update",
]
ACTORS = ["user_1", "user_2", "svc:api", "a\x00b", "ünï"]
TARGETS = [
    ("document", "doc_1"),
    ("document", "doc_2"),
    ("folder", "doc_1"),  # the same id with another type
    ("user", "user_1"),
    ("document", "d\x00x"),
    ("folder", "шрифт"),
]


@dataclasses.dataclass
class Model:
    """What was stored, for brute-force answers: seq -> the event as submitted."""

    events: dict[int, PreparedEvent]

    def answer(self, f: EventFilter, descending: bool) -> list[int]:
        def keep(ev: PreparedEvent) -> bool:
            checks = [
                f.actor_id is None or ev.actor_id == f.actor_id,
                f.action is None or ev.action == f.action,
                f.action_prefix is None or ev.action.startswith(f.action_prefix),
                f.outcome is None or ev.outcome == f.outcome,
                f.category is None or ev.category == f.category,
                f.since is None or ev.occurred_at >= f.since,
                f.until is None or ev.occurred_at < f.until,
            ]
            if f.target_id is not None or f.target_type is not None:
                checks.append(
                    any(
                        (f.target_type is None or tt == f.target_type)
                        and (f.target_id is None or ti == f.target_id)
                        for tt, ti in ev.targets
                    )
                )
            return all(checks)

        found = [(ev.occurred_at, seq) for seq, ev in self.events.items() if keep(ev)]
        return [seq for _, seq in sorted(found, reverse=descending)]


def _query_event(rng: random.Random, tenant: str, n: int, actions: list[str]) -> PreparedEvent:
    targets = rng.sample(TARGETS, rng.choice([0, 1, 1, 2, 3]))
    if rng.random() < 0.1 and targets:
        targets.append(targets[0])  # a repeated target
    raw = event(
        f"q{n}",
        action=rng.choice(actions),
        actor={"id": rng.choice(ACTORS), "type": "user"},
        targets=[{"type": t, "id": i} for t, i in targets],
        outcome=rng.choice(["success", "failure"]),
        category=rng.choice(["audit", "access", "security"]),
        occurred_at=format_timestamp(T0 + rng.randrange(25) * MINUTE),  # many ties
    )
    return prepare_event(raw, tenant, now_micros())


def _load(store: AnyStore, tenant: str, n: int, actions: list[str], seed: int) -> Model:
    tenant_id = store.create_tenant(tenant, tenant).tenant_id
    rng = random.Random(seed)
    events = [_query_event(rng, tenant, i, actions) for i in range(n)]
    model = Model({})
    for start in range(0, n, 37):
        chunk = events[start : start + 37]
        for ev, res in zip(chunk, append1(store, tenant_id, chunk), strict=True):
            assert res.status == "accepted"
            model.events[res.seq] = ev
    return model


def _pages(store: AnyStore, tenant_id: int, f: EventFilter, desc: bool, limit: int) -> list[int]:
    seqs: list[int] = []
    after: Position | None = None
    for _ in range(1000):
        page = store.events(tenant_id).query(PageRequest(limit, after, desc, f))
        assert len(page) <= limit
        seqs += [e.seq for e in page]
        if len(page) < limit:
            return seqs
        after = Position(page[-1].occurred_at, page[-1].seq)
    raise AssertionError("paging did not end")


FILTERS = [
    EventFilter(),
    EventFilter(actor_id="user_1"),
    EventFilter(actor_id="a\x00b"),
    EventFilter(actor_id="ünï"),
    EventFilter(action="user.login"),
    EventFilter(action="users.list"),
    EventFilter(action_prefix="user."),
    EventFilter(action_prefix="document."),
    EventFilter(action_prefix="user.password."),
    EventFilter(action_prefix="nothing."),
    EventFilter(action_prefix="user.", actor_id="user_2"),
    EventFilter(action_prefix="user.", outcome="failure", since=T0 + 5 * MINUTE),
    EventFilter(target_id="doc_1"),
    EventFilter(target_id="d\x00x"),
    EventFilter(target_id="шрифт"),
    EventFilter(target_type="document"),
    EventFilter(target_type="folder", target_id="doc_1"),
    EventFilter(target_type="document", action_prefix="user."),
    EventFilter(target_id="doc_2", actor_id="svc:api", category="access"),
    EventFilter(target_type="user", until=T0 + 12 * MINUTE),
    EventFilter(outcome="success"),
    EventFilter(category="security"),
    EventFilter(since=T0 + 3 * MINUTE),
    EventFilter(until=T0 + 7 * MINUTE),
    EventFilter(since=T0 + 7 * MINUTE, until=T0 + 9 * MINUTE, actor_id="user_1"),
    EventFilter(action="user.login", target_id="doc_1", since=T0 + 2 * MINUTE),
    EventFilter(category="no\x00such"),  # matches nothing (and is not an error)
]


def test_queries_match_a_brute_force_filter(store: AnyStore) -> None:
    model = _load(store, "acme", 220, ACTIONS, seed=7)
    _load(store, "globex", 60, ACTIONS, seed=8)  # same ids, other tenant: never seen here
    acme = store.get_tenant("acme")
    assert acme is not None
    for f in FILTERS:
        for desc in (True, False):
            expected = model.answer(f, desc)
            for limit in (3, 50, 1000):
                assert _pages(store, acme.tenant_id, f, desc, limit) == expected, (f, desc, limit)
    assert any(model.answer(f, True) for f in FILTERS[1:])
    rows = store.events(acme.tenant_id).query(PageRequest(limit=5))
    assert [e.seq for e in rows] == model.answer(EventFilter(), True)[:5]
    assert all(r.to_json()["tenant"] == "acme" for r in rows)


def test_an_action_prefix_over_many_actions_reads_a_range(store: AnyStore) -> None:
    actions = [f"bulk.a{i:02d}" for i in range(70)] + ["bulk-x.y", "bulky.x", "other.x"]
    model = _load(store, "acme", 300, actions, seed=3)
    acme = store.get_tenant("acme")
    assert acme is not None
    for f in (
        EventFilter(action_prefix="bulk."),
        EventFilter(action_prefix="bulk.a1"),
        EventFilter(action_prefix="bulk.", target_type="document"),
    ):
        for desc in (True, False):
            for limit in (7, 1000):
                got = _pages(store, acme.tenant_id, f, desc, limit)
                assert got == model.answer(f, desc), (f, desc, limit)


def test_after_seq_scan_and_stats(store: AnyStore) -> None:
    acme = store.create_tenant("acme", "acme")
    append1(store, acme.tenant_id, [prep(i) for i in range(12)])
    events = store.events(acme.tenant_id)
    assert [e.seq for e in events.after_seq(0, 5)] == [1, 2, 3, 4, 5]
    assert [e.seq for e in events.after_seq(10, 5)] == [11, 12]
    assert events.after_seq(12, 5) == []
    assert [e.seq for e in events.scan(batch=5)] == list(range(1, 13))
    assert events.stats() == (12, 12) and events.size() == 12


# -- tenant scoping ----------------------------------------------------------------------------


def test_another_tenants_data_is_invisible_through_every_method(store: AnyStore) -> None:
    acme = store.create_tenant("acme", "acme")
    globex = store.create_tenant("globex", "globex")
    append1(
        store,
        acme.tenant_id,
        [prep(i, targets=[{"type": "document", "id": "x"}]) for i in range(8)],
    )
    # the same id in another tenant is another event
    [res] = append1(store, globex.tenant_id, [prep(0, "globex", action="user.logout")])
    assert (res.status, res.seq) == ("accepted", 1)
    store.add_checkpoint(acme.tenant_id, FakeSigner())
    acme_dest = make_destination(acme.tenant_id, "dst_a", "hook")
    store.destinations(acme.tenant_id).create(acme_dest)

    other = store.events(globex.tenant_id)
    assert other.get("evt-3") is None
    own = other.get("evt-0")
    assert own is not None and own.to_json()["tenant"] == "globex"
    everything = EventFilter()
    assert [e.seq for e in other.query(PageRequest(100, filters=everything))] == [1]
    for f in (EventFilter(action="user.login"), EventFilter(target_id="x")):
        assert other.query(PageRequest(100, filters=f)) == []
    assert [e.seq for e in other.after_seq(0, 100)] == [1]
    assert [e.seq for e in other.scan()] == [1]
    assert other.size() == 1 and other.stats() == (1, 1)

    log = store.log(globex.tenant_id)
    assert log.head().size == 1
    assert log.node_count() == 1
    with pytest.raises(KeyError, match=r"level=3, index=0"):
        log.get_nodes([(3, 0)])  # acme has it
    assert log.nodes_in_range(0, 0, 100).keys() == {0}
    assert log.latest_checkpoint() is None and log.checkpoints() == []
    assert log.checkpoint(8) is None

    dests = store.destinations(globex.tenant_id)
    assert dests.list() == [] and dests.get("dst_a") is None
    assert dests.update("dst_a", name="stolen") is None
    assert not dests.advance("dst_a", 0, 5, 10)
    assert not dests.claim("dst_a", "node", 1, 2)
    assert not dests.delete("dst_a")
    with pytest.raises(StoreError):
        dests.create(make_destination(acme.tenant_id, "dst_b", "x"))
    assert store.destinations(acme.tenant_id).get("dst_a") == acme_dest


# -- the Merkle tree, checkpoints, signing keys ------------------------------------------------


def test_the_tree_equals_the_reference(store: AnyStore) -> None:
    acme = store.create_tenant("acme", "acme")
    globex = store.create_tenant("globex", "globex")
    leaves: list[bytes] = []
    for round_ in range(9):
        a = [prep(f"a{round_}-{i}") for i in range(round_ * 5 + 1)]
        g = [prep(f"g{round_}-{i}", "globex") for i in range(2)]
        store.append(
            [
                TenantAppend(acme.tenant_id, a[:1]),
                TenantAppend(globex.tenant_id, g),
                TenantAppend(acme.tenant_id, a[1:] + a[:1]),  # and a duplicate
            ]
        )
        leaves += [e.leaf_hash for e in a]
    reference, tree = MemoryNodeStore.from_leaf_hashes(leaves)
    stored = all_nodes(store, acme.tenant_id)
    assert len(stored) == len(reference) == 2 * len(leaves) - len(leaves).bit_count()
    assert stored == {node: reference.get_nodes([node])[0] for node in stored}
    assert store.log(acme.tenant_id).node_count() == len(stored)
    head = store.log(acme.tenant_id).head()
    assert head.size == len(leaves) == store.events(acme.tenant_id).size()
    assert head.root == root_from_leaves(leaves) == tree.root()
    assert CompactRange.from_bytes(head.frontier) == tree
    assert [e.leaf_hash for e in store.events(acme.tenant_id).scan()] == leaves
    reader = store.log(acme.tenant_id)
    size = len(leaves)
    for n in (1, 2, 37, size // 2, size):
        assert root_hash(n, reader) == root_hash(n, reference)
        assert inclusion_proof(n // 2, n, reader) == inclusion_proof(n // 2, n, reference)
        assert consistency_proof(n // 3, n, reader) == consistency_proof(n // 3, n, reference)
    assert store.log(globex.tenant_id).head().size == 18
    assert reader.get_nodes([]) == []


def test_checkpoints(store: AnyStore) -> None:
    acme = store.create_tenant("acme", "acme")
    sign = FakeSigner("aaaa0001")
    first, made = store.add_checkpoint(acme.tenant_id, sign)  # of the empty log
    assert made and first.size == 0 and first.root == EMPTY_ROOT
    append1(store, acme.tenant_id, [prep(i) for i in range(5)])
    cp5, made = store.add_checkpoint(acme.tenant_id, sign)
    assert made and cp5.size == 5 and cp5.key_ids == ("aaaa0001",)
    assert cp5.root == store.log(acme.tenant_id).head().root
    assert cp5.note == sign(5, cp5.root)
    again, made = store.add_checkpoint(acme.tenant_id, sign)
    assert not made and again == cp5  # the head is covered already
    forced, made = store.add_checkpoint(acme.tenant_id, sign, force=True)
    assert made and forced.size == 5
    cosigned, made = store.add_checkpoint(acme.tenant_id, FakeSigner("aaaa0001", "bbbb0002"))
    assert made and cosigned.key_ids == ("aaaa0001", "bbbb0002")  # new keys: signed again
    append1(store, acme.tenant_id, [prep(i) for i in range(5, 8)])
    cp8, _ = store.add_checkpoint(acme.tenant_id, sign)
    log = store.log(acme.tenant_id)
    assert log.latest_checkpoint() == cp8
    assert log.checkpoint(5) == cosigned  # one per size: the latest signing replaced it
    assert log.checkpoint(6) is None
    assert [c.size for c in log.checkpoints()] == [0, 5, 8]
    assert [c.size for c in log.checkpoints(0, 1)] == [5]
    assert [c.size for c in log.checkpoints(5)] == [8]
    with pytest.raises(StoreError, match="no log head"):
        store.add_checkpoint(424242, sign)


def _record(key_id: str, created_at: int) -> SigningKeyRecord:
    return SigningKeyRecord(key_id, "audit.example", f"vkey-{key_id}", "active", created_at, None)


def test_signing_keys(store: AnyStore) -> None:
    assert store.signing_keys() == []
    assert store.add_signing_key(_record("00000001", 10), rotate=False)
    assert not store.add_signing_key(_record("00000002", 20), rotate=False)  # one exists
    assert [k.key_id for k in store.signing_keys()] == ["00000001"]
    assert store.add_signing_key(_record("00000003", 30), rotate=True)
    keys = store.signing_keys()
    assert [(k.key_id, k.state) for k in keys] == [("00000003", "active"), ("00000001", "retiring")]
    retired = store.retire_signing_keys(99)
    assert [k.key_id for k in retired] == ["00000001"] and retired[0].state == "retiring"
    keys = store.signing_keys()
    assert [(k.key_id, k.state, k.retired_at) for k in keys] == [
        ("00000003", "active", None),
        ("00000001", "retired", 99),
    ]
    assert store.retire_signing_keys(100) == []


# -- destinations ------------------------------------------------------------------------------


def test_destinations(store: AnyStore) -> None:
    acme = store.create_tenant("acme", "acme")
    dests = store.destinations(acme.tenant_id)
    one = make_destination(acme.tenant_id, "dst_1", "one", created_at=10)
    two = make_destination(acme.tenant_id, "dst_2", "two", created_at=5, secret=None)
    assert dests.create(one) == one
    dests.create(two)
    with pytest.raises(Conflict, match="one"):
        dests.create(make_destination(acme.tenant_id, "dst_3", "one"))
    assert dests.list() == [two, one]
    assert dests.get("dst_1") == one and dests.get("dst_9") is None
    updated = dests.update("dst_1", config={"url": "https://b.example"}, attempts=2)
    assert updated is not None
    assert updated.config == {"url": "https://b.example"} and updated.attempts == 2
    assert updated.updated_at > one.updated_at  # set when not given
    assert dests.update("dst_9", attempts=1) is None
    with pytest.raises(Conflict, match="two"):
        dests.update("dst_1", name="two")
    with pytest.raises(StoreError, match="not updatable"):
        dests.update("dst_1", tenant_id=2)
    # advance is a compare-and-set on the cursor, and clears the failure streak
    dests.update("dst_1", batch_end=7, failing_since=3, last_error="boom", next_attempt_at=50)
    assert dests.advance("dst_1", 0, 7, 60)
    assert not dests.advance("dst_1", 0, 9, 61)  # stale: the cursor moved
    after = dests.get("dst_1")
    assert after is not None
    assert (after.cursor, after.batch_end, after.failing_since, after.last_error) == (
        7,
        None,
        None,
        None,
    )
    assert (after.delivered, after.last_success_at, after.updated_at) == (7, 60, 60)
    # leases: one holder at a time until it expires
    assert dests.claim("dst_1", "node-a", 100, 200)
    assert dests.claim("dst_1", "node-a", 150, 250)
    assert not dests.claim("dst_1", "node-b", 200, 300)
    assert dests.claim("dst_1", "node-b", 251, 400)
    assert store.release_leases("node-a") == 0
    assert store.release_leases("node-b") == 1
    assert dests.claim("dst_1", "node-a", 260, 500)
    assert store.release_leases(None) == 1
    assert not dests.claim("dst_9", "node-a", 1, 2)
    assert dests.delete("dst_2") and not dests.delete("dst_2")
    assert dests.list() == [dests.get("dst_1")]


def test_due_and_all_destinations(store: AnyStore) -> None:
    acme = store.create_tenant("acme", "acme")
    globex = store.create_tenant("globex", "globex")
    a = store.destinations(acme.tenant_id)
    g = store.destinations(globex.tenant_id)
    a.create(make_destination(acme.tenant_id, "dst_now", "now"))
    a.create(make_destination(acme.tenant_id, "dst_later", "later", next_attempt_at=500))
    a.create(make_destination(acme.tenant_id, "dst_paused", "paused", state="paused"))
    g.create(make_destination(globex.tenant_id, "dst_soon", "soon", next_attempt_at=100))
    assert [d.dest_id for d in store.due_destinations(50)] == ["dst_now"]
    assert [d.dest_id for d in store.due_destinations(100)] == ["dst_now", "dst_soon"]
    assert [d.dest_id for d in store.due_destinations(10**9)] == [
        "dst_now",
        "dst_soon",
        "dst_later",
    ]
    assert [(d.tenant_id, d.dest_id) for d in store.all_destinations()] == sorted(
        [
            (acme.tenant_id, "dst_later"),
            (acme.tenant_id, "dst_now"),
            (acme.tenant_id, "dst_paused"),
            (globex.tenant_id, "dst_soon"),
        ]
    )


# -- snapshots, readiness, verification --------------------------------------------------------


def test_snapshot_reads_one_state(store: AnyStore) -> None:
    acme = store.create_tenant("acme", "acme")
    append1(store, acme.tenant_id, [prep(i) for i in range(3)])
    events, log = store.events(acme.tenant_id), store.log(acme.tenant_id)
    with store.snapshot():
        assert events.stats() == (3, 3)
        append1(store, acme.tenant_id, [prep(i) for i in range(3, 6)])  # committed meanwhile
        assert events.size() == 3 and events.stats() == (3, 3)
        assert log.head().size == 3 and log.node_count() == 4
        assert [e.seq for e in events.after_seq(0, 10)] == [1, 2, 3]
    assert events.size() == 6 and log.head().size == 6


def test_a_closed_store_is_unavailable(backend: Backend) -> None:
    store = backend.open()
    store.check_ready()
    store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        store.check_ready()
    with pytest.raises(StoreUnavailable):
        store.list_tenants()


@pytest.mark.parametrize(("jobs", "chunk"), [(1, 1 << 16), (2, 8)])
def test_verify_reads_the_store(store: AnyStore, jobs: int, chunk: int) -> None:
    acme = store.create_tenant("acme", "acme")
    for start in range(0, 60, 13):
        append1(store, acme.tenant_id, [prep(i) for i in range(start, start + 13)])
    inp = stored_log_input(store, acme, "auditkeep.local/acme", [], pinned=False)
    report = verify_store_log(inp, jobs=jobs, chunk=chunk)
    assert report.ok, report.problems
    assert report.checked == 65 and report.root == store.log(acme.tenant_id).head().root


def test_open_store_picks_the_backend(backend: Backend) -> None:
    config = Config(data_dir=backend.data_dir, database_url=backend.url, database_pool_size=2)
    store = open_store(config)
    try:
        expected = SQLiteStore if backend.kind == "sqlite" else PostgresStore
        assert isinstance(store, expected)
        assert store.migrate() == 5
    finally:
        store.close()


# -- PostgreSQL only ---------------------------------------------------------------------------


def test_two_nodes_append_to_one_tenant_at_once(pg_backend: Backend) -> None:
    """Two stores (two API nodes), four writer threads each, the same two tenants: the
    database serializes them, so seqs are gap-free, every id is stored once, and the tree is
    that of the stored leaves in seq order."""
    node_a, node_b = pg_backend.open(pool_size=3), pg_backend.open(pool_size=3)
    acme = node_a.create_tenant("acme", "acme").tenant_id
    globex = node_b.create_tenant("globex", "globex").tenant_id
    rounds, per_batch = 12, 15
    accepted: dict[tuple[int, str], list[int]] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(store: AnyStore, name: str) -> None:
        try:
            for r in range(rounds):
                own = [prep(f"{name}-{r}-{i}") for i in range(per_batch)]
                shared = [prep(f"shared-{r}-{i}") for i in range(3)]  # every writer sends these
                g = [prep(f"{name}-{r}", "globex"), prep(f"shared-{r}", "globex")]
                # tenants in both orders: the heads are locked in tenant_id order regardless
                batches = [TenantAppend(acme, own + shared), TenantAppend(globex, g)]
                if r % 2:
                    batches.reverse()
                results = store.append(batches)
                with lock:
                    for batch, res in zip(batches, results, strict=True):
                        for ev, one in zip(batch.events, res, strict=True):
                            assert one.status in ("accepted", "duplicate"), one
                            if one.status == "accepted":
                                accepted.setdefault((batch.tenant_id, ev.id), []).append(one.seq)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=writer, args=(store, f"{label}{i}"))
        for label, store in (("a", node_a), ("b", node_b))
        for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    writers = len(threads)
    for tenant, per_writer, shared in ((acme, per_batch, 3), (globex, 1, 1)):
        want = writers * rounds * per_writer + rounds * shared
        ids = {event_id for (tid, event_id) in accepted if tid == tenant}
        assert len(ids) == want
        assert all(len(v) == 1 for (tid, _), v in accepted.items() if tid == tenant)
        stored = list(node_b.events(tenant).scan(batch=500))
        assert [e.seq for e in stored] == list(range(1, want + 1))  # gap-free, unique
        by_seq = {seqs[0]: event_id for (tid, event_id), seqs in accepted.items() if tid == tenant}
        assert {e.seq: e.to_json()["id"] for e in stored} == by_seq
        leaves = [e.leaf_hash for e in stored]
        reference, tree = MemoryNodeStore.from_leaf_hashes(leaves)
        head = node_a.log(tenant).head()
        assert head.size == want and head.root == tree.root()
        nodes = all_nodes(node_a, tenant)
        assert len(nodes) == len(reference)
        assert nodes == {node: reference.get_nodes([node])[0] for node in nodes}


def test_a_failure_after_the_copies_writes_nothing(
    pg_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = pg_backend.open()
    acme = store.create_tenant("acme", "acme")
    append1(store, acme.tenant_id, [prep("first", targets=[{"type": "t", "id": "t"}])])

    def fail(*args: Any) -> None:
        raise RuntimeError("the node died before the heads were updated")

    monkeypatch.setattr("auditkeep.store.postgres._update_heads", fail)
    with pytest.raises(RuntimeError):
        append1(
            store, acme.tenant_id, [prep(i, targets=[{"type": "t", "id": "t"}]) for i in range(5)]
        )
    monkeypatch.undo()
    counts = pg_backend.sql(
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM event_targets),"
        " (SELECT count(*) FROM event_ids), (SELECT count(*) FROM merkle_tiles)"
    )
    assert counts == [(1, 1, 1, 1)]
    results = append1(store, acme.tenant_id, [prep(i) for i in range(5)])
    assert [r.seq for r in results] == [2, 3, 4, 5, 6]


def test_every_primary_key_is_led_by_tenant_id(pg_backend: Backend) -> None:
    pg_backend.open()
    rows = pg_backend.sql(
        "SELECT c.relname, (SELECT a.attname FROM pg_constraint k JOIN pg_attribute a"
        "  ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]"
        "  WHERE k.conrelid = c.oid AND k.contype = 'p')"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY c.relname"
    )
    leading = dict(rows)
    assert leading.pop("schema_migrations") == "version"  # the documented exception
    for table in ("tenants", "log_heads", "api_keys", "events", "event_ids", "event_targets"):
        assert table in leading
    for table in ("merkle_tiles", "checkpoints", "signing_keys", "destinations", "key_revision"):
        assert table in leading
    assert {t: c for t, c in leading.items() if c != "tenant_id"} == {}  # partitions too


def _partitions(backend: Backend, parent: str) -> dict[str, str]:
    rows = backend.sql(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
        (parent,),
    )
    return {str(name): str(bound) for name, bound in rows}


def test_monthly_partitions_are_made_ahead(pg_backend: Backend) -> None:
    store = pg_backend.open()
    assert isinstance(store, PostgresStore)
    months = _month_bounds(now_micros())
    for parent in ("events", "event_targets"):
        parts = _partitions(pg_backend, parent)
        assert parts.pop(f"{parent}_default") == "DEFAULT"
        assert parts == {
            f"{parent}_{suffix}": f"FOR VALUES FROM ('{first}') TO ('{end}')"
            for suffix, first, end in months
        }
    assert store.ensure_partitions() == []  # idempotent and cheap
    assert store.migrate() == 5 and len(_partitions(pg_backend, "events")) == 4

    # an event beyond the partitions lands in DEFAULT; making its month's partition moves it
    acme = store.create_tenant("acme", "acme")
    later = now_micros() + 200 * 86_400 * 1_000_000
    ev = prep("future", received_at=later, targets=[{"type": "t", "id": "far"}])
    append1(store, acme.tenant_id, [prep("now"), ev])
    assert pg_backend.sql("SELECT count(*) FROM events_default") == [(1,)]
    made = store.ensure_partitions(later)
    suffixes = [suffix for suffix, _, _ in _month_bounds(later)]
    assert sorted(made) == sorted(f"{p}_{s}" for p in ("events", "event_targets") for s in suffixes)
    assert pg_backend.sql("SELECT count(*) FROM events_default") == [(0,)]
    assert pg_backend.sql("SELECT count(*) FROM event_targets_default") == [(0,)]
    assert pg_backend.sql(f"SELECT count(*) FROM events_{suffixes[0]}") == [(1,)]
    found = store.events(acme.tenant_id).get("evt-future")
    assert found is not None and found.seq == 2
    by_target = store.events(acme.tenant_id).query(
        PageRequest(10, filters=EventFilter(target_id="far"))
    )
    assert [e.seq for e in by_target] == [2]
    # the attached partitions got the indexes of the partitioned table
    indexes = pg_backend.sql(
        "SELECT count(*) FROM pg_indexes WHERE tablename = %s", (f"events_{suffixes[0]}",)
    )
    assert indexes == [(4,)]  # primary key, by time, by actor, by action


def test_nodes_starting_together_migrate_once(pg_backend: Backend) -> None:
    stores = [pg_backend.open(migrate=False, pool_size=1) for _ in range(4)]
    versions: list[int] = []
    errors: list[BaseException] = []

    def run(store: AnyStore) -> None:
        try:
            versions.append(store.migrate())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and versions == [5, 5, 5, 5]
    assert pg_backend.sql("SELECT version FROM schema_migrations ORDER BY 1") == [
        (1,),
        (2,),
        (3,),
        (4,),
        (5,),
    ]
    assert pg_backend.sql("SELECT count(*) FROM tenants") == [(1,)]


def test_a_newer_schema_is_refused(pg_backend: Backend) -> None:
    pg_backend.open()
    pg_backend.sql("INSERT INTO schema_migrations VALUES (99, 0)")
    store = pg_backend.open(migrate=False)
    with pytest.raises(ConfigError) as info:
        store.migrate()
    assert str(info.value) == (
        "the database schema is at version 99 but this auditkeep knows up to 5: upgrade auditkeep"
    )


class PasswordRefusingServer:
    """Speaks just enough of the PostgreSQL protocol to ask for a password and refuse it, as
    a server with password authentication does for a wrong one (the test server trusts)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.passwords: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                self._refuse(conn)

    @staticmethod
    def _read(conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise OSError("closed")
            data += chunk
        return data

    def _refuse(self, conn: socket.socket) -> None:
        while True:
            (length,) = struct.unpack("!i", self._read(conn, 4))
            body = self._read(conn, length - 4)
            if struct.unpack("!i", body[:4])[0] in (80877103, 80877104):  # SSL, GSSAPI
                conn.sendall(b"N")
                continue
            break
        conn.sendall(b"R" + struct.pack("!ii", 8, 3))  # cleartext password, please
        kind = self._read(conn, 1)
        (length,) = struct.unpack("!i", self._read(conn, 4))
        password = self._read(conn, length - 4)
        if kind == b"p":
            self.passwords.append(password.rstrip(b"\0"))
        fields = b"SFATAL\0VFATAL\0C28P01\0M"
        fields += b'password authentication failed for user "auditkeep"\0\0'
        conn.sendall(b"E" + struct.pack("!i", len(fields) + 4) + fields)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def refusing_server() -> Iterator[PasswordRefusingServer]:
    server = PasswordRefusingServer()
    yield server
    server.close()


def _chain(exc: BaseException | None) -> str:
    parts = []
    while exc is not None:
        parts.append(repr(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


SECRET = "s3cr3t-P@ss/word"


def test_a_wrong_password_is_a_clear_error_without_the_password(
    refusing_server: PasswordRefusingServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    quoted = "s3cr3t-P%40ss%2Fword"
    url = f"postgresql://auditkeep:{quoted}@127.0.0.1:{refusing_server.port}/audit?sslmode=disable"
    with pytest.raises(ConfigError) as info:
        PostgresStore(url)
    assert refusing_server.passwords == [SECRET.encode()]  # it was sent, and refused
    message = str(info.value)
    assert f"127.0.0.1:{refusing_server.port}" in message and "'auditkeep'" in message
    assert "password authentication failed" in message and "database_url" in message
    for text in (_chain(info.value), caplog.text):
        assert SECRET not in text and quoted not in text and "s3cr3t" not in text


def test_a_closed_port_is_a_clear_error_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    url = with_user(f"postgresql://127.0.0.1:{port}/audit", "auditkeep", SECRET)
    with pytest.raises(StoreUnavailable) as info:
        PostgresStore(url)
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "user 'auditkeep'" in message
    assert "running" in message
    # a password that was not percent-encoded makes a malformed URL: still never shown
    malformed = f"postgresql://auditkeep:{SECRET}@127.0.0.1:{port}/audit"
    with pytest.raises((ConfigError, StoreUnavailable)) as bad:
        PostgresStore(malformed)
    for text in (_chain(info.value), _chain(bad.value), caplog.text):
        assert "s3cr3t" not in text and "P@ss" not in text


def test_an_unknown_user_is_a_config_error(pg_backend: Backend) -> None:
    with pytest.raises(ConfigError) as info:
        PostgresStore(with_user(pg_backend.url, "nobody_here", SECRET))
    assert "'nobody_here'" in str(info.value) and "does not exist" in str(info.value)
    assert "s3cr3t" not in _chain(info.value)


def test_redact() -> None:
    assert redact("postgresql://u:pw@h/db failed") == "postgresql://u:***@h/db failed"
    assert redact("host=h password='a b' user=u") == "host=h password=*** user=u"
    assert redact("the secret is hunter2", "hunter2") == "the secret is ***"
    assert redact("x P%40ss y", "P@ss") == "x *** y"


def with_user(url: str, user: str, password: str) -> str:
    parts = urllib.parse.urlsplit(url)
    quoted = urllib.parse.quote(password, safe="")
    netloc = f"{user}:{quoted}@{parts.hostname}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def test_a_node_whose_connections_were_cut_recovers(
    pg_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """What a failover does to the pooled connections (the test server trusts, so the password
    in the URL is accepted and ignored; it must still appear nowhere)."""
    caplog.set_level(logging.DEBUG)
    user = urllib.parse.urlsplit(pg_backend.url).username or "postgres"
    store = PostgresStore(with_user(pg_backend.url, user, SECRET), pool_size=3)
    pg_backend.opened.append(store)
    store.migrate()
    acme = store.create_tenant("acme", "acme")
    append1(store, acme.tenant_id, [prep(1)])
    assert "s3cr3t" not in repr(store) and "s3cr3t" not in store.where

    def cut() -> None:
        pg_backend.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'auditkeep'"
        )

    cut()
    assert [t.slug for t in store.list_tenants()] == ["acme"]  # a read is retried once
    cut()
    [res] = append1(store, acme.tenant_id, [prep(2)])  # BEGIN found it dead: a fresh one
    assert (res.status, res.seq) == ("accepted", 2)
    with store.snapshot():
        cut()  # in the middle of a transaction: that one fails, the next one works
        with pytest.raises(StoreUnavailable) as info:
            store.events(acme.tenant_id).size()
    assert "s3cr3t" not in _chain(info.value) and "unavailable" in str(info.value)
    assert store.events(acme.tenant_id).size() == 2
    store.check_ready()
    assert "s3cr3t" not in caplog.text


def test_tampering_is_found_by_verify(pg_backend: Backend) -> None:
    store = pg_backend.open()
    acme = store.create_tenant("acme", "acme")
    append1(store, acme.tenant_id, [prep(i) for i in range(20)])
    pg_backend.sql(
        "UPDATE events SET leaf_data ="
        " convert_to(replace(convert_from(leaf_data, 'UTF8'), 'Ada', 'Eve'), 'UTF8')"
        " WHERE seq = 7"
    )
    inp = stored_log_input(store, acme, "auditkeep.local/acme", [], pinned=False)
    report = verify_store_log(inp, jobs=2, chunk=8)
    assert not report.ok
    assert any("seq 7" in p for p in report.problems), report.problems


def test_a_core_over_postgres(pg_backend: Backend, tmp_path: Path) -> None:
    """The whole process over PostgreSQL: ingest through the writer, query, sign, verify."""
    core = make_core(
        tmp_path / "node",
        database_url=pg_backend.url,
        database_pool_size=4,
        checkpoint_interval=0,
    )
    try:
        assert isinstance(core.store, PostgresStore)
        core.start()
        tenant = core.create_tenant("acme")
        prepared = [prep(i) for i in range(30)]
        results = core.writer.append_sync(tenant.tenant_id, prepared)
        assert [r.seq for r in results] == list(range(1, 31))
        page = core.query_events(tenant.tenant_id, {"limit": "10", "action": "user.*"})
        assert [e["seq"] for e in page["data"]] == list(range(30, 20, -1))
        core.tlog.sign(tenant)
        inp = stored_log_input(
            core.store, tenant, core.tlog.origin(tenant.slug), core.keys.verifiers(), pinned=False
        )
        report = verify_store_log(inp, jobs=2, chunk=8)
        assert report.ok and report.checkpoints_checked == 1, report.problems
    finally:
        core.close()


def test_stored_events_round_trip(store: AnyStore) -> None:
    acme = store.create_tenant("acme", "acme")
    ev = prep("rt", actor={"id": "a\x00ü", "type": "user"}, targets=[{"type": "t", "id": "\x00"}])
    append1(store, acme.tenant_id, [ev])
    got = store.events(acme.tenant_id).get("evt-rt")
    assert got == StoredEvent(1, ev.occurred_at, ev.leaf_hash, ev.leaf_data)
    assert got.to_json()["actor"]["id"] == "a\x00ü"


@pytest.mark.parametrize(
    ("durability", "server_default", "expected"),
    [("full", "on", "on"), ("full", "off", "on"), ("full", "local", "on"), ("normal", "on", "off")],
)
def test_durability_sets_synchronous_commit(
    pg_backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
    durability: str,
    server_default: str,
    expected: str,
) -> None:
    dbname = urllib.parse.urlsplit(pg_backend.url).path.lstrip("/")
    pg_backend.sql(f'ALTER DATABASE "{dbname}" SET synchronous_commit = {server_default}')
    pg_backend.durability = durability
    store = pg_backend.open()
    acme = store.create_tenant("acme", "acme")
    seen: list[str] = []
    original = postgres_module._append_in_txn

    def spy(conn: Any, batches: Any) -> Any:
        seen.append(conn.execute("SHOW synchronous_commit").fetchone()[0])
        return original(conn, batches)

    monkeypatch.setattr(postgres_module, "_append_in_txn", spy)
    append1(store, acme.tenant_id, [prep(1)])
    assert seen == [expected]


def test_a_long_reader_delays_new_partitions_briefly_not_the_node(
    pg_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """ATTACH PARTITION needs the DEFAULT partition to itself: behind a long read (a verify
    snapshot, say) it gives up after its lock_timeout instead of queueing every other reader
    behind it, and the node keeps working (new rows go to DEFAULT until a later try)."""
    store = pg_backend.open()
    assert isinstance(store, PostgresStore)
    acme = store.create_tenant("acme", "acme")
    later = now_micros() + 200 * 86_400 * 1_000_000
    with psycopg.connect(pg_backend.url) as reader:  # a transaction that has read events
        reader.execute("SELECT count(*) FROM events").fetchall()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="lock"):
            store.ensure_partitions(later)
        assert time.monotonic() - started < 10
        assert store.migrate() == 5  # a starting node is not stopped by it either
        [res] = append1(store, acme.tenant_id, [prep(1, received_at=later)])
        assert res.status == "accepted"
    assert "could not create the monthly partitions" not in caplog.text  # those exist already
    assert len(store.ensure_partitions(later)) == 6
    assert store.events(acme.tenant_id).get("evt-1") is not None
