"""Merkle tree benchmark: tree updates, proofs from the SQLite tiles, offline verification.

    .venv/bin/python bench/merkle.py [--sizes 1000000,10000000] [--store-sizes 1000000]
                                     [--samples 2000] [--keep] [--skip-tree] [--cli]
                                     [--batch 500]

For each size N (leaves):

1. append + tree update: N leaf hashes appended the way the writer does it, in transactions of
   --batch (default 500, the size of one request's batch; the writer's largest is 5,000): read
   the frontier from log_heads, CompactRange.extend with the batch, write the tree, update
   log_heads. Twice, in the same run: "tiles" writes merkle_tiles as the store does now
   (store.sql.append_tiles: each new full tile, and the partial tile of each level), "nodes"
   executemany's every completed perfect subtree into a merkle_nodes table as schema 2-4 did
   (before). Real schema (SQLiteStore.migrate), durability normal (the fsync belongs to the
   event transaction, not to the tree). Also the same appends without SQLite (CPU only), and
   the baseline: one raw hashlib SHA-256 node hash per leaf (the least any tree update does).
2. proofs: inclusion proofs of random leaves in the tree of size N, and consistency proofs from
   a random older size to N, through SQLiteTenantLog (tiles: one batched tile query each, then
   the hashing inside tiles) and through the former node table (one batched node query).
   p50 / p95 / p99 over --samples of each, warm page cache.
3. offline verification of an export bundle of N realistic events (~510-byte leaf data from
   bench/_workload.py; 200,000 distinct events repeated with fresh seqs), signed checkpoint over
   their tree: `verify_bundle` with 1 and 2 worker processes, with and without the per-event
   content checks (JSON parse, canonical form, tenant). With --cli also `auditkeep verify
   FILE` as a user runs it (a new process, default --jobs, start-up included), which is what
   decides the rate of small bundles.

For each size in --store-sizes: a data directory with N such events (rows written directly with
SQL, tree and checkpoint as the writer would make them), checked by the `auditkeep verify`
code path (verify_store_log) with 1 and 2 workers, with and without content checks.

Results: tables on stdout and bench/out/merkle.json.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, machine, percentile, table
from _workload import Workload

from auditkeep.integrity.checkpoint import Checkpoint, Signer, sign_checkpoint
from auditkeep.integrity.merkle import (
    CompactRange,
    consistency_proof,
    inclusion_proof,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from auditkeep.model import leaf_hash, now_micros, prepare_event
from auditkeep.store.base import StoredCheckpoint
from auditkeep.store.sql import append_tiles
from auditkeep.store.sqlite import SQLiteStore
from auditkeep.translog import FORMAT, stored_log_input, verify_bundle, verify_store_log

BATCH = 5000
DISTINCT_EVENTS = int(os.environ.get("BENCH_DISTINCT", "200000"))
SIGNER = Signer("bench.auditkeep.local", hashlib.sha256(b"bench key").digest())


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


# -- 1. append + tree update ------------------------------------------------------------------


def synthetic_leaves(n: int) -> Iterator[bytes]:
    for i in range(n):
        yield hashlib.sha256(b"\x00leaf %d" % i).digest()


_NODES_TABLE = (
    "CREATE TABLE merkle_nodes (tenant_id INTEGER NOT NULL, level INTEGER NOT NULL,"
    " idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (tenant_id, level, idx))"
    " WITHOUT ROWID"
)  # schema 2-4, for the "before" figures


def _qmark(query: str) -> str:
    return query  # SQLite's placeholders already


_INSERT_NODES = "INSERT INTO merkle_nodes (tenant_id, level, idx, hash) VALUES (?, ?, ?, ?)"


def hashlib_baseline(n: int) -> float:
    """Leaves per second for one raw SHA-256 node hash each (no auditkeep code)."""
    sample = list(synthetic_leaves(min(n, 500_000)))
    sha = hashlib.sha256
    t0 = time.perf_counter()
    prev = sample[0]
    for h in sample:
        prev = sha(b"\x01" + prev + h).digest()
    return len(sample) / (time.perf_counter() - t0)


def build_tree(
    data_dir: Path, n: int, layout: str, batch_size: int
) -> tuple[SQLiteStore, int, dict[str, float]]:
    store = SQLiteStore(data_dir, durability="normal")
    store.migrate()
    tenant = store.create_tenant("acme", "acme")
    tid = tenant.tenant_id
    conn = store._writer()
    if layout == "nodes":
        conn.execute(_NODES_TABLE)
    leaves = synthetic_leaves(n)
    started = time.perf_counter()
    cpu0 = time.process_time()
    done = 0
    while done < n:
        batch = [next(leaves) for _ in range(min(batch_size, n - done))]
        conn.execute("BEGIN IMMEDIATE")
        size, frontier = conn.execute(
            "SELECT size, frontier FROM log_heads WHERE tenant_id = ?", (tid,)
        ).fetchone()
        tree = CompactRange.from_bytes(frontier)
        assert tree.size == size
        created = tree.extend(batch)
        if layout == "nodes":
            conn.executemany(_INSERT_NODES, [(tid, lv, idx, h) for lv, idx, h in created])
        else:
            append_tiles(conn, _qmark, tid, size, tree.size, created)
        conn.execute(
            "UPDATE log_heads SET size = ?, frontier = ?, root = ? WHERE tenant_id = ?",
            (tree.size, tree.to_bytes(), tree.root(), tid),
        )
        conn.execute("COMMIT")
        done += len(batch)
        if done % 1_000_000 == 0:
            log(f"  {layout}: {done:,} leaves, {done / (time.perf_counter() - started):,.0f}/s")
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    # CPU only: the same batches into a CompactRange, no SQLite (a sample of 1M at most)
    sample = list(synthetic_leaves(min(n, 1_000_000)))
    tree = CompactRange()
    t0 = time.perf_counter()
    for start in range(0, len(sample), batch_size):
        tree.extend(sample[start : start + batch_size])
    cpu_only = len(sample) / (time.perf_counter() - t0)
    return store, tid, {"sqlite_rate": n / wall, "sqlite_cpu_s": cpu, "cpu_only_rate": cpu_only}


class NodeTable:
    """The former proof reads: one batched primary-key lookup per node (schema 2-4)."""

    def __init__(self, store: SQLiteStore, tid: int) -> None:
        self.store, self.tid = store, tid

    def get_nodes(self, ids: list[tuple[int, int]] | Any) -> list[bytes]:
        values = ",".join("(?, ?)" for _ in ids)
        params: list[int] = [x for node in ids for x in node] + [self.tid]
        rows = self.store._fetch(
            f"SELECT n.level, n.idx, n.hash FROM (VALUES {values}) v JOIN merkle_nodes n"
            " ON n.tenant_id = ? AND n.level = v.column1 AND n.idx = v.column2",
            params,
        )
        found = {(lv, i): bytes(h) for lv, i, h in rows}
        return [found[node] for node in ids]


# -- 2. proofs ---------------------------------------------------------------------------------


def time_proofs(
    store: SQLiteStore, tid: int, n: int, samples: int, layout: str
) -> dict[str, list[float]]:
    reader: Any = store.log(tid) if layout == "tiles" else NodeTable(store, tid)
    root = root_hash(n, reader)
    rng = random.Random(7)
    incl: list[float] = []
    cons: list[float] = []
    verified = 0
    for _ in range(samples):
        index = rng.randrange(n)
        t0 = time.perf_counter()
        proof = inclusion_proof(index, n, reader)
        incl.append(time.perf_counter() - t0)
        if verified < 50:  # spot-check the proofs are right
            (leaf,) = reader.get_nodes([(0, index)])
            verify_inclusion(leaf, index, n, proof, root)
            verified += 1
    for i in range(samples):
        old = rng.randrange(1, n)
        t0 = time.perf_counter()
        proof = consistency_proof(old, n, reader)
        cons.append(time.perf_counter() - t0)
        if i < 50:
            verify_consistency(old, n, root_hash(old, reader), root, proof)
    return {"inclusion": incl, "consistency": cons}


# -- 3. realistic events -----------------------------------------------------------------------


def realistic_leaves(count: int) -> list[bytes]:
    wl = Workload(seed=11)
    base = now_micros() - 86_400_000_000
    out = []
    for i in range(count):
        raw = wl.event(base + i * 1000)
        raw["id"] = f"bench-{i:08d}"
        out.append(prepare_event(raw, "acme", base + i * 1000 + 5).leaf_data)
    return out


def write_bundle(path: Path, n: int, leaves: list[bytes]) -> None:
    hashes = [leaf_hash(d) for d in leaves]
    tree = CompactRange()
    for i in range(n):
        tree.append(hashes[i % len(leaves)])
    note = sign_checkpoint(
        Checkpoint(
            "bench.auditkeep.local/acme", n, tree.root(), ["timestamp 2026-01-01T00:00:00Z"]
        ),
        SIGNER,
    )
    header = {
        "format": FORMAT,
        "origin": "bench.auditkeep.local/acme",
        "tenant": "acme",
        "from_seq": 1,
        "to_seq": n,
        "checkpoint": note.decode(),
        "verifier_keys": [SIGNER.verifier.vkey],
        "prefix": [],
        "consistency": [],
    }
    hexes = [h.hex().encode() for h in hashes]
    with open(path, "wb", buffering=1 << 22) as f:
        f.write(json.dumps(header).encode() + b"\n")
        for i in range(n):
            j = i % len(leaves)
            f.write(b'{"seq":%d,"hash":"%s","leaf":%s}\n' % (i + 1, hexes[j], leaves[j]))


def time_call(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def bench_bundle(path: Path, n: int) -> list[dict[str, Any]]:
    out = []
    for jobs in sorted({1, os.cpu_count() or 1}):
        for content in (False, True):
            seconds, report = time_call(
                lambda jobs=jobs, content=content: verify_bundle(
                    path, [SIGNER.verifier], jobs=jobs, content=content
                )
            )
            assert report.ok and report.checked == n, report.problems[:3]
            out.append({"jobs": jobs, "content": content, "seconds": seconds, "rate": n / seconds})
            log(f"  bundle {n:,}: jobs={jobs} content={content}: {n / seconds:,.0f} events/s")
    return out


def _baseline_range(task: tuple[str, int, int, bool]) -> int:
    """No auditkeep code: orjson.loads (when ``parse``) and SHA-256 of every line whose first
    byte lies in ``[start, end)``."""
    import orjson

    name, start, end, parse = task
    with open(name, "rb") as f:
        if start:
            f.seek(start - 1)
            f.readline()
            start = f.tell()
        f.seek(end - 1 if end else 0)
        f.readline()
        stop = f.tell()
        f.seek(start)
        lines = f.read(stop - start).split(b"\n")
    sha = hashlib.sha256
    if parse:
        for line in lines:
            if line:
                orjson.loads(line)
                sha(line).digest()
    else:
        for line in lines:
            sha(line).digest()
    return len(lines)


def bench_baseline(path: Path, n: int) -> list[dict[str, Any]]:
    """The same run's baseline: orjson.loads + SHA-256 (and SHA-256 alone) over the bundle's
    event lines, in 8 MiB ranges, on one core and on every core (a process pool)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with open(path, "rb") as f:
        start = len(f.readline())
    size = path.stat().st_size
    parts = max(1, (size - start) // (8 << 20))
    bounds = [start + (size - start) * i // parts for i in range(parts + 1)]
    out = []
    cpus = os.cpu_count() or 1
    for jobs in sorted({1, cpus}):
        for parse in (False, True):
            tasks = [(str(path), a, b, parse) for a, b in itertools.pairwise(bounds)]
            t0 = time.perf_counter()
            if jobs == 1:
                list(map(_baseline_range, tasks))
            else:
                context = multiprocessing.get_context("fork")
                with ProcessPoolExecutor(jobs, mp_context=context) as pool:
                    list(pool.map(_baseline_range, tasks))
            seconds = time.perf_counter() - t0
            what = "orjson.loads + sha256" if parse else "sha256"
            out.append({"jobs": jobs, "what": what, "seconds": seconds, "rate": n / seconds})
            log(f"  baseline {n:,}: jobs={jobs} {what}: {n / seconds:,.0f} lines/s")
    return out


def bench_cli(path: Path, n: int) -> list[dict[str, Any]]:
    """`auditkeep verify FILE --log-key K` as a user runs it: a new process, default --jobs
    (the CPUs, at most 8), wall clock including start-up and worker processes."""
    import subprocess

    from _common import AUDITKEEP

    out = []
    for extra in ([], ["--skip-content"]):
        cmd = [AUDITKEEP, "verify", str(path), "--log-key", SIGNER.verifier.vkey, *extra]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
        seconds = time.perf_counter() - t0
        assert done.returncode == 0, done.stdout + done.stderr
        content = not extra
        out.append({"content": content, "seconds": seconds, "rate": n / seconds})
        log(f"  CLI {n:,}: content={content}: {n / seconds:,.0f} events/s ({seconds:.2f} s)")
    return out


def build_store(data_dir: Path, n: int, leaves: list[bytes]) -> SQLiteStore:
    """A data directory holding n events, written directly (the writer's work is not measured
    here): events rows, tree, head and one checkpoint, as the server would have made them."""
    import orjson

    store = SQLiteStore(data_dir, durability="normal")
    store.migrate()
    tenant = store.create_tenant("acme", "acme")
    tid = tenant.tenant_id
    parsed = [orjson.loads(d) for d in leaves]
    from auditkeep.model import parse_timestamp

    cols = [
        (p["action"], p["category"], p["outcome"], p["actor"]["id"],
         parse_timestamp(p["occurred_at"]), parse_timestamp(p["received_at"]), leaf_hash(d), d)
        for p, d in zip(parsed, leaves, strict=True)
    ]  # fmt: skip
    conn = store._writer()
    tree = CompactRange()
    for start in range(0, n, 50_000):
        conn.execute("BEGIN")
        rows = []
        for seq in range(start + 1, min(n, start + 50_000) + 1):
            c = cols[(seq - 1) % len(cols)]
            rows.append((tid, seq, f"e{seq}", *c))
        old = tree.size
        created = tree.extend([r[9] for r in rows])
        append_tiles(conn, _qmark, tid, old, tree.size, created)
        conn.executemany(
            "INSERT INTO events (tenant_id, seq, id, action, category, outcome, actor_id,"
            " occurred_at, received_at, leaf_hash, leaf_data) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        conn.execute("COMMIT")
    conn.execute(
        "UPDATE log_heads SET size = ?, frontier = ?, root = ? WHERE tenant_id = ?",
        (n, tree.to_bytes(), tree.root(), tid),
    )
    note = sign_checkpoint(Checkpoint("bench.auditkeep.local/acme", n, tree.root()), SIGNER)
    cp = StoredCheckpoint(n, tree.root(), now_micros(), (f"{SIGNER.key_id:08x}",), note)
    conn.execute(
        "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)",
        (tid, cp.size, cp.root, cp.created_at, " ".join(cp.key_ids), cp.note),
    )
    return store


def bench_store(store: SQLiteStore, n: int) -> list[dict[str, Any]]:
    tenant = store.get_tenant("acme")
    assert tenant is not None
    inp = stored_log_input(
        store, tenant, "bench.auditkeep.local/acme", [SIGNER.verifier], pinned=True
    )
    out = []
    for jobs in (1, 2):
        for content in (False, True):
            seconds, report = time_call(
                lambda jobs=jobs, content=content: verify_store_log(inp, jobs=jobs, content=content)
            )
            assert report.ok and report.checked == n, report.problems[:3]
            out.append({"jobs": jobs, "content": content, "seconds": seconds, "rate": n / seconds})
            log(f"  data dir {n:,}: jobs={jobs} content={content}: {n / seconds:,.0f} events/s")
    return out


# -- main ----------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="1000000,10000000", help="leaf counts (comma-separated)")
    ap.add_argument("--store-sizes", default="1000000", help="data-directory verify sizes")
    ap.add_argument("--samples", type=int, default=2000, help="proofs timed per kind and size")
    ap.add_argument("--keep", action="store_true", help="keep the temporary files")
    ap.add_argument("--batch", type=int, default=500, help="leaves per tree-update transaction")
    ap.add_argument(
        "--skip-tree", action="store_true", help="only the verification parts (no tree/proofs)"
    )
    ap.add_argument(
        "--cli",
        action="store_true",
        help="also time `auditkeep verify FILE` end to end (a new process, default --jobs)",
    )
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    store_sizes = [int(s) for s in args.store_sizes.split(",") if s]
    work = Path(tempfile.mkdtemp(prefix="auditkeep-merkle-"))
    result: dict[str, Any] = {"machine": machine(), "sizes": {}, "load_before": os.getloadavg()}
    try:
        log(f"generating {DISTINCT_EVENTS:,} realistic events ...")
        leaves = realistic_leaves(DISTINCT_EVENTS)
        avg = sum(map(len, leaves)) / len(leaves)
        result["leaf_bytes_avg"] = avg
        for n in sizes:
            log(f"== {n:,} leaves")
            layouts: dict[str, dict[str, Any]] = {}
            if not args.skip_tree:
                baseline = hashlib_baseline(n)
                for layout in ("nodes", "tiles"):
                    where = work / f"tree-{n}-{layout}"
                    store, tid, tree_stats = build_tree(where, n, layout, args.batch)
                    proofs = time_proofs(store, tid, n, args.samples, layout)
                    layouts[layout] = {
                        **tree_stats,
                        "hashlib_rate": baseline,
                        "db_bytes": (where / "auditkeep.db").stat().st_size,
                        "inclusion_ms": {
                            p: percentile(proofs["inclusion"], p) * 1000 for p in (50, 95, 99)
                        },
                        "consistency_ms": {
                            p: percentile(proofs["consistency"], p) * 1000 for p in (50, 95, 99)
                        },
                    }
                    log(
                        f"  {layout}: {tree_stats['sqlite_rate']:,.0f} leaves/s "
                        f"({tree_stats['sqlite_rate'] / baseline:.3f}x hashlib)"
                    )
                    store.close()
                    shutil.rmtree(where, ignore_errors=True)
            bundle = work / f"bundle-{n}.ndjson"
            write_bundle(bundle, n, leaves)
            bundle_bytes = bundle.stat().st_size
            baseline = bench_baseline(bundle, n)
            verify_rates = bench_bundle(bundle, n)
            baseline += bench_baseline(bundle, n)  # before and after: the mean is used
            cli_rates = bench_cli(bundle, n) if args.cli else []
            bundle.unlink()
            result["sizes"][str(n)] = {
                "tree": layouts,
                "bundle_bytes": bundle_bytes,
                "bundle_verify": verify_rates,
                "bundle_baseline": baseline,
                "cli_verify": cli_rates,
            }
        for n in store_sizes:
            log(f"== data directory with {n:,} events")
            store = build_store(work / f"store-{n}", n, leaves)
            rates = bench_store(store, n)
            result.setdefault("store_bytes", {})[str(n)] = (
                (work / f"store-{n}" / "auditkeep.db").stat().st_size
            )
            store.close()
            shutil.rmtree(work / f"store-{n}", ignore_errors=True)
            result.setdefault("store_verify", {})[str(n)] = rates
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result["load_after"] = os.getloadavg()

    rows = []
    for n, r in result["sizes"].items():
        for layout, t in r["tree"].items():
            rows.append(
                [
                    f"{int(n):,} {layout}",
                    fmt_rate(t["sqlite_rate"]),
                    f"{t['sqlite_rate'] / t['hashlib_rate']:.3f}",
                    fmt_rate(t["cpu_only_rate"]),
                    f"{t['db_bytes'] / int(n):.0f}",
                    f"{t['inclusion_ms'][50]:.3f}",
                    f"{t['inclusion_ms'][95]:.3f}",
                    f"{t['consistency_ms'][50]:.3f}",
                    f"{t['consistency_ms'][95]:.3f}",
                ]
            )
    print()
    print(
        table(
            rows or [["-"] * 9],
            ["leaves, layout", "append+tree/s (SQLite)", "x hashlib", "append/s (CPU only)",
             "DB B/leaf", "incl p50 ms", "incl p95 ms", "cons p50 ms", "cons p95 ms"],
        )
    )  # fmt: skip
    rows = []
    for n, r in result["sizes"].items():
        base: dict[tuple[int, str], list[float]] = {}
        for b in r.get("bundle_baseline", []):
            base.setdefault((b["jobs"], b["what"]), []).append(b["rate"])
        for (jobs, what), rates in sorted(base.items()):
            rows.append(
                [
                    f"baseline {int(n):,} ({what})",
                    str(jobs),
                    "-",
                    "-",
                    fmt_rate(sum(rates) / len(rates)),
                    "1.00",
                ]
            )
        for v in r["bundle_verify"]:
            what = "orjson.loads + sha256" if v["content"] else "sha256"
            ref = base.get((v["jobs"], what))
            ratio = f"{v['rate'] / (sum(ref) / len(ref)):.2f}" if ref else "-"
            rows.append(
                [
                    f"bundle {int(n):,}",
                    str(v["jobs"]),
                    "yes" if v["content"] else "no",
                    f"{v['seconds']:.1f}",
                    fmt_rate(v["rate"]),
                    ratio,
                ]
            )
        for v in r.get("cli_verify", []):
            rows.append(
                [
                    f"CLI bundle {int(n):,}",
                    "auto",
                    "yes" if v["content"] else "no",
                    f"{v['seconds']:.1f}",
                    fmt_rate(v["rate"]),
                    "-",
                ]
            )
    for n, rates in result.get("store_verify", {}).items():
        for v in rates:
            rows.append(
                [
                    f"data dir {int(n):,}",
                    str(v["jobs"]),
                    "yes" if v["content"] else "no",
                    f"{v['seconds']:.1f}",
                    fmt_rate(v["rate"]),
                    "-",
                ]
            )
    print()
    print(
        table(
            rows,
            ["offline verify", "jobs", "content checks", "seconds", "events/s", "x baseline"],
        )
    )
    print(
        "x baseline: against the same run's mean rate, at the same job count, of orjson.loads"
        " + sha256 (content checks) or sha256 alone (hashes and tree only) over the same lines"
    )
    m = result["machine"]
    print(
        f"\n{m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}, SQLite {m['sqlite']}; "
        f"load average before {result['load_before'][0]:.2f}, after {result['load_after'][0]:.2f}; "
        f"leaf data {result['leaf_bytes_avg']:.0f} bytes on average"
    )
    OUT.mkdir(exist_ok=True)
    (OUT / "merkle.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {OUT / 'merkle.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
