"""SDK benchmark: log() latency with the durable outbox, and outbox -> server drain rate.

    .venv/bin/python bench/sdk_outbox.py [--log-events 20000] [--drain-events 50000]

1. log() latency (p50/p99, microseconds, one thread, GC on): the whole call (build, redact,
   validate with the server's rules, encode, INSERT+commit in WAL) with synchronous=NORMAL
   (the default: survives the process being killed) and FULL (also survives power loss).
   Baseline: a bare prepared sqlite3 INSERT of the same bytes into the same schema with the
   same pragmas, measured in the same run.
2. Drain throughput (events/s): a pre-filled outbox emptied by the background sender into a
   real `auditkeep serve` (started through the CLI in a temp dir, default settings).
   Baseline: the same number of events in the same batch size POSTed directly with httpx, one
   request after another, no outbox. The same pair is then run against a "null server" (a
   loopback uvicorn app that answers every batch "accepted" without storing anything), which
   shows what the SDK side can move when the server is not the bottleneck.

Targets: log() p50 < 50 us; drain >= 20,000 events/s.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from auditkeep_client import AuditKeep
from auditkeep_client import _json as akjson

VENV_BIN = Path(sys.executable).parent
AUDITKEEP = str(VENV_BIN / "auditkeep")

SCHEMA = (
    "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, body BLOB NOT NULL,"
    " created_us INTEGER NOT NULL, lease_owner TEXT, lease_until INTEGER NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0)"
)


def log_kwargs(i: int) -> dict[str, Any]:
    """A typical audit event: actor, one target, small metadata."""
    return {
        "actor": {"id": f"user_{i % 1000}", "type": "user"},
        "targets": [{"id": f"doc_{i}", "type": "document"}],
        "metadata": {"fields": ["title", "body"], "size": 1234},
        "context": {"ip": "203.0.113.9", "request_id": f"req-{i}"},
    }


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    s = sorted(samples_ns)
    return s[len(s) // 2] / 1000, s[int(len(s) * 0.99)] / 1000


def bench_raw_insert(path: Path, sync: str, bodies: list[tuple[str, bytes]]) -> tuple[float, float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={sync}")
    conn.execute(SCHEMA)
    cur = conn.cursor()
    sql = "INSERT INTO outbox (id, body, created_us) VALUES (?, ?, ?)"
    samples = []
    for event_id, body in bodies:
        t = time.perf_counter_ns()
        cur.execute(sql, (event_id, body, time.time_ns() // 1000))
        samples.append(time.perf_counter_ns() - t)
    conn.close()
    return percentiles(samples[len(samples) // 10 :])


def bench_log(path: Path, sync: str, n: int) -> tuple[tuple[float, float], list[tuple[str, bytes]]]:
    client = AuditKeep(
        "k",
        endpoints="http://127.0.0.1:9",
        outbox=path,
        synchronous=sync,  # type: ignore[arg-type]
        flush_on_exit=0,
        # a sender runs (checkpointing, as in production) but never reaches a server
        retry_base=60,
        retry_cap=60,
    )
    samples = []
    for i in range(n):
        kw = log_kwargs(i)
        t = time.perf_counter_ns()
        client.log("document.updated", **kw)
        samples.append(time.perf_counter_ns() - t)
    assert client.outbox is not None
    bodies = [(eid, body) for _, eid, body in client.outbox.pending_events()]
    client.close(0)
    return percentiles(samples[n // 10 :]), bodies


# -- the server ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str) -> str:
    proc = subprocess.run([AUDITKEEP, *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"auditkeep {' '.join(args)}: {proc.stderr}")
    return proc.stdout


def start_server(data_dir: Path, durability: str) -> tuple[subprocess.Popen[bytes], str, str]:
    cli("tenants", "create", "acme", "--data-dir", str(data_dir))
    out = cli(
        "keys",
        "create",
        "--tenant",
        "acme",
        "--scopes",
        "events:write,events:read",
        "--json",
        "--data-dir",
        str(data_dir),
    )
    key = json.loads(out)["key"]
    port = free_port()
    log = open(data_dir.parent / "server.log", "ab")  # noqa: SIM115 - owned by the child
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITKEEP_")}
    proc = subprocess.Popen(
        [
            AUDITKEEP,
            "serve",
            "--data-dir",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=log,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url, key
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the server did not start")


NULL_SERVER = """
import sys, orjson, uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    if scope["method"] == "POST":
        events = orjson.loads(body)["events"]
        results = [{"id": e["id"], "status": "accepted", "seq": i} for i, e in enumerate(events)]
        out = orjson.dumps({"results": results, "accepted": len(results), "duplicates": 0,
                            "rejected": 0})
    else:
        out = b'{"status":"ok"}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": out})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def start_null_server() -> tuple[subprocess.Popen[bytes], str]:
    """A loopback server that answers every batch 'accepted' without storing anything: it
    shows what the SDK side can move when the server is not the bottleneck."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", NULL_SERVER, str(port)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the null server did not start")


def prefill(path: Path, url: str, key: str, n: int, batch: int, concurrency: int) -> AuditKeep:
    client = AuditKeep(
        key,
        endpoints=[url],
        outbox=path,
        start_sender=False,
        batch_size=batch,
        concurrency=concurrency,
        flush_on_exit=0,
    )
    for i in range(n):
        client.log("document.updated", **log_kwargs(i))
    return client


def drain_sdk(path: Path, url: str, key: str, n: int, batch: int, concurrency: int) -> float:
    client = prefill(path, url, key, n, batch, concurrency)
    t = time.perf_counter()
    client.start()
    if not client.flush(600):
        raise RuntimeError(f"drain did not finish: {client.status()}")
    elapsed = time.perf_counter() - t
    status = client.status()
    assert status.delivered == n and status.duplicates == 0, status
    client.close(5)
    return n / elapsed


def drain_direct(url: str, key: str, n: int, batch: int) -> float:
    maker = AuditKeep(testing=True)
    bodies = [akjson.dumps(maker.prepare("document.updated", **log_kwargs(i))) for i in range(n)]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with httpx.Client(headers=headers, timeout=60) as http:
        t = time.perf_counter()
        for start in range(0, n, batch):
            body = b'{"events":[' + b",".join(bodies[start : start + batch]) + b"]}"
            resp = http.post(url + "/v1/events", content=body)
            resp.raise_for_status()
            assert resp.json()["accepted"] == len(bodies[start : start + batch])
        elapsed = time.perf_counter() - t
    return n / elapsed


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), line]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def main() -> None:
    logging.getLogger("auditkeep_client").setLevel(logging.ERROR)  # the log part never delivers
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log-events", type=int, default=20000)
    parser.add_argument("--full-events", type=int, default=2000)
    parser.add_argument("--drain-events", type=int, default=50000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2, help="SDK sender threads")
    parser.add_argument(
        "--server-durability", default="full", choices=["full", "normal"], help="server setting"
    )
    parser.add_argument("--skip-log", action="store_true", help="only the drain part")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "sqlite": sqlite3.sqlite_version,
    }
    with tempfile.TemporaryDirectory(prefix="ak-sdk-bench-") as tmp:
        root = Path(tmp)
        rows = []
        for sync, n in (
            [] if args.skip_log else (("NORMAL", args.log_events), ("FULL", args.full_events))
        ):
            (p50, p99), bodies = bench_log(root / f"log-{sync}.db", sync, n)
            b50, b99 = bench_raw_insert(root / f"raw-{sync}.db", sync, bodies)
            results[f"log_{sync.lower()}"] = {"p50_us": p50, "p99_us": p99}
            results[f"raw_insert_{sync.lower()}"] = {"p50_us": b50, "p99_us": b99}
            rows.append([f"log() synchronous={sync}", f"{p50:.1f}", f"{p99:.1f}", f"{n}"])
            rows.append([f"  baseline raw INSERT {sync}", f"{b50:.1f}", f"{b99:.1f}", f"{n}"])
            rows.append(["  ratio log()/baseline", f"{p50 / b50:.2f}x", f"{p99 / b99:.2f}x", ""])
        if rows:
            title = "log() latency, microseconds (target p50 < 50)"
            print(table(title, ["", "p50", "p99", "n"], rows))
            print()

        data_dir = root / "server-data"
        proc, url, key = start_server(data_dir, args.server_durability)
        try:
            sdk, direct = [], []
            for run in range(args.runs):
                direct.append(drain_direct(url, key, args.drain_events, args.batch))
                sdk.append(
                    drain_sdk(
                        root / f"drain-{run}.db",
                        url,
                        key,
                        args.drain_events,
                        args.batch,
                        args.concurrency,
                    )
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        null_proc, null_url = start_null_server()
        try:
            null_sdk, null_direct = [], []
            for run in range(args.runs):
                null_direct.append(drain_direct(null_url, "k", args.drain_events, args.batch))
                null_sdk.append(
                    drain_sdk(
                        root / f"null-{run}.db",
                        null_url,
                        "k",
                        args.drain_events,
                        args.batch,
                        args.concurrency,
                    )
                )
        finally:
            null_proc.send_signal(signal.SIGTERM)
            null_proc.wait(timeout=60)
        med_sdk, med_direct = statistics.median(sdk), statistics.median(direct)
        med_nsdk, med_ndirect = statistics.median(null_sdk), statistics.median(null_direct)
        results["drain_events_per_s"] = {
            "sdk": sdk,
            "direct_httpx": direct,
            "null_server_sdk": null_sdk,
            "null_server_direct_httpx": null_direct,
        }
        rows = [
            ["auditkeep serve: SDK outbox -> server", f"{med_sdk:,.0f}", f"{max(sdk):,.0f}"],
            ["  baseline: direct httpx POSTs", f"{med_direct:,.0f}", f"{max(direct):,.0f}"],
            ["  ratio SDK/baseline", f"{med_sdk / med_direct:.2f}x", ""],
            ["null server: SDK outbox -> server", f"{med_nsdk:,.0f}", f"{max(null_sdk):,.0f}"],
            ["  baseline: direct httpx POSTs", f"{med_ndirect:,.0f}", f"{max(null_direct):,.0f}"],
            ["  ratio SDK/baseline", f"{med_nsdk / med_ndirect:.2f}x", ""],
        ]
        title = (
            f"drain throughput, events/s ({args.drain_events} events, batches of {args.batch},"
            f" SDK concurrency {args.concurrency}, server durability {args.server_durability},"
            f" {args.runs} runs; target >= 20,000)"
        )
        print(table(title, ["", "median", "best"], rows))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
