"""The per-event CPU cost of the request path, by phase, against a baseline without our code.

    .venv/bin/python bench/prepare.py [--quick] [--rounds N] [--events N]

The same batch bodies (500 realistic events each, from _workload.py, every event with an id,
as the SDK sends them) go through, in this process, alternating round by round:

- baseline (no auditkeep code): ``orjson.loads`` of the body, then per event
  ``orjson.dumps(event, OPT_SORT_KEYS)`` and SHA-256 over 0x00 + those bytes;
- decode: ``bodies.decode_json`` (orjson plus the I-JSON duplicate-member check);
- prepare: ``model.prepare_event`` (the compiled fast path, ``fastschema``; validation, normal
  form, canonical JSON, leaf data, leaf hash);
- prepare (twin only): ``model.prepare_event_by_twin``, the pure-Python SDK validator path the
  server used before the fast path (the "before" figure, measured in the same run).

CPU time per event (``time.thread_time``) of each phase; per phase the median over rounds and
the ratio to the baseline's median in the same run. Results: a table and bench/out/prepare.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, code_fingerprint, machine, table
from _workload import Workload, uuid7

from auditkeep.bodies import decode_json
from auditkeep.model import now_micros, prepare_event, prepare_event_by_twin

BATCH = 500


def make_bodies(events: int, seed: int = 7) -> list[bytes]:
    w = Workload(seed)
    rng = random.Random(seed)
    now = now_micros()
    out = []
    for start in range(0, events, BATCH):
        batch = []
        for _ in range(min(BATCH, events - start)):
            ev = w.event(now - rng.randrange(600_000_000))
            batch.append({"id": uuid7(now // 1000, rng), **ev})
        out.append(orjson.dumps({"events": batch}))
    return out


def baseline_decode(body: bytes) -> Any:
    return orjson.loads(body)["events"]


def baseline_encode_hash(events: list[Any]) -> None:
    for ev in events:
        hashlib.sha256(b"\x00" + orjson.dumps(ev, option=orjson.OPT_SORT_KEYS)).digest()


def ours_decode(body: bytes) -> Any:
    return decode_json(body)["events"]


def _preparer(fn: Callable[[Any, str, int], object]) -> Callable[[list[Any]], None]:
    def run(events: list[Any]) -> None:
        received = now_micros()
        for ev in events:
            fn(ev, "acme", received)

    return run


PHASES: dict[str, tuple[str, Callable[..., Any]]] = {
    # name: (what it is given, the work)
    "baseline decode": ("body", baseline_decode),
    "baseline encode+hash": ("events", baseline_encode_hash),
    "decode": ("body", ours_decode),
    "prepare (fast path)": ("events", _preparer(prepare_event)),
    "prepare (twin only)": ("events", _preparer(prepare_event_by_twin)),
}


def measure(bodies: list[bytes], decoded: list[list[Any]], rounds: int) -> dict[str, list[float]]:
    """µs of CPU per event for each phase, one figure per round; the phases interleave within
    each round so that a noisy neighbour depresses them all alike."""
    n = sum(len(d) for d in decoded)
    per_round: dict[str, list[float]] = {name: [] for name in PHASES}
    for _ in range(rounds):
        for name, (given, work) in PHASES.items():
            inputs = bodies if given == "body" else decoded
            c0 = time.thread_time()
            for item in inputs:
                work(item)
            per_round[name].append((time.thread_time() - c0) / n * 1e6)
    return per_round


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 events, 5 rounds")
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    events, rounds = (2_000, 5) if args.quick else (args.events, args.rounds)

    bodies = make_bodies(events)
    decoded = [orjson.loads(b)["events"] for b in bodies]
    for ev_list in decoded:  # same answers on both paths, before anything is timed
        for ev in ev_list:
            fast, twin = prepare_event(ev, "acme", 1), prepare_event_by_twin(ev, "acme", 1)
            assert fast == twin, (fast, twin)
    measure(bodies[:1], decoded[:1], 1)  # warm-up
    per_round = measure(bodies, decoded, rounds)
    median = {name: statistics.median(v) for name, v in per_round.items()}
    base = median["baseline decode"] + median["baseline encode+hash"]
    ours_fast = median["decode"] + median["prepare (fast path)"]
    ours_twin = median["decode"] + median["prepare (twin only)"]
    rows = []
    for name, v in per_round.items():
        ref = median["baseline decode"] if "decode" in name else median["baseline encode+hash"]
        rows.append([name, f"{median[name]:.2f}", f"{min(v):.2f}", f"{median[name] / ref:.2f}"])
    rows.append(["baseline total", f"{base:.2f}", "", "1.00"])
    rows.append(["decode + prepare (fast path)", f"{ours_fast:.2f}", "", f"{ours_fast / base:.2f}"])
    rows.append(["decode + prepare (twin only)", f"{ours_twin:.2f}", "", f"{ours_twin / base:.2f}"])
    print(f"{events} events ({len(bodies)} bodies of {BATCH}), {rounds} rounds\n")
    print(table(rows, ["phase (CPU per event)", "µs median", "µs min", "x baseline"]))
    print(
        f"\nfast path: prepare {median['prepare (twin only)'] / median['prepare (fast path)']:.1f}"
        " x cheaper than the twin"
    )
    OUT.mkdir(exist_ok=True)
    result = {
        "events": events,
        "rounds": rounds,
        "us_per_event_median": median,
        "us_per_event_rounds": per_round,
        "machine": machine(),
        "code": code_fingerprint(),
    }
    (OUT / "prepare.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
