"""Events as the server stores them: leaf data, leaf hash and the indexed columns.

The event schema itself (validation, normal form, canonical JSON) is defined once in
``auditkeep_client.schema`` and shared with the SDK. This module adds what only the server
knows: the tenant and the time it received the event, which together with the normal form make
the *leaf data* whose hash goes into the tenant's Merkle tree (docs/canonical-encoding.md).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import orjson

from auditkeep import fastschema
from auditkeep_client.schema import (
    EventValidationError,
    FieldError,
    canonical_json,
    check_event,
    check_event_size,
    format_timestamp,
    now_micros,
    parse_timestamp,
)

__all__ = [
    "EventValidationError",
    "FieldError",
    "IndexedColumns",
    "PreparedEvent",
    "canonical_json",
    "client_content",
    "format_timestamp",
    "indexed_columns",
    "leaf_data_of",
    "leaf_hash",
    "now_micros",
    "parse_timestamp",
    "prepare_event",
    "prepare_event_by_twin",
]

SERVER_FIELDS = ("tenant", "received_at")


def leaf_hash(leaf_data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || leaf data)."""
    return hashlib.sha256(b"\x00" + leaf_data).digest()


class PreparedEvent(NamedTuple):
    """A validated event ready for the writer: everything but its seq is known. (A named
    tuple, not a frozen dataclass: it is made once per event in the request path, and a
    frozen dataclass's ``__init__`` costs several microseconds.)"""

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


def _searched_fields(
    event: Mapping[str, Any],
) -> tuple[str, str, str, str, str, tuple[tuple[str, str], ...]]:
    """``(id, action, category, outcome, actor id, targets as (type, id))`` of an event in
    normal form: what the stores copy into columns and ``event_targets`` for searches."""
    return (
        event["id"],
        event["action"],
        event["category"],
        event["outcome"],
        event["actor"]["id"],
        tuple((t["type"], t["id"]) for t in event["targets"]),
    )


def prepare_event(raw: Any, tenant: str, received_at: int) -> PreparedEvent:
    """Validate and encode one client event. Raises EventValidationError.

    The compiled twin (:mod:`auditkeep.fastschema`) takes the events it can vouch for; the
    rest, every invalid one among them, go through ``auditkeep_client.schema``, which also
    names every problem of an invalid event."""
    fast = fastschema.check(raw)
    if fast is not None:
        return _prepared_fast(fast, tenant, received_at)
    return prepare_event_by_twin(raw, tenant, received_at)


def prepare_event_by_twin(raw: Any, tenant: str, received_at: int) -> PreparedEvent:
    """:func:`prepare_event` by ``auditkeep_client.schema`` alone: the reference the fast path
    is held equal to (and what it falls back to)."""
    event, occurred, exact = check_event(raw)
    content = canonical_json(event, orjson_exact=exact)
    check_event_size(event, content)
    event["tenant"] = tenant
    event["received_at"] = format_timestamp(received_at)
    data = canonical_json(event, orjson_exact=exact and tenant.isascii())
    event_id, action, category, outcome, actor_id, targets = _searched_fields(event)
    return PreparedEvent(
        id=event_id,
        action=action,
        category=category,
        outcome=outcome,
        actor_id=actor_id,
        occurred_at=occurred,
        received_at=received_at,
        targets=targets,
        content=content,
        leaf_data=data,
        leaf_hash=leaf_hash(data),
    )


_TARGETS_KEY = b',"targets":['


def leaf_data_of(content: bytes, tenant: str, received_at: int) -> bytes:
    """The leaf data of an event whose canonical content is ``content``: the same bytes as
    ``canonical_json`` of the normal form plus ``tenant`` and ``received_at``, made by
    inserting the two members where RFC 8785 sorts them instead of encoding again.

    ``targets`` is the last member of the content (no other top-level key sorts after it), so
    ``received_at`` goes just before it and ``tenant`` just after it. The last
    ``,"targets":[`` in the content is that member: inside an encoded string a ``"`` is always
    escaped, and the objects of ``targets`` hold only ``id``, ``type`` and ``name``.
    """
    at = content.rfind(_TARGETS_KEY)
    if at < 0 or content[-2:] != b"]}":
        raise ValueError("not the canonical content of an event in normal form")
    view = memoryview(content)
    return b"".join((view[:at], _received_member(received_at), view[at:-1], _tenant_end(tenant)))


@functools.lru_cache(maxsize=16)  # a batch shares one received_at
def _received_member(received_at: int) -> bytes:
    return b',"received_at":"' + format_timestamp(received_at).encode() + b'"'


@functools.lru_cache(maxsize=1024)
def _tenant_end(tenant: str) -> bytes:
    return b',"tenant":' + canonical_json(tenant) + b"}"


def _prepared_fast(fast: fastschema.Checked, tenant: str, received_at: int) -> PreparedEvent:
    event = fast.event
    data = leaf_data_of(fast.content, tenant, received_at)
    digest = hashlib.sha256(b"\x00")
    digest.update(data)
    return PreparedEvent(
        id=event.id,  # type: ignore[arg-type]  # set by check
        action=event.action,
        category=event.category,
        outcome=event.outcome,
        actor_id=event.actor.id,
        occurred_at=fast.occurred_at,
        received_at=received_at,
        targets=tuple((t.type, t.id) for t in event.targets),
        content=fast.content,
        leaf_data=data,
        leaf_hash=digest.digest(),
    )


class IndexedColumns(NamedTuple):
    """The columns a store keeps beside an event's leaf data, as its leaf data says they must
    be (``auditkeep verify`` compares them with the stored ones; the first seven are the
    ``events`` columns in their order there)."""

    id: str
    action: str
    category: str
    outcome: str
    actor_id: str
    occurred_at: int
    received_at: int
    targets: frozenset[tuple[str, str]]  # one event_targets row each: (type, id)


_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


def _normal_micros(text: str) -> int:
    """:func:`parse_timestamp`, about ten times faster on the normal form leaf data holds
    (``YYYY-MM-DDTHH:MM:SS.ffffffZ``)."""
    if len(text) == 27 and text[10] == "T" and text[19] == "." and text[26] == "Z":
        try:
            micros: int = (datetime.fromisoformat(text[:26]) - _EPOCH) // _MICROSECOND
        except ValueError:
            pass
        else:
            if micros >= 0:
                return micros
    return parse_timestamp(text)


def indexed_columns(leaf: Mapping[str, Any]) -> IndexedColumns:
    """The indexed columns derived from parsed leaf data, exactly as :func:`prepare_event`
    derives them. Raises KeyError, TypeError or ValueError if the leaf data lacks a field."""
    event_id, action, category, outcome, actor_id, targets = _searched_fields(leaf)
    return IndexedColumns(
        id=event_id,
        action=action,
        category=category,
        outcome=outcome,
        actor_id=actor_id,
        occurred_at=_normal_micros(leaf["occurred_at"]),
        received_at=_normal_micros(leaf["received_at"]),
        targets=frozenset(targets),
    )


def client_content(leaf_data: bytes) -> bytes:
    """The canonical client event inside stored leaf data (server fields removed)."""
    event = orjson.loads(leaf_data)
    for name in SERVER_FIELDS:
        event.pop(name, None)
    return canonical_json(event)
