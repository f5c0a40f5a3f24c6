"""Query benchmark: filtered GET /v1/events over 1M realistic events, against the bare store.

    .venv/bin/python bench/query.py [--events 1000000] [--requests 200] [--analyze-experiment]

1. Loads N realistic events (bench/_workload.py: 10k Zipf-ish actors, 50 actions in user./
   document./billing./role., 100k targets, 5% failures, mixed categories, occurred_at spread
   over 90 days in roughly arrival order) into a SQLiteStore directly: prepare_event +
   SQLiteStore.append in batches of 5,000 with durability NORMAL (loading only; the server
   later runs with its default, full). Two worker processes generate and prepare events while
   the main process appends. The database is cached in bench/out/query-db-<N>-<version>/ and
   reused by later runs (delete the directory to reload). The loader does not run ANALYZE or
   PRAGMA optimize, because the server never does (see README).
2. Starts the real server (`auditkeep serve`, default settings) over that data directory and
   creates a read key with the CLI.
3. For each query type, ~200 requests with parameters drawn from the same distributions as
   the data, alternating between (a) HTTP through an httpx keep-alive client, sequential, and
   (b) the baseline: SQLiteStore.events(tid).query(PageRequest) in this process, no HTTP.
   Alternating request by request keeps machine noise out of the ratio.

Prints p50/p95 per query type for both, the HTTP/baseline ratio and the query plans, checks
p95 < 25 ms over HTTP, and writes bench/out/query.json.

--analyze-experiment additionally copies the database, runs ANALYZE on the copy and measures
the baseline queries again there (what `PRAGMA optimize` at startup would buy).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    OUT,
    Server,
    code_fingerprint,
    create_tenant_and_key,
    machine,
    percentile,
    table,
)
from _workload import (
    ACTIONS,
    TARGET_COUNTS,
    Workload,
    uuid7,
)

from auditkeep.model import format_timestamp, prepare_event
from auditkeep.query import encode_cursor, parse_query
from auditkeep.store.base import Position, StoredEvent, TenantAppend
from auditkeep.store.sqlite import DB_FILE, SQLiteStore

WORKLOAD_VERSION = "v1"  # bump when _workload.py or the loader changes what is generated
DAY = 86_400_000_000  # microseconds
SPAN_DAYS = 90
LOAD_BATCH = 5000
TARGET_P95_MS = 25.0
SEED = 11


# -- loading -----------------------------------------------------------------------------------

_worker: dict[str, Any] = {}


def _init_worker(n_events: int, start: int) -> None:
    _worker["w"] = Workload(SEED)
    _worker["n"] = n_events
    _worker["start"] = start


def _prepare_chunk(chunk: int) -> list[Any]:
    """Events [chunk*LOAD_BATCH, ...): generated deterministically and prepared."""
    w: Workload = _worker["w"]
    n, start = _worker["n"], _worker["start"]
    w.rng = random.Random(SEED * 1_000_003 + chunk)
    rng = w.rng
    step = SPAN_DAYS * DAY / n
    first = chunk * LOAD_BATCH
    out = []
    last = 0
    for i in range(first, min(n, first + LOAD_BATCH)):
        # roughly in arrival order; a few events arrive up to 5 minutes late
        occurred = int(start + i * step) - (rng.randrange(300_000_000) if rng.random() < 0.1 else 0)
        raw = w.event(occurred)
        raw = {"id": uuid7(occurred // 1000, rng), **raw}
        received = int(start + i * step) + rng.randrange(2_000_000)
        last = max(last, received)
        out.append(raw)
    received = last
    return [prepare_event(raw, "acme", received) for raw in out]


def load(db_dir: Path, n_events: int) -> dict[str, Any]:
    """Load n_events into a fresh store in db_dir; return the metadata written to meta.json."""
    if db_dir.exists():
        shutil.rmtree(db_dir)
    data_dir = db_dir / "data"
    store = SQLiteStore(data_dir, durability="normal")
    store.migrate()
    tid = store.create_tenant("acme", "acme").tenant_id
    now_ref = (int(time.time()) // 3600) * 3600 * 1_000_000  # an hour boundary: the "now"
    start = now_ref - SPAN_DAYS * DAY
    chunks = (n_events + LOAD_BATCH - 1) // LOAD_BATCH
    t0 = time.monotonic()
    done = 0
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2, initializer=_init_worker, initargs=(n_events, start)) as pool:
        for prepared in pool.imap(_prepare_chunk, range(chunks), chunksize=1):
            store.append([TenantAppend(tid, prepared)])
            done += len(prepared)
            if done % 100_000 < LOAD_BATCH:
                rate = done / (time.monotonic() - t0)
                print(f"  loaded {done:,} events ({rate:,.0f}/s)", flush=True)
    store.close()
    with sqlite3.connect(data_dir / DB_FILE) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    seconds = time.monotonic() - t0
    meta = {
        "events": n_events,
        "workload_version": WORKLOAD_VERSION,
        "now_ref": now_ref,
        "start": start,
        "load_seconds": seconds,
        "load_durability": "normal",
        "db_bytes": (data_dir / DB_FILE).stat().st_size,
    }
    (db_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


# -- the queries -------------------------------------------------------------------------------


def ts(micros: int) -> str:
    return format_timestamp(micros)


def query_types(meta: dict[str, Any]) -> dict[str, Callable[[random.Random], dict[str, str]]]:
    """Query type -> a function drawing one request's query parameters."""
    w = Workload(SEED)
    now = meta["now_ref"]
    actions = [f"{ns}.{v}" for ns, verbs in ACTIONS.items() for v in verbs]
    categories = ["audit", "access", "security", "error", "performance", "system"]

    def actor(rng: random.Random) -> str:
        w.rng = rng
        return w.actor()[0]

    def target(rng: random.Random) -> str:
        w.rng = rng
        return w.target_id(rng.choice(["document", "document", "user", "invoice", "role"]))

    def jitter(rng: random.Random) -> int:
        return rng.randrange(6 * 3600) * 1_000_000  # up to 6 hours

    return {
        "newest page": lambda rng: {},
        "actor_id": lambda rng: {"actor_id": actor(rng)},
        "action (exact)": lambda rng: {"action": rng.choice(actions)},
        "action prefix (ns.*)": lambda rng: {"action": rng.choice(list(ACTIONS)) + ".*"},
        "target_id": lambda rng: {"target_id": target(rng)},
        "target_type": lambda rng: {"target_type": rng.choice(list(TARGET_COUNTS))},
        "outcome=failure": lambda rng: {"outcome": "failure"},
        "category": lambda rng: {"category": rng.choice(categories)},
        "window: last 24h": lambda rng: {"since": ts(now - DAY - jitter(rng)), "until": ts(now)},
        "window: 1 day, 60 days ago": lambda rng: (
            lambda s: {"since": ts(s), "until": ts(s + DAY)}
        )(now - 60 * DAY - jitter(rng)),
        "actor + 7-day window": lambda rng: (
            lambda s: {"actor_id": actor(rng), "since": ts(s), "until": ts(s + 7 * DAY)}
        )(now - rng.randrange(7, SPAN_DAYS) * DAY),
        # extras, beyond the list in the brief: filter combinations a UI offers
        "extra: actor + action (exact)": lambda rng: {
            "actor_id": actor(rng),
            "action": rng.choice(actions[:13]),
        },
        "extra: actor + action prefix": lambda rng: {
            "actor_id": actor(rng),
            "action": rng.choice(list(ACTIONS)) + ".*",
        },
        "deep page (21st, cursor)": lambda rng: {
            "until": ts(now - rng.randrange(SPAN_DAYS - 5) * DAY)
        },
    }


DEEP_PAGES = 20  # cursor follows before the measured page


class Baseline:
    """The same queries straight on the store, no HTTP."""

    def __init__(self, data_dir: Path | None = None, store: Any = None) -> None:
        """On the SQLite store in ``data_dir``, or on an open ``store`` (bench/postgres.py)."""
        self.store = store if store is not None else SQLiteStore(data_dir)  # type: ignore[arg-type]
        self.tid = self.store.get_tenant("acme").tenant_id
        self.reader = self.store.events(self.tid)
        self.sql: list[str] = []

    def trace(self, on: bool) -> None:
        """Record the SQL the store runs (only around one request: the callback costs time);
        SQLite only."""
        if isinstance(self.store, SQLiteStore):
            # one thread: the pool lends this same connection to the next read
            with self.store._reader() as conn:
                conn.set_trace_callback(self.sql.append if on else None)

    def page(self, params: dict[str, str]) -> tuple[float, list[StoredEvent], str | None]:
        t0 = time.perf_counter()
        page = parse_query(params)
        rows = self.reader.query(page)
        elapsed = time.perf_counter() - t0
        cursor = None
        if len(rows) == page.limit:
            cursor = encode_cursor(Position(rows[-1].occurred_at, rows[-1].seq), page.descending)
        return elapsed, rows, cursor

    def close(self) -> None:
        self.store.close()


def http_page(client: httpx.Client, params: dict[str, str]) -> tuple[float, int, str | None]:
    t0 = time.perf_counter()
    r = client.get("/v1/events", params=params)
    body = r.json()
    elapsed = time.perf_counter() - t0
    if r.status_code != 200:
        raise RuntimeError(f"GET /v1/events {params} -> {r.status_code}: {body}")
    return elapsed, len(body["data"]), body["next_cursor"]


def walk(
    fetch: Callable[[dict[str, str]], tuple[float, Any, str | None]], params: dict[str, str]
) -> tuple[float, Any]:
    """Follow DEEP_PAGES cursors, then time the next page."""
    p = dict(params)
    for _ in range(DEEP_PAGES):
        _, _, cursor = fetch(p)
        assert cursor, "ran out of pages"
        p["cursor"] = cursor
    elapsed, rows, _ = fetch(p)
    return elapsed, rows


def measure(
    name: str,
    draw: Callable[[random.Random], dict[str, str]],
    base: Baseline,
    client: httpx.Client | None,
    n: int,
    alt: Baseline | None = None,
) -> dict[str, Any]:
    """n requests (after 5 warm-up ones) with parameters from ``draw``; each one runs on the
    baseline and then over HTTP (or on ``alt``, a second baseline), so noise hits both alike."""
    rng = random.Random(f"{SEED}-{name}")
    deep = name.startswith("deep page")
    lat: dict[str, list[float]] = {"baseline": [], "http": [], "alt": []}
    rows: dict[str, list[int]] = {"baseline": [], "http": [], "alt": []}
    base.sql.clear()
    sql = ""
    warm = 5

    def run(
        kind: str,
        fetch: Callable[[dict[str, str]], tuple[float, Any, str | None]],
        params: dict[str, str],
        keep: bool,
    ) -> None:
        if deep:
            elapsed, got = walk(fetch, params)
        else:
            elapsed, got, _ = fetch(params)
        if keep:
            lat[kind].append(elapsed)
            rows[kind].append(got if isinstance(got, int) else len(got))

    for i in range(n + warm):
        params = draw(rng)
        keep = i >= warm
        if i == warm - 1:
            base.trace(True)
        run("baseline", base.page, params, keep)
        if i == warm - 1:
            base.trace(False)
            sql = base.sql[-1] if base.sql else ""
        if client is not None:
            run("http", lambda p: http_page(client, p), params, keep)
        if alt is not None:
            run("alt", alt.page, params, keep)
    for kind in ("http", "alt"):
        if lat[kind] and rows[kind] != rows["baseline"]:
            raise RuntimeError(f"{name}: {kind} and baseline returned different row counts")

    def stats(v: list[float]) -> dict[str, float]:
        return {"p50": percentile(v, 50) * 1e3, "p95": percentile(v, 95) * 1e3, "max": max(v) * 1e3}

    out: dict[str, Any] = {
        "query": name,
        "requests": n,
        "rows_mean": sum(rows["baseline"]) / len(rows["baseline"]),
        "baseline_ms": stats(lat["baseline"]),
        "example_sql": sql,
    }
    if lat["http"]:
        out["http_ms"] = stats(lat["http"])
    if lat["alt"]:
        out["alt_ms"] = stats(lat["alt"])
    return out


def query_plan(db: Path, sql: str) -> list[str]:
    if not sql:
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql)]
    except sqlite3.Error as exc:
        return [f"(no plan: {exc})"]


def _fmt(v: float) -> str:
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def iter_types(
    types: dict[str, Callable[[random.Random], dict[str, str]]], only: str | None
) -> Iterator[tuple[str, Callable[[random.Random], dict[str, str]]]]:
    for name, draw in types.items():
        if only is None or any(o.strip() in name for o in only.split(",")):
            yield name, draw


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=200, help="measured requests per query type")
    ap.add_argument("--only", help="comma-separated substrings of query type names")
    ap.add_argument(
        "--analyze-experiment",
        action="store_true",
        help="also measure the baseline on an ANALYZEd copy of the database",
    )
    args = ap.parse_args()
    code_at_start = code_fingerprint()
    OUT.mkdir(exist_ok=True)
    db_dir = OUT / f"query-db-{args.events}-{WORKLOAD_VERSION}"
    meta_path = db_dir / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        print(f"using cached database {db_dir} ({meta['events']:,} events)", flush=True)
    else:
        print(f"loading {args.events:,} events into {db_dir} (durability normal) ...", flush=True)
        meta = load(db_dir, args.events)
        print(f"  loaded in {meta['load_seconds']:.0f} s", flush=True)
    data_dir = db_dir / "data"
    db = data_dir / DB_FILE
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        has_stats = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"
        ).fetchone()[0]
    print(f"database {db.stat().st_size / 2**20:,.0f} MiB; sqlite_stat1 present: {bool(has_stats)}")

    key = create_tenant_and_key(data_dir)
    work = Path(tempfile.mkdtemp(prefix="auditkeep-query-"))
    server = Server(data_dir, work / "server.log")
    server.start()
    types = query_types(meta)
    results = []
    try:
        client = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60.0
        )
        base = Baseline(data_dir)
        # the HTTP floor: the cheapest authenticated-free request this server answers
        floor = []
        for _ in range(200):
            t0 = time.perf_counter()
            client.get("/healthz")
            floor.append(time.perf_counter() - t0)
        for name, draw in iter_types(types, args.only):
            print(f"{name} ...", flush=True)
            r = measure(name, draw, base, client, args.requests)
            r["plan"] = query_plan(db, r["example_sql"])
            results.append(r)
            print(
                f"  rows {r['rows_mean']:.0f}  baseline p50 {_fmt(r['baseline_ms']['p50'])} "
                f"p95 {_fmt(r['baseline_ms']['p95'])} ms  HTTP p50 {_fmt(r['http_ms']['p50'])} "
                f"p95 {_fmt(r['http_ms']['p95'])} ms",
                flush=True,
            )
        client.close()
        base.close()
    finally:
        server.stop()

    analyzed = []
    if args.analyze_experiment:
        copy_dir = work / "analyzed"
        copy_dir.mkdir()
        shutil.copy2(db, copy_dir / DB_FILE)
        t0 = time.monotonic()
        with sqlite3.connect(copy_dir / DB_FILE) as conn:
            conn.execute("ANALYZE")
        analyze_s = time.monotonic() - t0
        print(
            f"ANALYZE on a copy took {analyze_s:.1f} s; baseline on the original and on the "
            "ANALYZEd copy, alternating:"
        )
        base = Baseline(data_dir)
        alt = Baseline(copy_dir)
        for name, draw in iter_types(types, args.only):
            r = measure(name, draw, base, None, args.requests, alt=alt)
            r["plan"] = query_plan(copy_dir / DB_FILE, r["example_sql"])
            analyzed.append(r)
            print(
                f"  {name}: as is p50 {_fmt(r['baseline_ms']['p50'])} p95 "
                f"{_fmt(r['baseline_ms']['p95'])} ms; ANALYZEd p50 {_fmt(r['alt_ms']['p50'])} "
                f"p95 {_fmt(r['alt_ms']['p95'])} ms",
                flush=True,
            )
        base.close()
        alt.close()

    rows = []
    for r in results:
        b, h = r["baseline_ms"], r["http_ms"]
        rows.append(
            [
                r["query"],
                f"{r['rows_mean']:.0f}",
                _fmt(b["p50"]),
                _fmt(b["p95"]),
                _fmt(h["p50"]),
                _fmt(h["p95"]),
                f"{h['p50'] / b['p50']:.1f}",
                f"{h['p95'] / b['p95']:.1f}",
                "PASS" if h["p95"] < TARGET_P95_MS else "FAIL",
            ]
        )
    print()
    print(
        table(
            rows,
            [
                "query (limit 50)",
                "rows",
                "base p50",
                "base p95",
                "HTTP p50",
                "HTTP p95",
                "x p50",
                "x p95",
                f"p95<{TARGET_P95_MS:g}ms",
            ],
        )
    )
    print(
        f"(ms; {args.requests} requests per type; HTTP floor GET /healthz p50 "
        f"{percentile(floor, 50) * 1e3:.2f} ms, p95 {percentile(floor, 95) * 1e3:.2f} ms)"
    )
    if analyzed:
        print("\nANALYZE experiment (baseline only, same requests alternating on both copies):")
        print(
            table(
                [
                    [
                        a["query"],
                        _fmt(a["baseline_ms"]["p95"]),
                        _fmt(a["alt_ms"]["p95"]),
                        f"{a['baseline_ms']['p95'] / a['alt_ms']['p95']:.1f}",
                        " / ".join(a["plan"])[:100],
                    ]
                    for a in analyzed
                ],
                ["query", "p95 as is", "p95 ANALYZEd", "speed-up", "plan after ANALYZE"],
            )
        )
    print("\nquery plans (server as is):")
    for r in results:
        print(f"  {r['query']}: " + " / ".join(r["plan"]))
    failed = [r["query"] for r in results if r["http_ms"]["p95"] >= TARGET_P95_MS]
    brief = [q for q in failed if not q.startswith("extra")]
    extra = [q for q in failed if q.startswith("extra")]
    print(
        f"\n[{'PASS' if not brief else 'FAIL'}] HTTP p95 < {TARGET_P95_MS:g} ms for every query "
        "type of the brief" + (f"; over: {', '.join(brief)}" if brief else "")
    )
    print(
        f"[{'PASS' if not extra else 'FAIL'}] the same for the extra combinations"
        + (f"; over: {', '.join(extra)}" if extra else "")
    )
    result = {
        "machine": machine(),
        "code": code_at_start,
        "code_changed_during_run": code_fingerprint() != code_at_start,
        "database": {**meta, "sqlite_stat1": bool(has_stats)},
        "requests_per_type": args.requests,
        "http_floor_ms": {
            "p50": percentile(floor, 50) * 1e3,
            "p95": percentile(floor, 95) * 1e3,
        },
        "queries": results,
        "analyze_experiment": analyzed,
        "target_p95_ms": TARGET_P95_MS,
        "failed": failed,
    }
    (OUT / "query.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {OUT / 'query.json'}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if not brief else 1


if __name__ == "__main__":
    sys.exit(main())
