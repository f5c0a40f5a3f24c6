"""Events as the server stores them: leaf data, leaf hash and the indexed columns.

The event schema itself (validation, normal form, canonical JSON) is defined once in
``auditkeep_client.schema`` and shared with the SDK. This module adds what only the server
knows: the tenant and the time it received the event, which together with the normal form make
the *leaf data* whose hash goes into the tenant's Merkle tree (docs/canonical-encoding.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from auditkeep_client.schema import (
    EventValidationError,
    FieldError,
    canonical_json,
    check_event,
    format_timestamp,
    now_micros,
    parse_timestamp,
)

__all__ = [
    "EventValidationError",
    "FieldError",
    "PreparedEvent",
    "canonical_json",
    "client_content",
    "format_timestamp",
    "leaf_hash",
    "now_micros",
    "parse_timestamp",
    "prepare_event",
]

SERVER_FIELDS = ("tenant", "received_at")


def leaf_hash(leaf_data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || leaf data)."""
    return hashlib.sha256(b"\x00" + leaf_data).digest()


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """A validated event ready for the writer: everything but its seq is known."""

    id: str
    action: str
    category: str
    outcome: str
    actor_id: str
    occurred_at: int
    received_at: int
    targets: tuple[tuple[str, str], ...]  # (type, id)
    content: bytes  # canonical JSON of the client's event in normal form (idempotency key)
    leaf_data: bytes  # canonical JSON of the normal form plus tenant and received_at
    leaf_hash: bytes


def prepare_event(raw: Any, tenant: str, received_at: int) -> PreparedEvent:
    """Validate and encode one client event. Raises EventValidationError."""
    event, occurred, exact = check_event(raw)
    content = canonical_json(event, orjson_exact=exact)
    event["tenant"] = tenant
    event["received_at"] = format_timestamp(received_at)
    data = canonical_json(event, orjson_exact=exact and tenant.isascii())
    return PreparedEvent(
        id=event["id"],
        action=event["action"],
        category=event["category"],
        outcome=event["outcome"],
        actor_id=event["actor"]["id"],
        occurred_at=occurred,
        received_at=received_at,
        targets=tuple((t["type"], t["id"]) for t in event["targets"]),
        content=content,
        leaf_data=data,
        leaf_hash=leaf_hash(data),
    )


def client_content(leaf_data: bytes) -> bytes:
    """The canonical client event inside stored leaf data (server fields removed)."""
    event = orjson.loads(leaf_data)
    for name in SERVER_FIELDS:
        event.pop(name, None)
    return canonical_json(event)
