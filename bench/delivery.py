"""Delivery benchmark: webhook catch-up after an outage, and lag under steady ingest.

    .venv/bin/python bench/delivery.py [--backlog 200000] [--rate 5000] [--duration 20]

In one run, against a real `auditkeep serve` (durability full, delivery_allow_networks for
loopback) and a verifying webhook receiver in its own process (bench/_webhook_receiver.py):

1. Backlog: --backlog realistic events (bench/_workload.py) are ingested over HTTP while the
   receiver has no destination yet (an outage from the receiver's point of view).
2. Baseline: the same events, as the same batch bodies (500 per request), POSTed straight to
   the receiver with httpx (no auditkeep): what this receiver and HTTP stack take.
3. Catch-up: a webhook destination is created (start=beginning); time until the receiver has
   every event: events/s, and the ratio to the baseline.
4. Steady state: events are ingested at --rate events/s for
   --duration s (--steady-batch events per request, 4 paced senders); the receiver records each
   event's lag (arrival - received_at). p50/p95/p99 lag.

Targets: catch-up >= 20,000 events/s; lag p95 < 2 s at a steady 5,000 events/s.
Results: tables on stdout and bench/out/delivery.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH,
    OUT,
    Server,
    cli,
    code_fingerprint,
    create_tenant_and_key,
    free_port,
    machine,
    percentile,
    table,
)
from _workload import Workload, uuid7


def events(n: int, seed: int) -> list[dict[str, Any]]:
    w = Workload(seed=seed)
    now_ms = int(time.time() * 1000)
    out = []
    for i in range(n):
        ev = w.event((now_ms - 60_000) * 1000 + i)
        ev["id"] = uuid7(now_ms + i, w.rng)
        out.append(ev)
    return out


def ingest(url: str, key: str, evs: list[dict[str, Any]], batch: int = 500) -> float:
    started = time.perf_counter()
    bodies = [evs[i : i + batch] for i in range(0, len(evs), batch)]

    def worker(part: list[list[dict[str, Any]]]) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as c:
            for b in part:
                r = c.post("/v1/events", json={"events": b}, timeout=60)
                r.raise_for_status()

    threads = [threading.Thread(target=worker, args=(bodies[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(evs) / (time.perf_counter() - started)


def stats(receiver: str) -> dict[str, Any]:
    out: dict[str, Any] = httpx.get(receiver + "/stats", timeout=30).json()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backlog", type=int, default=200_000)
    ap.add_argument("--rate", type=int, default=5000, help="steady ingest, events/s")
    ap.add_argument("--duration", type=float, default=20.0, help="steady phase, seconds")
    ap.add_argument("--steady-batch", type=int, default=250, help="events per steady request")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="auditkeep-delivery-"))
    data = work / "data"
    key = create_tenant_and_key(data)
    admin = json.loads(
        cli(
            "keys",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "admin",
            "--json",
            "--data-dir",
            str(data),
        )
    )["key"]
    port = free_port()
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" + "AAAA"
    receiver_proc = subprocess.Popen(
        [sys.executable, str(BENCH / "_webhook_receiver.py"), str(port), secret]
    )
    receiver = f"http://127.0.0.1:{port}"
    server = Server(data, work / "server.log", delivery_allow_networks="127.0.0.0/8")
    results: dict[str, Any] = {"machine": machine(), "code": code_fingerprint(), "args": vars(args)}
    try:
        for _ in range(100):
            try:
                httpx.get(receiver + "/stats", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        server.start()
        print(f"work dir {work}; backlog {args.backlog:,} events")
        backlog = events(args.backlog, seed=7)

        print("ingesting the backlog ...")
        rate = ingest(server.url, key, backlog)
        print(f"  {rate:,.0f} events/s")

        print("baseline: the same batches POSTed straight to the receiver ...")
        stored = []
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as c:
            after = 0
            while True:
                page = c.get("/v1/feed", params={"after": after, "limit": 1000}).json()
                if not page["data"]:
                    break
                stored += page["data"]
                after = page["next_after"]
        bodies = [
            json.dumps({"events": stored[i : i + 500]}).encode() for i in range(0, len(stored), 500)
        ]
        started = time.perf_counter()
        with httpx.Client(base_url=receiver) as c:
            for b in bodies:
                c.post("/direct", content=b, headers={"Content-Type": "application/json"})
        baseline = len(stored) / (time.perf_counter() - started)
        stats(receiver)  # reset
        print(f"  {baseline:,.0f} events/s")

        print("catch-up: creating the destination ...")
        started = time.perf_counter()
        r = httpx.post(
            f"{server.url}/v1/tenants/acme/destinations",
            json={
                "name": "bench",
                "kind": "webhook",
                "config": {"url": receiver + "/hook"},
                "secret": secret,
            },
            headers={"Authorization": f"Bearer {admin}"},
        )
        r.raise_for_status()
        total = 0
        lags: list[float] = []
        bad = 0
        while total < len(stored):
            s = stats(receiver)
            total += s["events"]
            bad += s["bad"]
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"catch-up stalled at {total}")
            time.sleep(0.05)
        catch_up_s = time.perf_counter() - started
        catch_up = len(stored) / catch_up_s
        print(f"  {catch_up:,.0f} events/s ({catch_up_s:.1f} s), bad signatures {bad}")

        print(f"steady state: {args.rate:,} events/s for {args.duration:.0f} s ...")
        steady = events(int(args.rate * args.duration), seed=8)
        started = time.perf_counter()
        batch, senders = args.steady_batch, 4

        def pace(k: int) -> None:
            # sender k posts batches k, k + senders, ... each at its due time
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as c:
                for i in range(k * batch, len(steady), batch * senders):
                    pause = started + i / args.rate - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                    c.post("/v1/events", json={"events": steady[i : i + batch]}, timeout=60)

        pacers = [threading.Thread(target=pace, args=(k,)) for k in range(senders)]
        for t in pacers:
            t.start()
        for t in pacers:
            t.join()
        send_s = time.perf_counter() - started
        total = 0
        deadline = time.perf_counter() + 120
        while total < len(steady) and time.perf_counter() < deadline:
            s = stats(receiver)
            total += s["events"]
            lags += s["lags"]
            time.sleep(0.1)
        achieved = len(steady) / send_s
        p50, p95, p99 = (percentile(lags, p) for p in (50, 95, 99))
        print(
            f"  ingest achieved {achieved:,.0f} events/s; lag p50 {p50:.3f} s, p95 {p95:.3f} s,"
            f" p99 {p99:.3f} s over {len(lags):,} events"
        )
    finally:
        server.stop()
        receiver_proc.terminate()
        receiver_proc.wait(10)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    rows = [
        ["baseline: direct POSTs to the receiver", f"{baseline:,.0f}", "1.00", "-"],
        [
            "catch-up after the outage (webhook)",
            f"{catch_up:,.0f}",
            f"{catch_up / baseline:.2f}",
            ">= 20,000",
        ],
        ["(backlog ingest over HTTP)", f"{rate:,.0f}", "-", "-"],
    ]
    print()
    print(table(rows, ["delivery", "events/s", "x baseline", "target"]))
    print()
    print(
        table(
            [[f"{achieved:,.0f}", f"{p50:.3f}", f"{p95:.3f}", f"{p99:.3f}", f"{len(lags):,}"]],
            ["steady ingest ev/s", "lag p50 s", "lag p95 s", "lag p99 s", "events"],
        )
    )
    checks = [
        (catch_up >= 20_000, f"catch-up >= 20,000 events/s: {catch_up:,.0f}"),
        (
            p95 < 2.0 and achieved >= 0.95 * args.rate,
            f"lag p95 < 2 s at a steady {args.rate:,} events/s: p95 {p95:.3f} s at {achieved:,.0f}",
        ),
        (bad == 0, f"every request verified: {bad} bad signatures"),
    ]
    print()
    for ok, text in checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {text}")
    results.update(
        backlog=len(stored),
        ingest_rate=rate,
        baseline=baseline,
        catch_up=catch_up,
        catch_up_seconds=catch_up_s,
        steady_rate=achieved,
        lag_p50=p50,
        lag_p95=p95,
        lag_p99=p99,
        lag_events=len(lags),
    )
    (OUT / "delivery.json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {OUT / 'delivery.json'}")


if __name__ == "__main__":
    main()
