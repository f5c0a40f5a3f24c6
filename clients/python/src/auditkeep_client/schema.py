"""The auditkeep event schema: validation, normalisation and canonical encoding.

This module is the single definition of what an event is. The SDK uses it to reject bad events
at the call site; the server uses the very same code before it stores anything, so an event the
SDK accepts is one the server accepts (barring server-side limits such as rate limits).

It depends on the standard library only (``orjson`` is used when importable, as a faster
encoder that produces identical bytes).

Public surface:

- :func:`normalize_event` turns a JSON-decoded event into its normal form or raises
  :class:`EventValidationError` listing every problem with a path and a message.
- :func:`canonical_json` encodes a JSON value as RFC 8785 (JSON Canonicalization Scheme) bytes.
- :func:`parse_timestamp` / :func:`format_timestamp` convert RFC 3339 timestamps to and from
  integer microseconds since the Unix epoch (UTC), the server's storage form.
- :func:`new_event_id` makes a time-ordered, collision-resistant id (UUIDv7 text form).
- :func:`event_json_schema` is this definition as JSON Schema (draft 2020-12), built from the
  same tables and patterns the checks use; the server's /openapi.json publishes it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

try:  # orjson is optional; its output equals the pure encoder's whenever the fast path is taken.
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised in the SDK's light install
    _orjson = None  # type: ignore[assignment]

__all__ = [
    "CATEGORIES",
    "LIMITS",
    "MAX_ERRORS",
    "OUTCOMES",
    "EventValidationError",
    "FieldError",
    "Limits",
    "canonical_json",
    "check_event",
    "check_event_size",
    "event_json_schema",
    "format_timestamp",
    "new_event_id",
    "normalize_event",
    "parse_timestamp",
]


@dataclass(frozen=True)
class Limits:
    """Documented size limits for one event (docs/event-schema.md lists the same numbers)."""

    max_event_bytes: int = 64 * 1024
    max_metadata_bytes: int = 16 * 1024
    max_metadata_depth: int = 5
    max_metadata_key_chars: int = 128
    max_targets: int = 20
    max_id_chars: int = 128
    max_action_chars: int = 128
    max_actor_id_chars: int = 256
    max_name_chars: int = 256
    max_type_chars: int = 64
    max_reason_chars: int = 1024
    max_user_agent_chars: int = 1024
    max_context_chars: int = 256


LIMITS: Final = Limits()

CATEGORIES: Final = frozenset({"audit", "access", "error", "security", "performance", "system"})
OUTCOMES: Final = frozenset({"success", "failure"})

EVENT_FIELDS: Final = frozenset(
    {
        "id",
        "action",
        "occurred_at",
        "actor",
        "targets",
        "outcome",
        "reason",
        "context",
        "metadata",
        "category",
    }
)
_ACTOR_FIELDS: Final = frozenset({"id", "type", "name"})
_TARGET_FIELDS: Final = frozenset({"id", "type", "name"})
_CONTEXT_FIELDS: Final = frozenset({"ip", "user_agent", "request_id", "session_id", "location"})

_MAX_SAFE_INT: Final = 2**53 - 1
_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]*")
_ACTION_RE: Final = re.compile(r"[a-z0-9_\-]+(\.[a-z0-9_\-]+)+")
_TYPE_RE: Final = re.compile(r"[a-z0-9_\-.]+")
_TS_RE: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FieldError:
    """One problem with an event: where (a dotted path such as ``targets[2].id``) and what."""

    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


MAX_ERRORS: Final = 50
"""Most problems one EventValidationError lists; beyond them it only counts (``omitted``), so
a hostile event with a million unknown fields cannot make a million-line answer."""
_MESSAGE_ERRORS: Final = 5  # problems spelled out in the exception's message


class EventValidationError(ValueError):
    """The event breaks the schema. ``errors`` lists the problems found (every one, up to
    MAX_ERRORS); ``omitted`` counts those beyond. The message names the first few."""

    def __init__(self, errors: list[FieldError], omitted: int = 0) -> None:
        self.errors = errors
        self.omitted = omitted
        shown = errors[:_MESSAGE_ERRORS]
        message = "; ".join(f"{e.path}: {e.message}" if e.path else e.message for e in shown)
        more = len(errors) - len(shown) + omitted
        if more:
            message += f"; and {more} more problem{'s' if more > 1 else ''}"
        super().__init__(message)

    @property
    def total(self) -> int:
        """How many problems were found, listed or not."""
        return len(self.errors) + self.omitted


# ---------------------------------------------------------------------------------------------
# Timestamps


def parse_timestamp(value: str) -> int:
    """Parse an RFC 3339 timestamp (with ``Z`` or a numeric offset) to UTC microseconds.

    Fractions beyond microseconds are truncated. Raises ValueError with a readable message.
    """
    m = _TS_RE.fullmatch(value)
    if m is None:
        raise ValueError(
            f"{value[:64]!r} is not an RFC 3339 timestamp; "
            "use e.g. 2026-11-23T18:20:19Z or 2026-11-23T19:20:19.250+01:00"
        )
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    frac = (m.group(7) or "")[:6].ljust(6, "0")
    if second == 60:  # a leap second is folded into the last microsecond of the minute
        second, frac = 59, "999999"
    try:
        dt = datetime(year, month, day, hour, minute, second, int(frac), tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"{value[:64]!r} is not a valid date and time: {exc}") from None
    if m.group(8) is None:
        sign = 1 if m.group(9) == "+" else -1
        off_h, off_m = int(m.group(10)), int(m.group(11))
        if off_h > 23 or off_m > 59:
            raise ValueError(f"{value[:64]!r} has an invalid UTC offset")
        try:
            dt -= sign * timedelta(hours=off_h, minutes=off_m)
        except OverflowError:  # the offset moves it past 9999-12-31 or before 0001-01-01
            raise ValueError(
                f"{value[:64]!r} is outside the supported range (1970-01-01T00:00:00Z to "
                "9999-12-31T23:59:59.999999Z once its UTC offset is applied)"
            ) from None
    if dt.year < 1970:
        raise ValueError(f"{value[:64]!r} is before 1970-01-01T00:00:00Z")
    delta = dt - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def format_timestamp(micros: int) -> str:
    """Format UTC microseconds as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (the normal form)."""
    secs, us = divmod(micros, 1_000_000)
    t = time.gmtime(secs)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{us:06d}Z"
    )


def now_micros() -> int:
    """The current time in UTC microseconds."""
    return time.time_ns() // 1000


# ---------------------------------------------------------------------------------------------
# Ids


def new_event_id() -> str:
    """A UUIDv7 (RFC 9562) in text form: time-ordered, 74 random bits."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = rand >> 68 & 0xFFF
    rand_b = rand & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# ---------------------------------------------------------------------------------------------
# Canonical encoding (RFC 8785, JSON Canonicalization Scheme)

_ESCAPES: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_NEEDS_ESCAPE: Final = re.compile(r'["\\\x00-\x1f]')


def _escape_char(m: re.Match[str]) -> str:
    c = m.group(0)
    return _ESCAPES.get(c) or f"\\u{ord(c):04x}"


def _jcs_string(s: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(_escape_char, s) + '"'


def _jcs_number(x: float) -> str:
    """ECMAScript Number.prototype.toString, as RFC 8785 section 3.2.2.3 requires."""
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError("NaN and Infinity have no JSON form")
    if x == 0:
        return "0"
    if x < 0:
        return "-" + _jcs_number(-x)
    mantissa, _, exp_text = repr(x).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = int_part + frac_part
    # x == 0.DIGITS * 10**n (ECMAScript's n); strip zeros without moving the value.
    n = len(int_part) + int(exp_text or 0)
    stripped = digits.lstrip("0")
    n -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    sign = "+" if e >= 0 else "-"
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{head}e{sign}{abs(e)}"


def _utf16_key(s: str) -> bytes:
    return s.encode("utf-16-be", "surrogatepass")


def _jcs(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_jcs_string(value))
    elif isinstance(value, int):
        # RFC 8785 numbers are IEEE doubles: beyond ±(2^53-1) an integer takes its double's form.
        safe = -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT
        out.append(str(value) if safe else _jcs_number(float(value)))
    elif isinstance(value, float):
        out.append(_jcs_number(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value, key=_utf16_key)):
            if not isinstance(key, str):
                raise TypeError(f"object keys must be strings, not {type(key).__name__}")
            if i:
                out.append(",")
            out.append(_jcs_string(key))
            out.append(":")
            _jcs(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _jcs(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} has no JSON form")


def canonical_json_pure(value: Any) -> bytes:
    """RFC 8785 canonical JSON, in pure Python (the reference the fast path is tested against)."""
    out: list[str] = []
    _jcs(value, out)
    return "".join(out).encode("utf-8")


def _orjson_safe(value: Any) -> bool:
    """True when orjson's sorted output is byte-identical to RFC 8785 for this value.

    orjson escapes strings exactly as RFC 8785 does, but it formats floats differently and
    orders keys by code point rather than UTF-16 code unit (which differ only when a key holds
    a character above U+FFFF). So: no floats, BMP-only keys, integers in the safe range.
    """
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            for k, item in v.items():
                if not k.isascii() and any(ord(c) > 0xFFFF for c in k):
                    return False
                stack.append(item)
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, float) or (
            isinstance(v, int)
            and not isinstance(v, bool)
            and not -_MAX_SAFE_INT <= v <= _MAX_SAFE_INT
        ):
            return False
    return True


def canonical_json(value: Any, *, orjson_exact: bool | None = None) -> bytes:
    """Encode a JSON value as RFC 8785 canonical JSON (UTF-8 bytes).

    Keys sorted by UTF-16 code units, no insignificant whitespace, minimal string escaping,
    numbers in ECMAScript form (integers beyond ±(2^53-1) take the form of their double;
    event validation rejects them so that no number loses precision).

    ``orjson_exact`` skips the walk that decides whether orjson's output is exact, when the
    caller already knows (normalize_event works it out while validating).
    """
    exact = _orjson_safe(value) if orjson_exact is None else orjson_exact
    if _orjson is not None and exact:
        return _orjson.dumps(value, option=_orjson.OPT_SORT_KEYS)
    return canonical_json_pure(value)


# ---------------------------------------------------------------------------------------------
# Validation


class _Checker:
    """Collects FieldErrors while an event is walked once."""

    __slots__ = ("errors", "omitted", "orjson_exact")

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.omitted = 0  # problems found beyond MAX_ERRORS
        # False once a value is seen whose orjson encoding differs from RFC 8785 (a float, or a
        # key above U+FFFF); fixed-shape fields hold only strings, so metadata decides this.
        self.orjson_exact = True

    def add(self, path: str, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(FieldError(path, message))
        else:
            self.omitted += 1

    def string(
        self,
        obj: dict[str, Any],
        key: str,
        path: str,
        max_chars: int,
        *,
        required: bool,
        pattern: re.Pattern[str] | None = None,
        hint: str = "",
    ) -> str | None:
        value = obj.get(key)
        if value is None:
            if required:
                self.add(path, "is required" + (f": {hint}" if hint else ""))
            elif key in obj:
                self.add(path, "must be a string or omitted, not null")
            return None
        if not isinstance(value, str):
            self.add(path, f"must be a string, not {_json_type(value)}")
            return None
        if not value:
            self.add(path, "must not be empty")
            return None
        if len(value) > max_chars:
            self.add(path, f"is {len(value)} characters long; the limit is {max_chars}")
            return None
        if pattern is not None and pattern.fullmatch(value) is None:
            self.add(path, f"{value[:64]!r} is not allowed" + (f": {hint}" if hint else ""))
            return None
        if not _valid_unicode(value):
            self.add(path, "contains a lone surrogate; strings must be valid Unicode")
            return None
        return value

    def unknown(self, obj: dict[str, Any], allowed: frozenset[str], path: str) -> None:
        for key in obj:
            if key not in allowed:
                if len(self.errors) >= MAX_ERRORS:  # counted only: skip building the message
                    self.omitted += 1
                    continue
                name = key if len(key) <= 64 else key[:64] + "…"
                where = f"{path}.{name}" if path else name
                self.add(
                    where,
                    f"is not a known field; allowed fields are {', '.join(sorted(allowed))}"
                    + ("; put custom data in metadata" if path in ("", "actor") else ""),
                )

    def object(self, value: Any, path: str) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.add(path, f"must be an object, not {_json_type(value)}")
            return None
        return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _valid_unicode(s: str) -> bool:
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_json_value(c: _Checker, value: Any, path: str, depth: int, limits: Limits) -> None:
    """Metadata values: plain JSON, bounded depth, safe integers, finite numbers, valid text."""
    if depth > limits.max_metadata_depth:
        c.add(path, f"nests deeper than {limits.max_metadata_depth} levels")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                c.add(path, "object keys must be non-empty strings")
                continue
            if len(key) > limits.max_metadata_key_chars:
                c.add(f"{path}.{key[:32]}…", f"key is longer than {limits.max_metadata_key_chars}")
                continue
            if not key.isascii():
                if not _valid_unicode(key):
                    c.add(path, "a key contains a lone surrogate; strings must be valid Unicode")
                    continue
                if any(ord(ch) > 0xFFFF for ch in key):
                    c.orjson_exact = False
            _check_json_value(c, item, f"{path}.{key}", depth + 1, limits)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json_value(c, item, f"{path}[{i}]", depth + 1, limits)
    elif isinstance(value, str):
        if not _valid_unicode(value):
            c.add(path, "contains a lone surrogate; strings must be valid Unicode")
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int):
        if not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            c.add(path, "integer is outside ±(2^53-1); send large numbers as strings")
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            c.add(path, "NaN and Infinity are not allowed")
        elif not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            c.add(path, "number is outside ±(2^53-1); send large numbers as strings")
        c.orjson_exact = False
    else:
        c.add(path, f"{type(value).__name__} is not a JSON value")


def _check_party(
    c: _Checker, raw: Any, path: str, allowed: frozenset[str], limits: Limits, default_type: str
) -> dict[str, str] | None:
    obj = c.object(raw, path)
    if obj is None:
        return None
    c.unknown(obj, allowed, path)
    pid = c.string(obj, "id", f"{path}.id", limits.max_actor_id_chars, required=True)
    ptype = c.string(
        obj,
        "type",
        f"{path}.type",
        limits.max_type_chars,
        required=not default_type,
        pattern=_TYPE_RE,
        hint="lower-case letters, digits, '_', '-', '.'",
    )
    name = c.string(obj, "name", f"{path}.name", limits.max_name_chars, required=False)
    out = {"id": pid or "", "type": ptype or default_type}
    if name is not None:
        out["name"] = name
    return out


def _check_ip(c: _Checker, value: str, path: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        c.add(path, f"{value[:64]!r} is not an IPv4 or IPv6 address")
    return value


def normalize_event(
    raw: Any,
    *,
    limits: Limits = LIMITS,
    make_id: Callable[[], str] = new_event_id,
) -> tuple[dict[str, Any], int]:
    """Validate a JSON-decoded event and return ``(normal_form, occurred_at_micros)``.

    See :func:`check_event`, which also says whether orjson encodes the event exactly.
    """
    event, occurred, _ = check_event(raw, limits=limits, make_id=make_id)
    return event, occurred


def check_event_size(
    event: Mapping[str, Any], content: bytes | None = None, limits: Limits = LIMITS
) -> None:
    """Raise EventValidationError when the event's canonical form (``content``, computed when
    not given) is over ``limits.max_event_bytes``: each field has its own limit, and this one
    bounds their sum, so one event can never grow a stored row or a leaf without bound."""
    size = len(canonical_json(event) if content is None else content)
    if size > limits.max_event_bytes:
        raise EventValidationError(
            [
                FieldError(
                    "",
                    f"the event is {size} bytes in canonical form; the limit is "
                    f"{limits.max_event_bytes} (shrink metadata or targets)",
                )
            ]
        )


def check_event(
    raw: Any,
    *,
    limits: Limits = LIMITS,
    make_id: Callable[[], str] = new_event_id,
) -> tuple[dict[str, Any], int, bool]:
    """Validate a JSON-decoded event: ``(normal_form, occurred_at_micros, orjson_exact)``.

    The normal form has every field present (defaults filled in: ``category`` "audit",
    ``outcome`` "success", empty ``targets``/``context``/``metadata``), ``occurred_at`` in UTC
    with microseconds, and an ``id`` (made by ``make_id`` when the client gave none).
    ``orjson_exact`` is the verdict to pass to :func:`canonical_json`. Raises
    EventValidationError listing every problem.
    """
    c = _Checker()
    if not isinstance(raw, dict):
        raise EventValidationError(
            [FieldError("", f"an event must be an object, not {_json_type(raw)}")]
        )
    c.unknown(raw, EVENT_FIELDS, "")

    if "id" in raw:
        event_id = c.string(
            raw,
            "id",
            "id",
            limits.max_id_chars,
            required=True,
            pattern=_ID_RE,
            hint="use letters, digits and . _ : - (a UUID or ULID is ideal)",
        )
    else:
        event_id = make_id()

    action = c.string(
        raw,
        "action",
        "action",
        limits.max_action_chars,
        required=True,
        pattern=_ACTION_RE,
        hint="use 'namespace.verb' in lower case, e.g. 'user.login' or 'document.deleted'",
    )

    occurred: int | None = None
    ts_text = c.string(
        raw,
        "occurred_at",
        "occurred_at",
        64,
        required=True,
        hint="the time the action happened, RFC 3339, e.g. 2026-11-23T18:20:19Z",
    )
    if ts_text is not None:
        try:
            occurred = parse_timestamp(ts_text)
        except ValueError as exc:
            c.add("occurred_at", str(exc))

    actor: dict[str, str] | None = None
    if "actor" in raw:
        actor = _check_party(c, raw["actor"], "actor", _ACTOR_FIELDS, limits, "user")
    else:
        c.add("actor", 'is required: who did it, e.g. {"id": "user_123", "type": "user"}')

    targets: list[dict[str, str]] = []
    raw_targets = raw.get("targets", [])
    if not isinstance(raw_targets, list):
        c.add("targets", f"must be an array of objects, not {_json_type(raw_targets)}")
    elif len(raw_targets) > limits.max_targets:
        c.add("targets", f"has {len(raw_targets)} entries; the limit is {limits.max_targets}")
    else:
        for i, t in enumerate(raw_targets):
            target = _check_party(c, t, f"targets[{i}]", _TARGET_FIELDS, limits, "")
            if target is not None:
                targets.append(target)

    outcome = raw.get("outcome", "success")
    if not isinstance(outcome, str) or outcome not in OUTCOMES:
        c.add("outcome", f"must be 'success' or 'failure', not {str(outcome)[:32]!r}")
    reason = c.string(raw, "reason", "reason", limits.max_reason_chars, required=False)

    category = raw.get("category", "audit")
    if not isinstance(category, str) or category not in CATEGORIES:
        c.add(
            "category",
            f"must be one of {', '.join(sorted(CATEGORIES))}, not {str(category)[:32]!r}",
        )

    context: dict[str, str] = {}
    raw_context = raw.get("context", {})
    ctx = c.object(raw_context, "context")
    if ctx is not None:
        c.unknown(ctx, _CONTEXT_FIELDS, "context")
        for key in ("ip", "user_agent", "request_id", "session_id", "location"):
            max_chars = (
                limits.max_user_agent_chars if key == "user_agent" else limits.max_context_chars
            )
            value = c.string(ctx, key, f"context.{key}", max_chars, required=False)
            if value is not None:
                context[key] = _check_ip(c, value, "context.ip") if key == "ip" else value

    metadata = raw.get("metadata", {})
    if c.object(metadata, "metadata") is not None:
        _check_json_value(c, metadata, "metadata", 1, limits)

    if c.errors:
        raise EventValidationError(c.errors, c.omitted)

    assert occurred is not None and action is not None and actor is not None
    event: dict[str, Any] = {
        "id": event_id,
        "action": action,
        "occurred_at": format_timestamp(occurred),
        "actor": actor,
        "targets": targets,
        "outcome": outcome,
        "context": context,
        "metadata": metadata,
        "category": category,
    }
    if reason is not None:
        event["reason"] = reason
    if metadata:
        size = len(canonical_json(metadata, orjson_exact=c.orjson_exact))
        if size > limits.max_metadata_bytes:
            raise EventValidationError(
                [
                    FieldError(
                        "metadata",
                        f"is {size} bytes encoded; the limit is {limits.max_metadata_bytes}",
                    )
                ]
            )
    return event, occurred, c.orjson_exact


# ---------------------------------------------------------------------------------------------
# The schema as JSON Schema


def _pattern(regex: re.Pattern[str]) -> str:
    """A fullmatch pattern as an anchored JSON Schema (ECMA-262) pattern."""
    return f"^{regex.pattern}$"


def _text(max_chars: int, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_chars, **extra}


def _party_schema(
    fields: frozenset[str], limits: Limits, description: str, *, type_required: bool
) -> dict[str, Any]:
    properties = {
        "id": _text(limits.max_actor_id_chars),
        "type": _text(limits.max_type_chars, pattern=_pattern(_TYPE_RE)),
        "name": _text(limits.max_name_chars),
    }
    return {
        "type": "object",
        "description": description,
        "additionalProperties": False,
        "required": ["id", "type"] if type_required else ["id"],
        "properties": {name: properties[name] for name in sorted(fields)},
    }


def event_json_schema(limits: Limits = LIMITS) -> dict[str, Any]:
    """An event as accepted by :func:`check_event`, as a JSON Schema object.

    Built from the tables the checks use (fields, limits, patterns, categories, outcomes), so
    it cannot drift from them. What JSON Schema cannot say is in descriptions: the encoded size
    and depth of ``metadata``, the whole event's canonical size, safe integers, and
    ``occurred_at`` from 1970 on."""
    context = {
        name: _text(
            limits.max_user_agent_chars if name == "user_agent" else limits.max_context_chars
        )
        for name in sorted(_CONTEXT_FIELDS)
    }
    context["ip"]["description"] = "An IPv4 or IPv6 address"
    properties: dict[str, Any] = {
        "id": _text(
            limits.max_id_chars,
            pattern=_pattern(_ID_RE),
            description="Client-made idempotency key (UUID/ULID). Made by the server if absent.",
        ),
        "action": _text(
            limits.max_action_chars, pattern=_pattern(_ACTION_RE), examples=["user.login"]
        ),
        "occurred_at": {
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339, from 1970-01-01T00:00:00Z; stored in UTC to microseconds",
        },
        "actor": _party_schema(
            _ACTOR_FIELDS, limits, "Who did it (default type 'user')", type_required=False
        ),
        "targets": {
            "type": "array",
            "maxItems": limits.max_targets,
            "items": _party_schema(_TARGET_FIELDS, limits, "What", type_required=True),
        },
        "outcome": {"enum": sorted(OUTCOMES), "default": "success"},
        "reason": _text(limits.max_reason_chars),
        "context": {"type": "object", "additionalProperties": False, "properties": context},
        "metadata": {
            "type": "object",
            "description": f"Free-form JSON, at most {limits.max_metadata_bytes} bytes encoded, "
            f"{limits.max_metadata_depth} levels deep, integers within ±(2^53-1).",
        },
        "category": {"enum": sorted(CATEGORIES), "default": "audit"},
    }
    assert set(properties) == EVENT_FIELDS
    return {
        "type": "object",
        "description": f"At most {limits.max_event_bytes} bytes in canonical form (RFC 8785).",
        "additionalProperties": False,
        "required": ["action", "occurred_at", "actor"],
        "properties": {name: properties[name] for name in sorted(EVENT_FIELDS)},
    }
