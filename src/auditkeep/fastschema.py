"""The event schema, compiled: the server's fast twin of ``auditkeep_client.schema.check_event``.

``auditkeep_client.schema`` stays the one definition of an event (the SDK runs it, pure
Python, standard library only). This module implements the same definition with msgspec
Structs, built from that module's own tables, limits and patterns, so that types, lengths,
patterns, enums, unknown fields and defaults are checked in C, and the normal form is encoded
to RFC 8785 bytes in one pass from the Struct (no intermediate dict).

It only ever *accepts*: :func:`check` returns the normal form and its canonical bytes when it
can vouch that the twin would return exactly the same, and ``None`` otherwise: for an invalid
event (the twin then says what is wrong, with paths and messages), and for the valid events
whose canonical bytes it does not produce itself (a float that ECMAScript writes differently
from msgspec, a metadata key above U+FFFF, a value that is not what a JSON decoder makes).
``occurred_at`` in UTC (``Z``, up to six fraction digits) is read here; any other form by the
twin's own ``parse_timestamp``. The server calls the
twin in that case (``model.prepare_event``). tests/schema/test_fastschema.py holds the two
equal on shared vectors and generated events, valid and invalid.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Final, Literal, NamedTuple

import msgspec

from auditkeep_client.schema import (
    _ACTION_RE,  # the twin's own patterns: one definition
    _ID_RE,
    _MAX_SAFE_INT,
    _TYPE_RE,
    CATEGORIES,
    EVENT_FIELDS,
    LIMITS,
    OUTCOMES,
    format_timestamp,
    new_event_id,
    parse_timestamp,
)

__all__ = ["Checked", "Event", "check"]


def _search(regex: re.Pattern[str]) -> str:
    """The twin's ``fullmatch`` pattern as the ``search`` pattern msgspec applies (``\\Z``, not
    ``$``, which would let a trailing newline through)."""
    return rf"^(?:{regex.pattern})\Z"


def _text(max_chars: int, pattern: re.Pattern[str] | None = None) -> msgspec.Meta:
    return msgspec.Meta(
        min_length=1, max_length=max_chars, pattern=None if pattern is None else _search(pattern)
    )


_EventId = Annotated[str, _text(LIMITS.max_id_chars, _ID_RE)]
_Action = Annotated[str, _text(LIMITS.max_action_chars, _ACTION_RE)]
_PartyId = Annotated[str, _text(LIMITS.max_actor_id_chars)]
_Type = Annotated[str, _text(LIMITS.max_type_chars, _TYPE_RE)]
_Name = Annotated[str, _text(LIMITS.max_name_chars)]
_Reason = Annotated[str, _text(LIMITS.max_reason_chars)]
_Context = Annotated[str, _text(LIMITS.max_context_chars)]
_UserAgent = Annotated[str, _text(LIMITS.max_user_agent_chars)]
_Timestamp = Annotated[str, _text(64)]
_Outcome = Literal["failure", "success"]
_Category = Literal["access", "audit", "error", "performance", "security", "system"]

_UNSET: Final = msgspec.UNSET
_Unset = msgspec.UnsetType


# Fields are declared in sorted order and encoded in declaration order, so the encoder sorts
# nothing but metadata's keys; UNSET fields (what the normal form leaves out) are not written.
class Actor(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
    id: _PartyId
    name: _Name | _Unset = _UNSET
    type: _Type = "user"


class Target(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
    id: _PartyId
    name: _Name | _Unset = _UNSET
    type: _Type


class Context(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
    ip: _Context | _Unset = _UNSET
    location: _Context | _Unset = _UNSET
    request_id: _Context | _Unset = _UNSET
    session_id: _Context | _Unset = _UNSET
    user_agent: _UserAgent | _Unset = _UNSET


class Event(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
    """An event in normal form (after :func:`check`; as converted, ``id`` may be UNSET and
    ``occurred_at`` not yet normalised)."""

    action: _Action
    actor: Actor
    category: _Category = "audit"
    context: Context = msgspec.field(default_factory=Context)
    id: _EventId | _Unset = _UNSET
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    occurred_at: _Timestamp
    outcome: _Outcome = "success"
    reason: _Reason | _Unset = _UNSET
    targets: Annotated[list[Target], msgspec.Meta(max_length=LIMITS.max_targets)] = msgspec.field(
        default_factory=list
    )


# The compiled tables must be the twin's: a change there that is not made here fails at import.
assert set(_Outcome.__args__) == OUTCOMES and set(_Category.__args__) == CATEGORIES  # type: ignore[attr-defined]
assert {f.encode_name for f in msgspec.structs.fields(Event)} == EVENT_FIELDS

_ENCODE: Final = msgspec.json.Encoder(order="deterministic").encode  # sorts dict keys


class Checked(NamedTuple):
    """An event the fast path vouches for."""

    event: Event  # the normal form
    occurred_at: int  # UTC microseconds
    content: bytes  # RFC 8785 canonical JSON of the normal form


def check(raw: Any, *, make_id: Callable[[], str] = new_event_id) -> Checked | None:
    """The normal form, ``occurred_at`` in microseconds and the canonical bytes of ``raw`` (a
    JSON-decoded event), exactly as ``auditkeep_client.schema.check_event`` and
    ``canonical_json`` make them (with the default limits); ``None`` when this path cannot
    vouch for that, and the caller must ask the twin."""
    if not _plain_containers(raw):
        return None
    try:
        event = msgspec.convert(raw, Event, strict=True)
    except (msgspec.ValidationError, UnicodeEncodeError):  # the latter: a lone surrogate key
        return None
    if not _metadata_exact(event.metadata, 1):
        return None
    ip = event.context.ip
    if ip is not _UNSET and not _is_ip(ip):
        return None
    timestamp = _timestamp(event.occurred_at)
    if timestamp is None:
        return None
    occurred, event.occurred_at = timestamp
    if event.id is _UNSET:
        event.id = make_id()
    try:
        content = _ENCODE(event)
    except UnicodeEncodeError:  # a lone surrogate: invalid, the twin says where
        return None
    if len(content) > LIMITS.max_metadata_bytes:  # else metadata, a part of it, is below too
        if len(content) > LIMITS.max_event_bytes:
            return None
        if len(_ENCODE(event.metadata)) > LIMITS.max_metadata_bytes:
            return None
    return Checked(event, occurred, content)


def _plain_containers(raw: Any) -> bool:
    """The objects and arrays the twin requires to be ``dict`` and ``list`` are exactly that
    (msgspec would also take tuples and other mappings, which the twin rejects); subclasses
    go to the twin too. Those inside metadata are checked by :func:`_metadata_exact`."""
    if type(raw) is not dict or type(raw.get("actor")) is not dict:
        return False
    for name in ("context", "metadata"):
        value = raw.get(name)
        if value is not None and type(value) is not dict:
            return False
    targets = raw.get("targets")
    if targets is not None:
        if type(targets) is not list:
            return False
        for target in targets:
            if type(target) is not dict:
                return False
    return True


_MAX_DEPTH: Final = LIMITS.max_metadata_depth
_MAX_KEY: Final = LIMITS.max_metadata_key_chars
_MIN_PLAIN_FLOAT: Final = 1e-5


def _metadata_exact(value: Any, depth: int) -> bool:
    """Metadata the twin accepts (depth, non-empty keys within their length, safe integers,
    finite numbers, plain JSON types) and whose sorted msgspec encoding is RFC 8785 (keys in
    the BMP, and floats that msgspec writes as ECMAScript does: not integral and at least
    1e-5 in magnitude; a float with an integral value is written ``2.0`` instead of ``2``,
    and a smaller one in exponent form from 1e-5 down, ECMAScript only from 1e-7 down).
    Lone surrogates are left to the encoder, which refuses them. ``value`` is at ``depth``
    (metadata itself is at 1)."""
    if depth > _MAX_DEPTH:
        return False
    kind = type(value)
    if kind is dict:
        if value and depth == _MAX_DEPTH:  # its members would be one level too deep
            return False
        for key, item in value.items():
            if type(key) is not str or not key or len(key) > _MAX_KEY:
                return False
            if not key.isascii() and any(ord(c) > 0xFFFF for c in key):
                return False  # UTF-16 order differs from code point order
            if type(item) is not str and not _metadata_exact(item, depth + 1):
                return False
        return True
    if kind is list:
        if value and depth == _MAX_DEPTH:
            return False
        for item in value:
            if type(item) is not str and not _metadata_exact(item, depth + 1):
                return False
        return True
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_MAX_SAFE_INT <= value <= _MAX_SAFE_INT)
    if kind is float:
        return bool(_MIN_PLAIN_FLOAT <= abs(value) < _MAX_SAFE_INT and not value.is_integer())
    return False


@functools.lru_cache(maxsize=4096)
def _is_ip(text: str) -> bool:
    """The twin's check of ``context.ip`` (``ipaddress.ip_address``), remembered: the same
    addresses come back event after event."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


_UTC_TEXT: Final = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}):([0-5][0-9])(?:\.([0-9]{1,6}))?Z"
)
_EPOCH: Final = datetime(1970, 1, 1)
_MICROSECOND: Final = timedelta(microseconds=1)


@functools.lru_cache(maxsize=4096)  # the events of a batch mostly share a few minutes
def _minute_micros(minute: str) -> int | None:
    """UTC microseconds of ``YYYY-MM-DDTHH:MM``; None if it is no valid minute from 1970 on."""
    try:
        micros: int = (datetime.fromisoformat(minute) - _EPOCH) // _MICROSECOND
    except ValueError:  # a day or an hour out of range: the twin decides
        return None
    return micros if micros >= 0 else None


def _timestamp(text: str) -> tuple[int, str] | None:
    """``(micros, normal form)`` of ``occurred_at``. UTC with at most six fraction digits and
    no leap second (what clients and the SDK send) is read here; anything else by the twin's
    ``parse_timestamp``; ``None`` if that refuses it."""
    m = _UTC_TEXT.fullmatch(text)
    if m is not None:
        minute = _minute_micros(m[1])
        if minute is not None:
            whole = minute + int(m[2]) * 1_000_000
            fraction = m[3]
            if fraction is None:
                return whole, text[:-1] + ".000000Z"
            if len(fraction) == 6:
                return whole + int(fraction), text
            fraction = fraction.ljust(6, "0")
            return whole + int(fraction), f"{text[:19]}.{fraction}Z"
    try:
        micros = parse_timestamp(text)
    except ValueError:
        return None
    return micros, format_timestamp(micros)
