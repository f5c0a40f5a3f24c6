"""Console benchmark: the event-search page (GET /console/events) over N realistic events.

    .venv/bin/python bench/console.py [--events 1000000] [--requests 100]

Reuses bench/query.py's loader and cached database (bench/out/query-db-<N>-<version>/), starts
the real server over it, signs in to the console with a read key (a real session cookie), then
for each query type of bench/query.py requests the search page with those filters, sequentially
over one keep-alive connection. The time is the client's wall time on loopback (an upper
bound on server time: it includes the HTTP round trip, ~1 ms, see the /healthz floor). Prints
p50/p95 per type and overall, checks p95 < 100 ms, and writes bench/out/console.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, Server, create_tenant_and_key, machine, percentile
from query import WORKLOAD_VERSION, load, query_types

TARGET_P95_MS = 100.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=100, help="requests per query type")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    db_dir = OUT / f"query-db-{args.events}-{WORKLOAD_VERSION}"
    meta_path = db_dir / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
    else:
        print(f"loading {args.events:,} events into {db_dir} ...", flush=True)
        meta = load(db_dir, args.events)
        print(f"  loaded in {meta['load_seconds']:.0f} s", flush=True)
    data_dir = db_dir / "data"
    key = create_tenant_and_key(data_dir)
    server = Server(data_dir, Path(tempfile.mkdtemp(prefix="auditkeep-console-")) / "server.log")
    server.start()
    results: dict[str, dict[str, float]] = {}
    every: list[float] = []
    try:
        client = httpx.Client(base_url=server.url, timeout=60.0)
        r = client.post("/console/sign-in", data={"key": key}, headers={"Origin": server.url})
        assert r.status_code == 303, r.text
        floor = []
        for _ in range(100):
            t0 = time.perf_counter()
            client.get("/healthz")
            floor.append(time.perf_counter() - t0)
        rng = random.Random(7)
        for name, draw in query_types(meta).items():
            times = []
            for _ in range(args.requests):
                params = draw(rng)
                t0 = time.perf_counter()
                page = client.get("/console/events", params=params)
                times.append(time.perf_counter() - t0)
                assert page.status_code == 200 and 'class="error"' not in page.text, page.text
            every += times
            results[name] = {
                "p50_ms": percentile(times, 50) * 1000,
                "p95_ms": percentile(times, 95) * 1000,
            }
            print(
                f"{name:32} p50 {results[name]['p50_ms']:6.1f} ms  p95 "
                f"{results[name]['p95_ms']:6.1f} ms",
                flush=True,
            )
    finally:
        server.stop()
    overall = percentile(every, 95) * 1000
    print(
        f"overall p95 {overall:.1f} ms over {len(every)} pages at {args.events:,} events "
        f"(HTTP floor /healthz p50 {percentile(floor, 50) * 1000:.2f} ms); "
        f"target < {TARGET_P95_MS:.0f} ms"
    )
    out = {
        "events": args.events,
        "overall_p95_ms": overall,
        "types": results,
        "floor_p50_ms": percentile(floor, 50) * 1000,
        "machine": machine(),
    }
    (OUT / "console.json").write_text(json.dumps(out, indent=2))
    return 0 if overall < TARGET_P95_MS else 1


if __name__ == "__main__":
    sys.exit(main())
