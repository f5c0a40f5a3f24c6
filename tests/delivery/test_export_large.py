"""Export of 1,000,000 events in each format, through the CLI as a user runs it, with memory
that does not grow with the number of events.

The events are written straight into a data directory with SQL (1M events through ingest would
take minutes here); the store's own migration then builds their Merkle tree, so the data
directory is a valid one. Each export runs as its own process; its peak RSS (``wait4``) is
compared with that of an export of 1,000 events.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
from pathlib import Path

import orjson
import pytest

from auditkeep.delivery.formats import CSV_COLUMNS
from auditkeep.store.sqlite import SQLiteStore
from tests.conftest import AUDITKEEP

pytestmark = pytest.mark.slow

N = 1_000_000
_BASE_US = 1_795_000_000_000_000  # 2026-11-18


def _load(data_dir: Path, tenant: str, count: int) -> None:
    store = SQLiteStore(data_dir)
    store.migrate()
    t = store.create_tenant(tenant, tenant)
    actions = ["user.login", "user.logout", "document.updated", "role.assigned", "http.request"]

    def rows():  # type: ignore[no-untyped-def]
        for seq in range(1, count + 1):
            occurred = _BASE_US + seq * 1_000
            stamp = f"2026-11-18T{(seq // 3_600_000) % 24:02d}:00:00.{seq % 1_000_000:06d}Z"
            action = actions[seq % 5]
            ev = {
                "action": action,
                "actor": {"id": f"user_{seq % 977}", "name": "Ada", "type": "user"},
                "category": "access" if action == "http.request" else "audit",
                "context": {"ip": "203.0.113.9", "request_id": f"req-{seq}"},
                "id": f"e{seq:08d}",
                "metadata": {"n": seq},
                "occurred_at": stamp,
                "outcome": "failure" if seq % 10 == 0 else "success",
                "received_at": stamp,
                "targets": [{"id": f"doc_{seq % 5000}", "type": "document"}],
                "tenant": tenant,
            }
            data = orjson.dumps(ev, option=orjson.OPT_SORT_KEYS)
            yield (
                t.tenant_id,
                seq,
                ev["id"],
                action,
                ev["category"],
                ev["outcome"],
                ev["actor"]["id"],  # type: ignore[index]
                occurred,
                occurred,
                hashlib.sha256(b"\x00" + data).digest(),
                data,
            )

    conn = store._writer()
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows())
    conn.execute(
        "UPDATE log_heads SET size = ?, frontier = NULL, root = NULL WHERE tenant_id = ?",
        (count, t.tenant_id),
    )
    conn.execute("COMMIT")
    store.close()
    store = SQLiteStore(data_dir)
    store.migrate()  # builds the tree of the rows just written, as for an old store
    store.close()


def _export(data_dir: Path, tenant: str, fmt: str, out: Path) -> int:
    """Run `auditkeep export`; return its peak RSS in KiB."""
    proc = subprocess.Popen(
        [
            *AUDITKEEP,
            "export",
            "--data-dir",
            str(data_dir),
            "--tenant",
            tenant,
            "--format",
            fmt,
            "--output",
            str(out),
            "--quiet",
        ],
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.stderr is not None
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.returncode == 0, err
    return int(usage.ru_maxrss)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    big = tmp_path_factory.mktemp("big") / "data"
    small = tmp_path_factory.mktemp("small") / "data"
    _load(big, "acme", N)
    _load(small, "acme", 1_000)
    return big, small


@pytest.mark.parametrize("fmt", ["ndjson", "csv", "ocsf"])
def test_a_million_events_with_bounded_memory(
    stores: tuple[Path, Path], tmp_path: Path, fmt: str
) -> None:
    big, small = stores
    small_rss = _export(small, "acme", fmt, tmp_path / "small.out")
    big_rss = _export(big, "acme", fmt, tmp_path / "big.out")
    # a few pages of rows and SQLite's page cache, not the export: it must not scale with N
    assert big_rss < small_rss + 80 * 1024, (fmt, small_rss, big_rss)
    out = tmp_path / "big.out"
    with out.open("rb") as f:
        head = [next(f) for _ in range(3)]
        f.seek(max(0, out.stat().st_size - 4096))
        tail = f.read().splitlines()[-1]
    with out.open("rb") as f:
        count = sum(1 for _ in f)
    if fmt == "csv":
        assert count == N + 1
        assert tuple(next(csv.reader(io.StringIO(head[0].decode())))) == CSV_COLUMNS
        first = dict(zip(CSV_COLUMNS, next(csv.reader(io.StringIO(head[1].decode()))), strict=True))
        assert first["seq"] == "1" and first["id"] == "e00000001"
        assert next(csv.reader(io.StringIO(tail.decode())))[0] == str(N)
    elif fmt == "ndjson":
        assert count == N
        assert json.loads(head[0])["seq"] == 1 and json.loads(tail)["seq"] == N
    else:
        assert count == N
        first, last = json.loads(head[0]), json.loads(tail)
        assert first["metadata"]["uid"] == "e00000001" and last["unmapped"]["seq"] == N
        assert {json.loads(line)["class_uid"] for line in head} <= {3002, 3004, 3001, 6003}
