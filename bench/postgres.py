"""PostgreSQL benchmark: ingest through one and two API nodes beside a COPY baseline, and query
latency over many events.

    .venv/bin/python bench/postgres.py [--ingest-events 100000] [--query-events 10000000]
                                       [--requests 200] [--keep DIR]

In one run, on a real PostgreSQL 15 cluster started here (tests/pg.py, fsync on, default
synchronous_commit):

1. Ingest. --ingest-events realistic events (bench/_workload.py) are prepared once. Baseline:
   the prepared rows COPYed straight into events, event_targets and event_ids of a fresh
   database (no HTTP, no validation, no Merkle tree: the database's own write floor). Then the
   same events (fresh ids) through `auditkeep serve --database-url` over HTTP, batches of 500
   from 4 client threads: one API node, then two nodes on one database (the clients alternate
   between them). Events/s and the ratio to the COPY baseline; afterwards the seqs must be
   gap-free and the log verified.
2. Queries. --query-events events are loaded (PostgresStore.append in batches of 5,000, the
   writer's own path, from 2 preparing processes) into a database that is kept between runs
   with --keep; then the query types of bench/query.py, each request over HTTP against one node
   and straight on the store (the baseline), alternating. p50/p95.

Targets: two nodes >= 0.5 x the COPY baseline; query p95 < 25 ms.
Results: tables on stdout and bench/out/postgres.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import query as qb  # noqa: E402  (bench/query.py: workload, query types, measure())
from _common import OUT, Server, code_fingerprint, machine, table  # noqa: E402

from auditkeep.model import PreparedEvent  # noqa: E402
from auditkeep.store.base import TenantAppend  # noqa: E402
from auditkeep.store.postgres import PostgresStore  # noqa: E402
from tests.pg import PgCluster, free_port, make_pg_dir, remove_pg_dir  # noqa: E402

TARGET_RATIO = 0.5


def prepared_events(n: int) -> list[PreparedEvent]:
    """n realistic events, prepared (validated, canonical, hashed) by 2 processes."""
    now_ref = (int(time.time()) // 3600) * 3600 * 1_000_000
    start = now_ref - qb.SPAN_DAYS * qb.DAY
    chunks = (n + qb.LOAD_BATCH - 1) // qb.LOAD_BATCH
    out: list[PreparedEvent] = []
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2, initializer=qb._init_worker, initargs=(n, start)) as pool:
        for part in pool.imap(qb._prepare_chunk, range(chunks), chunksize=1):
            out += part
    return out


def copy_baseline(cluster: PgCluster, events: list[PreparedEvent]) -> float:
    url = cluster.create_database("bench_copy")
    store = PostgresStore(url)
    store.migrate()
    tid = store.create_tenant("acme", "acme").tenant_id
    store.close()
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        for i in range(0, len(events), 5000):
            part = events[i : i + 5000]
            with cur.copy(
                "COPY events (tenant_id, seq, id, action, category, outcome, actor_id,"
                " occurred_at, received_at, leaf_hash, leaf_data) FROM STDIN"
            ) as copy:
                for seq, ev in enumerate(part, i + 1):
                    copy.write_row(
                        (
                            tid,
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
                        )
                    )
            with cur.copy(
                "COPY event_targets (tenant_id, seq, target_type, target_id, occurred_at,"
                " received_at) FROM STDIN"
            ) as copy:
                for seq, ev in enumerate(part, i + 1):
                    for ttype, target in set(ev.targets):
                        copy.write_row((tid, seq, ttype, target, ev.occurred_at, ev.received_at))
            with cur.copy("COPY event_ids (tenant_id, id, seq, content_hash) FROM STDIN") as copy:
                for seq, ev in enumerate(part, i + 1):
                    copy.write_row((tid, ev.id, seq, b"\0" * 32))
            conn.commit()
    return len(events) / (time.perf_counter() - started)


def _cli(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [str(Path(sys.executable).parent / "auditkeep"), *args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=300,
    ).stdout


def http_ingest(
    cluster: PgCluster, name: str, events: list[PreparedEvent], nodes: int, work: Path
) -> tuple[float, dict[str, Any]]:
    url = cluster.create_database(name)
    env = {**os.environ, "AUDITKEEP_DATABASE_URL": url}
    first = work / f"{name}-node0"
    _cli(env, "migrate", "--data-dir", str(first))
    _cli(env, "tenants", "create", "acme", "--data-dir", str(first))
    key = json.loads(
        _cli(
            env,
            "keys",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "events:write,events:read",
            "--json",
            "--data-dir",
            str(first),
        )
    )["key"]
    servers = []
    for n in range(nodes):
        data = work / f"{name}-node{n}"
        if n:
            shutil.copytree(first / "keys", data / "keys")
        s = Server(data, work / f"{name}-node{n}.log", database_url=url)
        s.start()
        servers.append(s)
    bodies = []
    for i in range(0, len(events), 500):
        batch = []
        for ev in events[i : i + 500]:
            raw = json.loads(ev.leaf_data)
            for k in ("tenant", "received_at"):
                raw.pop(k, None)
            raw["id"] = f"{name}-{ev.id}"
            batch.append(raw)
        bodies.append(json.dumps({"events": batch}).encode())
    errors: list[str] = []

    def worker(k: int) -> None:
        clients = [
            httpx.Client(
                base_url=s.url,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                timeout=120,
            )
            for s in servers
        ]
        try:
            for j, body in enumerate(bodies[k::4]):
                r = clients[(k + j) % len(clients)].post("/v1/events", content=body)
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")
        finally:
            for c in clients:
                c.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = len(events) / (time.perf_counter() - started)
    for s in servers:
        s.stop()
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0]}")
    verify = subprocess.run(
        [
            str(Path(sys.executable).parent / "auditkeep"),
            "verify",
            "--json",
            "--data-dir",
            str(first),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    store = PostgresStore(url)
    tid = store.get_tenant("acme").tenant_id  # type: ignore[union-attr]
    count, last = store.events(tid).stats()
    store.close()
    check = {
        "stored": count,
        "last_seq": last,
        "gap_free": count == last == len(events),
        "verify_exit": verify.returncode,
    }
    return rate, check


def load_query_db(url: str, n: int) -> dict[str, Any]:
    store = PostgresStore(url)
    store.migrate()
    tid = store.create_tenant("acme", "acme").tenant_id
    now_ref = (int(time.time()) // 3600) * 3600 * 1_000_000
    start = now_ref - qb.SPAN_DAYS * qb.DAY
    chunks = (n + qb.LOAD_BATCH - 1) // qb.LOAD_BATCH
    t0 = time.monotonic()
    done = 0
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2, initializer=qb._init_worker, initargs=(n, start)) as pool:
        for part in pool.imap(qb._prepare_chunk, range(chunks), chunksize=1):
            store.append([TenantAppend(tid, part)])
            done += len(part)
            if done % 500_000 < qb.LOAD_BATCH:
                print(f"  loaded {done:,} ({done / (time.monotonic() - t0):,.0f}/s)", flush=True)
    store.close()
    return {"events": n, "now_ref": now_ref, "start": start, "load_seconds": time.monotonic() - t0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ingest-events", type=int, default=100_000)
    ap.add_argument("--query-events", type=int, default=10_000_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--keep", type=Path, help="keep the cluster here (reused by later runs)")
    ap.add_argument("--only", help="query types (substrings, comma-separated)")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    results: dict[str, Any] = {
        "machine": machine(),
        "code": code_fingerprint(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    reuse = args.keep is not None and (args.keep / "data" / "PG_VERSION").exists()
    base = args.keep if args.keep else make_pg_dir("auditkeep-benchpg-")
    if args.keep and not reuse:
        args.keep.mkdir(parents=True, exist_ok=True)
        shutil.chown(args.keep, "postgres")
    cluster = PgCluster(base, free_port(), "bench")
    work = Path(make_pg_dir("auditkeep-benchwork-"))
    if reuse:
        cluster.start()
    else:
        cluster.create()
    try:
        for db in ("bench_copy", "bench_one", "bench_two"):
            cluster.drop_database(db)
        print(f"preparing {args.ingest_events:,} events ...", flush=True)
        events = prepared_events(args.ingest_events)
        print("baseline: COPY into events, event_targets, event_ids ...", flush=True)
        copy_rate = copy_baseline(cluster, events)
        print(f"  {copy_rate:,.0f} events/s", flush=True)
        rates: dict[int, tuple[float, dict[str, Any]]] = {}
        for nodes, name in ((1, "bench_one"), (2, "bench_two")):
            print(f"HTTP ingest through {nodes} API node(s) ...", flush=True)
            rates[nodes] = http_ingest(cluster, name, events, nodes, work)
            print(f"  {rates[nodes][0]:,.0f} events/s; {rates[nodes][1]}", flush=True)
        results["ingest"] = {
            "copy": copy_rate,
            **{f"nodes_{n}": {"rate": r, **c} for n, (r, c) in rates.items()},
        }

        qname = f"bench_query_{args.query_events}"
        exists = cluster.scalar("SELECT count(*) FROM pg_database WHERE datname = %s", [qname])
        qurl = cluster.url(qname)
        meta_path = base / f"{qname}.json"
        if not exists or not meta_path.exists():
            cluster.drop_database(qname)
            cluster.create_database(qname)
            print(f"loading {args.query_events:,} events for the queries ...", flush=True)
            meta = load_query_db(qurl, args.query_events)
            meta_path.write_text(json.dumps(meta))
            cluster.execute("VACUUM ANALYZE", db=qname)
        meta = json.loads(meta_path.read_text())
        print(f"query database: {meta['events']:,} events", flush=True)
        env = {**os.environ, "AUDITKEEP_DATABASE_URL": qurl}
        qdata = work / "query-node"
        _cli(env, "migrate", "--data-dir", str(qdata))
        key = json.loads(
            _cli(
                env,
                "keys",
                "create",
                "--tenant",
                "acme",
                "--scopes",
                "events:read",
                "--json",
                "--data-dir",
                str(qdata),
            )
        )["key"]
        server = Server(qdata, work / "query-node.log", database_url=qurl)
        server.start()
        rows = []
        qresults = []
        try:
            client = httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
            )
            baseline = qb.Baseline(store=PostgresStore(qurl))
            for name, draw in qb.iter_types(qb.query_types(meta), args.only):
                r = qb.measure(name, draw, baseline, client, args.requests)
                qresults.append(r)
                b, h = r["baseline_ms"], r["http_ms"]
                print(
                    f"  {name}: base p95 {b['p95']:.2f} HTTP p50 {h['p50']:.2f} "
                    f"p95 {h['p95']:.2f} ms",
                    flush=True,
                )
                rows.append(
                    [
                        name,
                        f"{r['rows_mean']:.0f}",
                        f"{b['p50']:.2f}",
                        f"{b['p95']:.2f}",
                        f"{h['p50']:.2f}",
                        f"{h['p95']:.2f}",
                        "PASS" if h["p95"] < qb.TARGET_P95_MS else "FAIL",
                    ]
                )
            client.close()
            baseline.close()
        finally:
            server.stop()
        results["queries"] = qresults
    finally:
        cluster.stop()
        remove_pg_dir(work)
        if not args.keep:
            remove_pg_dir(base)

    print()
    print(
        table(
            [
                ["COPY baseline (no HTTP)", f"{copy_rate:,.0f}", "1.00"],
                *[
                    [f"HTTP, {n} API node(s)", f"{r:,.0f}", f"{r / copy_rate:.2f}"]
                    for n, (r, _) in rates.items()
                ],
            ],
            ["PostgreSQL ingest", "events/s", "x COPY"],
        )
    )
    print()
    print(
        table(
            rows,
            [
                f"query ({meta['events']:,} events)",
                "rows",
                "base p50",
                "base p95",
                "HTTP p50",
                "HTTP p95",
                "p95<25ms",
            ],
        )
    )
    two = rates[2][0] / copy_rate
    checks = [
        (two >= TARGET_RATIO, f"two nodes >= {TARGET_RATIO} x COPY: {two:.2f}"),
        (
            all(row[-1] == "PASS" for row in rows if not row[0].startswith("extra:")),
            "query p95 < 25 ms for every query type of the brief",
        ),
        (
            all(row[-1] == "PASS" for row in rows if row[0].startswith("extra:")),
            "the same for the extra combinations",
        ),
        (
            all(c["gap_free"] and c["verify_exit"] == 0 for _, c in rates.values()),
            "gap-free seqs and verify pass after each ingest",
        ),
    ]
    print()
    for ok, text in checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {text}")
    (OUT / "postgres.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwrote {OUT / 'postgres.json'}")


if __name__ == "__main__":
    main()
