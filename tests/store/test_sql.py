"""What both SQL stores share (``store/sql.py``): the placeholder translation, the paging of
target queries, and the error mapping every shared read now gets on SQLite.

The shared statements themselves are held by the contract suite (``test_contract.py``), which
runs every one of them on both backends.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from auditkeep.errors import StoreUnavailable
from auditkeep.store.base import PageRequest, Position, StoredEvent
from auditkeep.store.sql import page_by_target, pyformat
from auditkeep.store.sqlite import SQLiteStore


def test_pyformat_translates_placeholders() -> None:
    assert pyformat("SELECT a FROM t WHERE b = ? AND c IN (?, ?)") == (
        "SELECT a FROM t WHERE b = %s AND c IN (%s, %s)"
    )
    assert pyformat("SELECT 1") == "SELECT 1"


def test_pyformat_refuses_a_literal_percent() -> None:
    # psycopg would read it as a placeholder: a shared statement must not hold one
    with pytest.raises(ValueError, match="must not contain '%'"):
        pyformat("SELECT a FROM t WHERE b LIKE 'x%' AND c = ?")


def _event(seq: int, occurred_at: int) -> StoredEvent:
    return StoredEvent(seq, occurred_at, b"h", b"{}")


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 50])
def test_page_by_target_drops_repeats_across_reads(limit: int) -> None:
    # event_targets rows, newest first: seq 9 and seq 7 match through three targets each, so
    # their repeats are adjacent and may straddle the boundary between two reads
    rows = [_event(s, t) for s, t in [(9, 90), (9, 90), (9, 90), (8, 80), (7, 70), (7, 70)]]
    rows += [_event(7, 70), _event(6, 60), _event(5, 50)]
    reads: list[tuple[Position | None, int]] = []

    def fetch(after: Position | None, want: int) -> list[StoredEvent]:
        reads.append((after, want))
        start = 0
        if after is not None:
            start = max(i for i, r in enumerate(rows) if (r.occurred_at, r.seq) == tuple(after)) + 1
        return rows[start : start + want]

    page = page_by_target(PageRequest(limit=limit), fetch)

    expected = [9, 8, 7, 6, 5][:limit]
    assert [e.seq for e in page] == expected
    assert reads[0] == (None, limit * 2 + 1)  # twice what is wanted, and one more


def test_page_by_target_starts_after_the_cursor() -> None:
    rows = [_event(9, 90), _event(8, 80), _event(8, 80), _event(7, 70)]

    def fetch(after: Position | None, want: int) -> list[StoredEvent]:
        assert after == Position(90, 9)
        return rows[1 : 1 + want]  # the store's cursor condition already skips seq 9

    page = page_by_target(PageRequest(limit=5, after=Position(90, 9)), fetch)
    assert [e.seq for e in page] == [8, 7]


@pytest.mark.parametrize(
    ("table", "read"),
    [
        ("key_revision", lambda s, t: s.key_revision()),
        ("api_keys", lambda s, t: s.find_key("k1")),
        ("signing_keys", lambda s, t: s.signing_keys()),
        ("merkle_tiles", lambda s, t: s.log(t).node_count()),
        ("checkpoints", lambda s, t: s.log(t).latest_checkpoint()),
        ("destinations", lambda s, t: s.all_destinations()),
    ],
)
def test_a_failed_sqlite_read_is_unavailable(
    tmp_path: Path, table: str, read: Callable[[SQLiteStore, int], Any]
) -> None:
    """Every shared read maps SQLite's operational errors to StoreUnavailable (503, with what
    failed), as the PostgreSQL store maps its driver's, instead of a bare sqlite3 error."""
    store = SQLiteStore(tmp_path / "data")
    try:
        store.migrate()
        tenant = store.create_tenant("acme", "acme")
        store._write(lambda conn: conn.execute(f"DROP TABLE {table}"))
        with pytest.raises(StoreUnavailable, match=f"SQLite read failed: no such table: {table}"):
            read(store, tenant.tenant_id)
    finally:
        store.close()
