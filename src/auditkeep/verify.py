"""Check a tenant's stored log: every leaf hash recomputed, seqs gap-free, columns matching.

This is the hash-per-event check; the Merkle tree and signed checkpoints add the proof that
nothing was removed or rewritten wholesale (docs/verification.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from auditkeep.model import canonical_json, leaf_hash, parse_timestamp
from auditkeep.store.base import StoredEvent


@dataclass
class VerifyReport:
    tenant: str
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_events(tenant: str, events: Iterable[StoredEvent], expected_size: int) -> VerifyReport:
    """Verify stored events in seq order against their leaf hashes and the log size."""
    report = VerifyReport(tenant)
    expected_seq = 1
    for ev in events:
        if ev.seq != expected_seq:
            if ev.seq > expected_seq:
                report.problems.append(
                    f"seq {expected_seq}..{ev.seq - 1}: missing (the log jumps from "
                    f"{expected_seq - 1} to {ev.seq})"
                )
            else:
                report.problems.append(f"seq {ev.seq}: out of order after {expected_seq - 1}")
        expected_seq = ev.seq + 1
        report.checked += 1
        for problem in _check_one(tenant, ev):
            report.problems.append(f"seq {ev.seq}: {problem}")
    if expected_seq - 1 != expected_size:
        report.problems.append(
            f"the log head says {expected_size} events but the last stored seq is "
            f"{expected_seq - 1}"
        )
    return report


def _check_one(tenant: str, ev: StoredEvent) -> Iterator[str]:
    actual = leaf_hash(ev.leaf_data)
    if actual != ev.leaf_hash:
        yield (
            f"leaf hash mismatch: stored {ev.leaf_hash.hex()[:16]}…, "
            f"recomputed from the event {actual.hex()[:16]}… (the event was altered)"
        )
    try:
        data: Any = orjson.loads(ev.leaf_data)
    except orjson.JSONDecodeError:
        yield "leaf data is not valid JSON"
        return
    if canonical_json(data) != ev.leaf_data:
        yield "leaf data is not in canonical form"
    if data.get("tenant") != tenant:
        yield f"event belongs to tenant {data.get('tenant')!r}, found in {tenant!r}"
    try:
        if parse_timestamp(data["occurred_at"]) != ev.occurred_at:
            yield "the indexed occurred_at differs from the event's"
    except (KeyError, TypeError, ValueError):
        yield "occurred_at is missing or malformed"


def check_http_event(tenant: str, event: dict[str, Any]) -> list[str]:
    """Check one event as served over HTTP: recompute its leaf hash from its fields."""
    body = {k: v for k, v in event.items() if k not in ("seq", "hash")}
    data = canonical_json(body)
    problems = []
    if leaf_hash(data).hex() != event.get("hash"):
        problems.append(f"seq {event.get('seq')}: leaf hash does not match the event's content")
    if body.get("tenant") != tenant:
        problems.append(f"seq {event.get('seq')}: belongs to tenant {body.get('tenant')!r}")
    return problems


def seq_gaps(seqs: Iterable[int]) -> list[str]:
    """Describe gaps in a set of seqs that should be exactly 1..N."""
    ordered = sorted(seqs)
    problems = []
    expected = 1
    for seq in ordered:
        if seq > expected:
            problems.append(f"seq {expected}..{seq - 1}: missing")
        elif seq < expected:
            problems.append(f"seq {seq}: appears twice")
        expected = seq + 1
    return problems


__all__ = ["VerifyReport", "check_events", "check_http_event", "seq_gaps"]
