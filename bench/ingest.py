"""Ingest benchmark: the real server under wrk, against an in-process baseline.

    .venv/bin/python bench/ingest.py [--quick] [--duration S] [--profile] [--keep]

Starts `auditkeep serve` (default settings: durability full) on a fresh temporary data
directory, creates tenant "acme" and a key with the CLI, then in one run measures:

- batch ingest: POST /v1/events {"events": [500 events]} at concurrency 1, 4 and 16
  (wrk, 1 thread, every event a unique id);
- single-event POSTs at concurrency 64 (wrk, 1 thread, every request a unique id);
- baseline: the same request bodies decoded with orjson, validated and hashed with
  auditkeep.model.prepare_event and written with SQLiteStore.append in batches of 500
  (durability full) in this process, no HTTP. Measured before the server starts and again
  after it stops; the ratio uses the mean of the two.

Afterwards the server is stopped and its data checked: `auditkeep verify` must pass, and every
acknowledged request's events must be stored exactly once; stored-but-unacknowledged requests
(in flight when wrk stopped) are counted and must not exceed the connection count.

Results: a table on stdout and bench/out/ingest.json. Needs `wrk` on PATH
(`apt-get install -y wrk`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH,
    OUT,
    VENV_BIN,
    Server,
    busy_cpu_seconds,
    code_fingerprint,
    create_tenant_and_key,
    machine,
    percentile,
    table,
)
from _workload import Workload

from auditkeep.model import now_micros, prepare_event
from auditkeep.store.base import TenantAppend
from auditkeep.store.sqlite import SQLiteStore

BATCH = 500
POOL_SIZE = 4096
TARGET_BATCH_EPS = 25_000
TARGET_BATCH_RATIO = 0.6
TARGET_SINGLE_RPS = 4_000


# -- the events --------------------------------------------------------------------------------


def make_pool(path: Path, seed: int = 7) -> list[bytes]:
    """POOL_SIZE realistic events (occurred in the last 10 minutes), one per line, written as
    their JSON minus the leading '{' so that an id can be put in front."""
    w = Workload(seed)
    rng = random.Random(seed)
    now = now_micros()
    lines = []
    for _ in range(POOL_SIZE):
        ev = w.event(now - rng.randrange(600_000_000))
        lines.append(orjson.dumps(ev)[1:])
    path.write_bytes(b"\n".join(lines) + b"\n")
    return lines


def batch_body(pool: list[bytes], prefix: str, counter: int, batch: int) -> bytes:
    """Exactly the body wrk_ingest.lua sends for request ``counter`` of a thread."""
    tag = f"{prefix}-r{counter:07d}".encode()
    if batch == 0:
        return b'{"id":"' + tag + b':000",' + pool[counter % len(pool)]
    base = counter * batch
    parts = [
        b'{"id":"' + tag + b":%03d" % i + b'",' + pool[(base + i) % len(pool)] for i in range(batch)
    ]
    return b'{"events":[' + b",".join(parts) + b"]}"


# -- baseline ----------------------------------------------------------------------------------


def baseline(pool: list[bytes], work: Path, name: str, seconds: float) -> dict[str, Any]:
    """decode + prepare_event + SQLiteStore.append (500 per transaction, durability full)."""
    store = SQLiteStore(work / f"baseline-{name}", durability="full")
    store.migrate()
    tid = store.create_tenant("acme", "acme").tenant_id
    busy = 0.0
    events = 0
    lat = []
    phase = {"decode": 0.0, "prepare": 0.0, "append": 0.0}
    counter = 0
    cpu_phase = {"decode": 0.0, "prepare": 0.0, "append": 0.0}
    while busy < seconds:
        counter += 1
        body = batch_body(pool, f"base{name}-t1", counter, BATCH)
        c0, t0 = time.thread_time(), time.perf_counter()
        raw = orjson.loads(body)["events"]
        c1, t1 = time.thread_time(), time.perf_counter()
        received = now_micros()
        prepared = [prepare_event(ev, "acme", received) for ev in raw]
        c2, t2 = time.thread_time(), time.perf_counter()
        results = store.append([TenantAppend(tid, prepared)])
        c3, t3 = time.thread_time(), time.perf_counter()
        assert all(r.status == "accepted" for r in results[0])
        phase["decode"] += t1 - t0
        phase["prepare"] += t2 - t1
        phase["append"] += t3 - t2
        cpu_phase["decode"] += c1 - c0
        cpu_phase["prepare"] += c2 - c1
        cpu_phase["append"] += c3 - c2
        busy += t3 - t0
        lat.append(t3 - t0)
        events += len(prepared)
    store.close()
    return {
        "events": events,
        "seconds": busy,
        "events_per_s": events / busy,
        "cpu_us_per_event": sum(cpu_phase.values()) / events * 1e6,
        "batch_p50_ms": percentile(lat, 50) * 1e3,
        "batch_p99_ms": percentile(lat, 99) * 1e3,
        "us_per_event": {k: v / events * 1e6 for k, v in phase.items()},
        "cpu_us_per_event_by_phase": {k: v / events * 1e6 for k, v in cpu_phase.items()},
    }


# -- wrk ---------------------------------------------------------------------------------------


def run_wrk(
    server: Server,
    key: str,
    work: Path,
    name: str,
    prefix: str,
    batch: int,
    connections: int,
    seconds: float,
    profile: bool = False,
) -> dict[str, Any]:
    log = work / f"wrk-{name}"
    out = work / f"wrk-{name}.json"
    env = {
        **os.environ,
        "BENCH_POOL": str(work / "pool.jsonl"),
        "BENCH_PREFIX": prefix,
        "BENCH_BATCH": str(batch),
        "BENCH_KEY": key,
        "BENCH_LOG": str(log),
        "BENCH_OUT": str(out),
    }
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "60s",
        "-s",
        str(BENCH / "wrk_ingest.lua"),
        server.url + "/v1/events",
    ]
    before = server.metrics()
    names = server.thread_names()
    threads0 = server.thread_cpu()
    cpu0 = server.cpu_seconds()
    machine0 = busy_cpu_seconds()
    spy = None
    if profile:
        OUT.mkdir(exist_ok=True)
        spy = subprocess.Popen(
            [
                str(VENV_BIN / "py-spy"),
                "record",
                "-p",
                str(server.pid),
                "-r",
                "200",
                "-d",
                str(max(1, int(seconds) - 1)),
                "-f",
                "raw",
                "--threads",
                "-o",
                str(OUT / f"profile-{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    stdout = proc.stdout.read().decode() if proc.stdout else ""
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {stdout}\n{stderr}")
    cpu1 = server.cpu_seconds()
    threads1 = server.thread_cpu()
    machine1 = busy_cpu_seconds()
    if spy is not None:
        spy.wait()
    # let the writer finish what was in flight before the next scenario
    while server.writer_queue() > 0:
        time.sleep(0.1)
    after = server.metrics()
    summary = json.loads(out.read_text())
    statuses: Counter[int] = Counter()
    acked: dict[str, int] = {}
    for path in sorted(work.glob(f"wrk-{name}-t*")):
        for line in path.read_text().splitlines():
            st, tag, accepted = line.split()
            statuses[int(st)] += 1
            if 200 <= int(st) < 300:
                acked[tag] = int(accepted)
    dur = summary["duration_us"] / 1e6
    accepted_events = sum(acked.values())

    def delta(metric: str) -> float:
        return after.get(metric, 0.0) - before.get(metric, 0.0)

    commits = delta("auditkeep_writer_batch_events_count")
    # CPU per thread role (user + system seconds), from /proc/<pid>/task
    per_thread: dict[str, dict[str, float]] = {}
    for tid, (u1, s1) in threads1.items():
        u0, s0 = threads0.get(tid, (0.0, 0.0))
        name = names.get(tid, "other")
        role = {"MainThread": "main", "auditkeep-writer": "writer"}.get(name, "other")
        acc = per_thread.setdefault(role, {"user_s": 0.0, "sys_s": 0.0})
        acc["user_s"] += u1 - u0
        acc["sys_s"] += s1 - s0
    return {
        "scenario": name,
        "prefix": prefix,
        "batch": batch,
        "connections": connections,
        "duration_s": dur,
        "responses": summary["requests"],
        "sent": summary["sent"],
        "status_counts": {str(k): v for k, v in sorted(statuses.items())},
        "errors": summary["errors"],
        "ok_responses": sum(v for k, v in statuses.items() if 200 <= k < 300),
        "accepted_events": accepted_events,
        "events_per_s": accepted_events / dur,
        "requests_per_s": summary["requests"] / dur,
        "latency_ms": {k: v / 1e3 for k, v in summary["latency_us"].items()},
        "server_cpu_cores": (cpu1 - cpu0) / wall,
        "server_cpu_us_per_event": (cpu1 - cpu0) / max(1, accepted_events) * 1e6,
        "server_cpu_us_per_request": (cpu1 - cpu0) / max(1, summary["requests"]) * 1e6,
        "threads_cpu_s": per_thread,
        "wrk_cpu_cores": (usage.ru_utime + usage.ru_stime) / wall,
        # CPU used by everything else on the machine meanwhile (other jobs = noise)
        "others_cpu_cores": (
            (machine1 - machine0) - (cpu1 - cpu0) - (usage.ru_utime + usage.ru_stime)
        )
        / wall,
        "group_commits": commits,
        "events_per_commit": delta("auditkeep_writer_batch_events_sum") / commits if commits else 0,
        "commit_ms_mean": delta("auditkeep_writer_commit_seconds_sum") / commits * 1e3
        if commits
        else 0,
        "acked_tags": acked,
    }


def run_floor(server: Server, connections: int, seconds: float) -> dict[str, Any]:
    """GET /healthz with plain wrk: what this HTTP stack answers per second doing nothing."""
    cpu0 = server.cpu_seconds()
    t0 = time.monotonic()
    proc = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", server.url + "/healthz"],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.monotonic() - t0
    cpu = server.cpu_seconds() - cpu0
    out = proc.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m is None:
            return float("nan")
        return float(m[1]) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m[2]]

    return {
        "requests_per_s": rps,
        "latency_ms": {"p50": ms("50"), "p99": ms("99")},
        "server_cpu_cores": cpu / wall,
        "server_cpu_us_per_request": cpu / max(1.0, rps * wall) * 1e6,
    }


# -- verification ------------------------------------------------------------------------------


def verify(data_dir: Path, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """`auditkeep verify`, then: every acknowledged request fully stored, nothing duplicated,
    and stored-but-unacknowledged requests no more than the in-flight connections."""
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(VENV_BIN / "auditkeep"), "verify", "--json", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    verify_s = time.monotonic() - t0
    report = json.loads(proc.stdout) if proc.stdout.strip().startswith("[") else []
    acme = next((r for r in report if r["tenant"] == "acme"), None)
    with sqlite3.connect(f"file:{data_dir / 'auditkeep.db'}?mode=ro", uri=True) as conn:
        tid = conn.execute("SELECT tenant_id FROM tenants WHERE slug='acme'").fetchone()[0]
        head = conn.execute("SELECT size FROM log_heads WHERE tenant_id=?", (tid,)).fetchone()[0]
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT id) FROM events WHERE tenant_id=?", (tid,)
        ).fetchone()
        stored: dict[str, int] = defaultdict(int)
        for (event_id,) in conn.execute("SELECT id FROM events WHERE tenant_id=?", (tid,)):
            stored[event_id.rpartition(":")[0]] += 1
    problems: list[str] = []
    if proc.returncode != 0 or acme is None or not acme["ok"]:
        problems.append(f"auditkeep verify failed (exit {proc.returncode}): {proc.stdout[:500]}")
    if distinct != total:
        problems.append(f"{total - distinct} duplicated event ids")
    if acme is not None and acme["checked"] != total:
        problems.append(f"verify checked {acme['checked']} events, the table holds {total}")
    if head != total:
        problems.append(f"log head {head} != {total} stored events")
    per_run = []
    accounted = 0
    for run in runs:
        size = run["batch"] or 1
        prefix = run["prefix"] + "-"
        tags = {t: n for t, n in stored.items() if t.startswith(prefix)}
        acked = run["acked_tags"]
        lost = [t for t in acked if tags.get(t, 0) != size]
        not_accepted = [t for t, n in acked.items() if n != size]
        extra = {t: n for t, n in tags.items() if t not in acked}
        partial = [t for t, n in extra.items() if n != size]
        if lost:
            problems.append(
                f"{run['scenario']}: {len(lost)} acknowledged requests not fully stored"
            )
        if not_accepted:
            problems.append(f"{run['scenario']}: {len(not_accepted)} requests not fully accepted")
        if partial:
            problems.append(f"{run['scenario']}: {len(partial)} requests partially stored")
        if len(extra) > run["connections"]:
            problems.append(
                f"{run['scenario']}: {len(extra)} unacknowledged requests stored "
                f"(more than the {run['connections']} connections in flight)"
            )
        if run["sent"] < len(tags):
            problems.append(f"{run['scenario']}: more requests stored than sent")
        n_events = sum(tags.values())
        accounted += n_events
        per_run.append(
            {
                "scenario": run["scenario"],
                "acked_requests": len(acked),
                "acked_events": sum(acked.values()),
                "stored_events": n_events,
                "stored_unacked_requests": len(extra),
            }
        )
    if accounted != total:
        problems.append(f"{total - accounted} stored events belong to no scenario")
    return {
        "ok": not problems,
        "problems": problems,
        "stored_events": total,
        "verify_checked": acme["checked"] if acme else None,
        "verify_seconds": verify_s,
        "per_scenario": per_run,
    }


def _per_event(run: dict[str, Any], role: str) -> str:
    t = run["threads_cpu_s"].get(role)
    if not t or not run["accepted_events"]:
        return "-"
    user = t["user_s"] / run["accepted_events"] * 1e6
    system = t["sys_s"] / run["accepted_events"] * 1e6
    return f"{user + system:.0f} ({system:.0f} sys)"


# -- main --------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5 s per scenario instead of 20 s")
    ap.add_argument("--duration", type=float, help="seconds per wrk scenario")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="also run py-spy on the server during batch c16 and single c64 "
        "(writes bench/out/profile-*.txt; figures of a profiled run are perturbed)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    ap.add_argument(
        "--switch-interval",
        type=float,
        help="experiment: run the server with sys.setswitchinterval(S) (default: Python's 0.005)",
    )
    ap.add_argument(
        "--only",
        help="comma-separated scenarios to run (c1,c4,c16,single); default all",
    )
    args = ap.parse_args()
    code_at_start = code_fingerprint()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    seconds = args.duration or (5.0 if args.quick else 20.0)
    base_seconds = 4.0 if args.quick else 10.0
    OUT.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="auditkeep-ingest-"))
    data_dir = work / "data"
    print(f"work dir {work}; {seconds:g} s per scenario", flush=True)
    pool = make_pool(work / "pool.jsonl")
    sample = [
        prepare_event(orjson.loads(b'{"id":"x-t1-r0000001:000",' + line), "acme", 0)
        for line in pool[:1000]
    ]
    content_bytes = sum(len(p.content) for p in sample) / len(sample)
    body_bytes = len(batch_body(pool, "c16-t1", 1, BATCH))
    print(
        f"events: {content_bytes:.0f} bytes of canonical JSON on average; "
        f"batch body {body_bytes / 1024:.0f} KiB",
        flush=True,
    )

    print("baseline (before the server) ...", flush=True)
    base_before = baseline(pool, work, "before", base_seconds)
    print(f"  {base_before['events_per_s']:,.0f} events/s", flush=True)

    key = create_tenant_and_key(data_dir)
    server = Server(data_dir, work / "server.log", switch_interval=args.switch_interval)
    server.start()
    runs: list[dict[str, Any]] = []
    floor: dict[str, Any] = {}
    try:
        scenarios = [
            ("warmup", "w", BATCH, 4, 3.0, False),
            ("batch c1", "b1", BATCH, 1, seconds, False),
            ("batch c4", "b4", BATCH, 4, seconds, False),
            ("batch c16", "b16", BATCH, 16, seconds, args.profile),
            ("single c64", "s64", 0, 64, seconds, args.profile),
        ]
        if args.only:
            keep = {"c1": "batch c1", "c4": "batch c4", "c16": "batch c16", "single": "single c64"}
            wanted = {keep[x.strip()] for x in args.only.split(",")} | {"warmup"}
            scenarios = [s for s in scenarios if s[0] in wanted]
        for name, prefix, batch, conns, secs, profile in scenarios:
            print(f"{name} ...", flush=True)
            run = run_wrk(
                server, key, work, name.replace(" ", "-"), prefix, batch, conns, secs, profile
            )
            run["scenario"] = name
            runs.append(run)
            print(
                f"  {run['events_per_s']:,.0f} events/s, {run['requests_per_s']:,.1f} req/s, "
                f"p50 {run['latency_ms']['p50']:.1f} ms, p99 {run['latency_ms']['p99']:.1f} ms, "
                f"statuses {run['status_counts']}, server CPU {run['server_cpu_cores']:.2f} "
                f"cores, wrk CPU {run['wrk_cpu_cores']:.2f}, "
                f"{run['events_per_commit']:.0f} events/commit",
                flush=True,
            )
            time.sleep(1.0)
        print("HTTP floor: GET /healthz at c64 ...", flush=True)
        floor = run_floor(server, 64, min(seconds, 10.0))
        print(f"  {floor['requests_per_s']:,.0f} req/s", flush=True)
    finally:
        rc = server.stop()
    print(f"server stopped (exit {rc})", flush=True)

    print("baseline (after the server) ...", flush=True)
    base_after = baseline(pool, work, "after", base_seconds)
    print(f"  {base_after['events_per_s']:,.0f} events/s", flush=True)
    base_eps = (base_before["events_per_s"] + base_after["events_per_s"]) / 2
    base_cpu = (base_before["cpu_us_per_event"] + base_after["cpu_us_per_event"]) / 2

    print("verifying the server's data ...", flush=True)
    check = verify(data_dir, runs)

    rows = [
        [
            "baseline (no HTTP)",
            f"{base_eps:,.0f}",
            f"{base_eps / BATCH:,.1f}",
            f"{(base_before['batch_p50_ms'] + base_after['batch_p50_ms']) / 2:.1f}",
            f"{(base_before['batch_p99_ms'] + base_after['batch_p99_ms']) / 2:.1f}",
            "1.00",
        ]
    ]
    measured = [r for r in runs if r["scenario"] != "warmup"]
    for r in measured:
        rows.append(
            [
                r["scenario"] + (" (500/req)" if r["batch"] else " (1/req)"),
                f"{r['events_per_s']:,.0f}",
                f"{r['requests_per_s']:,.1f}",
                f"{r['latency_ms']['p50']:.1f}",
                f"{r['latency_ms']['p99']:.1f}",
                f"{r['events_per_s'] / base_eps:.2f}",
            ]
        )
    if floor:
        rows.append(
            [
                "HTTP floor: GET /healthz c64",
                "-",
                f"{floor['requests_per_s']:,.0f}",
                f"{floor['latency_ms']['p50']:.1f}",
                f"{floor['latency_ms']['p99']:.1f}",
                "-",
            ]
        )
    print()
    print(table(rows, ["scenario", "events/s", "req/s", "p50 ms", "p99 ms", "x baseline"]))
    print(
        f"baseline: before {base_before['events_per_s']:,.0f}, after "
        f"{base_after['events_per_s']:,.0f} events/s; {base_cpu:.0f} us CPU per event: "
        + ", ".join(
            f"{k} {(v + base_after['cpu_us_per_event_by_phase'][k]) / 2:.0f}"
            for k, v in base_before["cpu_us_per_event_by_phase"].items()
        )
    )
    print(
        "\nCPU cost (noise-robust; the machine is shared: 'others' = CPU used by other jobs "
        "during the scenario)"
    )
    print(
        table(
            [
                [
                    r["scenario"],
                    f"{r['server_cpu_cores']:.2f}",
                    f"{r['server_cpu_us_per_event']:.0f}",
                    f"{r['server_cpu_us_per_event'] / base_cpu:.2f}",
                    _per_event(r, "main"),
                    _per_event(r, "writer"),
                    f"{r['wrk_cpu_cores']:.2f}",
                    f"{r['others_cpu_cores']:.2f}",
                    f"{r['group_commits']:.0f}",
                    f"{r['events_per_commit']:.0f}",
                    f"{r['commit_ms_mean']:.1f}",
                    " ".join(f"{k}:{v}" for k, v in r["status_counts"].items()),
                ]
                for r in measured
            ],
            [
                "scenario",
                "server cores",
                "CPU us/event",
                "x baseline",
                "main us/ev",
                "writer us/ev",
                "wrk cores",
                "others cores",
                "commits",
                "events/commit",
                "commit ms",
                "statuses",
            ],
        )
    )

    checks = []
    best_batch = max(
        (r for r in measured if r["batch"]), key=lambda r: r["events_per_s"], default=None
    )
    for r in measured:
        if r["batch"]:
            checks.append(
                (
                    f"{r['scenario']}: >= {TARGET_BATCH_EPS:,} events/s",
                    r["events_per_s"] >= TARGET_BATCH_EPS,
                    f"{r['events_per_s']:,.0f}",
                )
            )
            checks.append(
                (
                    f"{r['scenario']}: >= {TARGET_BATCH_RATIO}x baseline",
                    r["events_per_s"] >= TARGET_BATCH_RATIO * base_eps,
                    f"{r['events_per_s'] / base_eps:.2f}x",
                )
            )
        else:
            checks.append(
                (
                    f"{r['scenario']}: >= {TARGET_SINGLE_RPS:,} req/s",
                    r["requests_per_s"] >= TARGET_SINGLE_RPS,
                    f"{r['requests_per_s']:,.0f}",
                )
            )
    checks.append(
        (
            "data: verify passes, acknowledged == stored",
            check["ok"],
            f"{check['stored_events']:,} events; "
            + "; ".join(
                f"{p['scenario']}: {p['acked_events']:,} acked + "
                f"{p['stored_unacked_requests']} in-flight req"
                for p in check["per_scenario"]
            ),
        )
    )
    print()
    for label, ok, value in checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {label}: {value}")
    for p in check["problems"]:
        print(f"  problem: {p}")
    if best_batch is not None:
        print(f"best batch scenario: {best_batch['scenario']}")

    result = {
        "machine": machine(),
        "code": code_at_start,
        "code_changed_during_run": code_fingerprint() != code_at_start,
        "settings": {
            "durability": "full",
            "batch_events": BATCH,
            "seconds": seconds,
            "event_canonical_bytes_mean": content_bytes,
            "batch_body_bytes": body_bytes,
        },
        "baseline": {
            "before": base_before,
            "after": base_after,
            "events_per_s": base_eps,
            "cpu_us_per_event": base_cpu,
        },
        "scenarios": [{k: v for k, v in r.items() if k != "acked_tags"} for r in runs],
        "http_floor": floor,
        "targets": [{"check": label, "pass": ok, "value": value} for label, ok, value in checks],
        "verification": check,
    }
    (OUT / "ingest.json").write_text(json.dumps(result, indent=2))
    print(f"\nwrote {OUT / 'ingest.json'}")
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if check["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
