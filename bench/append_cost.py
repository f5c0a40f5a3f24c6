"""SQLite append cost, index by index: microseconds per event in SQLiteStore.append.

    .venv/bin/python bench/append_cost.py [--events 20000] [--rounds 3] [--profile]

Events are bench/_workload.py's, prepared (validated, canonicalised, hashed) before the clock
starts: only the store's append is timed. Each variant appends them to a fresh data directory
in batches of 500 (one SQLiteStore.append each: one transaction, durability full, so one fsync
per batch), in-process. Variants, alternated round by round (the median of --rounds is
reported):

- ``tiles (now)``: the store as it is: the tree written as tlog-tiles;
- ``nodes (before)``: the tree written as one row per perfect subtree into a schema-4
  ``merkle_nodes`` table, as schemas 2-4 did (the store's ``append_tiles`` swapped for that);
- ``without <index>``: the store with that one secondary index dropped;
- ``raw baseline`` (no auditkeep code): the same rows inserted with executemany into a plain
  SQLite table with the events columns and three secondary indexes, WAL, synchronous=FULL,
  500 per transaction.

µs/event is wall time (fsync included) and CPU time (steadier on a shared machine). With
--profile, cProfile's top functions of one ``tiles (now)`` run are printed.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import table
from _workload import Workload

import auditkeep.store.sqlite as sqlite_store
from auditkeep.integrity.merkle import Node
from auditkeep.model import PreparedEvent, now_micros, prepare_event
from auditkeep.store.base import TenantAppend
from auditkeep.store.sql import Connection
from auditkeep.store.sqlite import SQLiteStore

BATCH = 500
INDEXES = (
    "events_by_time",
    "events_by_actor",
    "events_by_action",
    "event_targets_by_id",
    "event_targets_by_type",
)
_REAL_APPEND_TILES = sqlite_store.append_tiles


def prepared_events(n: int) -> list[PreparedEvent]:
    wl = Workload(seed=3)
    base = now_micros() - 86_400_000_000
    out = []
    for i in range(n):
        raw = wl.event(base + i * 1000)
        raw["id"] = f"cost-{i:08d}"
        out.append(prepare_event(raw, "acme", base + i * 1000 + 5))
    return out


def _nodes_writer(
    conn: Connection,
    q: Callable[[str], str],
    tenant_id: int,
    old_size: int,
    new_size: int,
    created: Sequence[Node],
) -> None:
    """The tree as schemas 2-4 wrote it: every completed perfect subtree, one row each."""
    assert isinstance(conn, sqlite3.Connection)
    conn.executemany(
        "INSERT INTO merkle_nodes (tenant_id, level, idx, hash) VALUES (?, ?, ?, ?)",
        [(tenant_id, level, idx, h) for level, idx, h in created],
    )


def run_store(
    work: Path, events: list[PreparedEvent], variant: str, profile: bool = False
) -> tuple[float, float, str]:
    data = work / variant.replace(" ", "_")
    shutil.rmtree(data, ignore_errors=True)
    store = SQLiteStore(data, durability="full")
    store.migrate()
    tid = store.create_tenant("acme", "acme").tenant_id
    conn = store._writer()
    if variant.startswith("without "):
        conn.execute(f"DROP INDEX {variant.removeprefix('without ')}")
    if variant == "nodes (before)":
        conn.execute(
            "CREATE TABLE merkle_nodes (tenant_id INTEGER NOT NULL, level INTEGER NOT NULL,"
            " idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (tenant_id, level, idx))"
            " WITHOUT ROWID"
        )
        sqlite_store.append_tiles = _nodes_writer  # type: ignore[assignment]
    profiler = cProfile.Profile() if profile else None
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        for start in range(0, len(events), BATCH):
            store.append([TenantAppend(tid, events[start : start + BATCH])])
        if profiler:
            profiler.disable()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        sqlite_store.append_tiles = _REAL_APPEND_TILES
        store.close()
        shutil.rmtree(data, ignore_errors=True)
    report = ""
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
        report = out.getvalue()
    return wall, cpu, report


def run_raw(work: Path, events: list[PreparedEvent]) -> tuple[float, float]:
    path = work / "raw.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE events (tenant_id INTEGER, seq INTEGER, id TEXT, action TEXT,"
        " category TEXT, outcome TEXT, actor_id TEXT, occurred_at INTEGER, received_at INTEGER,"
        " leaf_hash BLOB, leaf_data BLOB, PRIMARY KEY (tenant_id, seq))"
    )
    conn.execute("CREATE UNIQUE INDEX raw_id ON events (tenant_id, id)")
    conn.execute("CREATE INDEX raw_time ON events (tenant_id, occurred_at, seq)")
    conn.execute("CREATE INDEX raw_actor ON events (tenant_id, actor_id, occurred_at, seq)")
    rows = [
        (1, seq, ev.id, ev.action, ev.category, ev.outcome, ev.actor_id, ev.occurred_at,
         ev.received_at, ev.leaf_hash, ev.leaf_data)
        for seq, ev in enumerate(events, 1)
    ]  # fmt: skip
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, len(rows), BATCH):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows[start:][:BATCH])
        conn.execute("COMMIT")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    conn.close()
    return wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000, help="events appended per variant")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (the median is reported)")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the store")
    args = ap.parse_args()
    n = args.events
    print(f"preparing {n:,} events ...", file=sys.stderr)
    events = prepared_events(n)
    variants = ["raw baseline", "tiles (now)", "nodes (before)", *(f"without {i}" for i in INDEXES)]
    results: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    work = Path(tempfile.mkdtemp(prefix="auditkeep-append-"))
    try:
        for r in range(args.rounds):
            for v in variants:
                if v == "raw baseline":
                    results[v].append(run_raw(work, events))
                else:
                    wall, cpu, _ = run_store(work, events, v)
                    results[v].append((wall, cpu))
            print(f"round {r + 1} done", file=sys.stderr)
        profile = run_store(work, events, "tiles (now)", profile=True)[2] if args.profile else ""
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med: dict[str, tuple[float, float]] = {
        v: (
            statistics.median(w for w, _ in rs) / n * 1e6,
            statistics.median(c for _, c in rs) / n * 1e6,
        )
        for v, rs in results.items()
    }
    raw_wall = med["raw baseline"][0]
    now_cpu = med["tiles (now)"][1]
    rows: list[list[str]] = []
    for v in variants:
        wall, cpu = med[v]
        rows.append(
            [
                v,
                f"{wall:.1f}",
                f"{cpu:.1f}",
                f"{raw_wall / wall:.2f}",
                "" if v == "raw baseline" else f"{now_cpu - cpu:+.1f}",
            ]
        )
    print(
        table(
            rows,
            ["variant", "wall µs/event", "CPU µs/event", "x raw (wall)", "CPU vs now: saved"],
        )
    )
    print(
        f"\n{n:,} events in batches of {BATCH}, durability full, median of {args.rounds} rounds; "
        f"'saved' = CPU µs/event the variant saves against the store as it is "
        f"(an index's cost; for 'nodes (before)' negative = what tiles saved)"
    )
    if profile:
        print(profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
