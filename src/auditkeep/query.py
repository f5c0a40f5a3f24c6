"""Query parameters -> EventFilter/PageRequest, and the opaque cursor.

The cursor is base64url of a small JSON object holding the sort key of the last row returned
(occurred_at, seq) and the direction. It carries no tenant: tenant scoping comes from the key,
so a forged cursor can only move within the caller's own events.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import overload

import orjson

from auditkeep.errors import BadRequest
from auditkeep.model import parse_timestamp
from auditkeep.store.base import EventFilter, PageRequest, Position

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
QUERY_PARAMS = frozenset(
    {
        "actor_id",
        "action",
        "target_id",
        "target_type",
        "outcome",
        "category",
        "since",
        "until",
        "limit",
        "cursor",
        "order",
    }
)
_PREFIX_RE = re.compile(r"[a-z0-9_\-]+(\.[a-z0-9_\-]+)*\.\*")
MAX_INT = 2**63 - 1
"""The largest integer any parameter, seq, size or time may hold (both stores use int64)."""


@overload
def int_param(
    params: Mapping[str, str], name: str, default: int, *, minimum: int = 0, maximum: int = MAX_INT
) -> int: ...
@overload
def int_param(
    params: Mapping[str, str],
    name: str,
    default: None = None,
    *,
    minimum: int = 0,
    maximum: int = MAX_INT,
) -> int | None: ...
def int_param(
    params: Mapping[str, str],
    name: str,
    default: int | None = None,
    *,
    minimum: int = 0,
    maximum: int = MAX_INT,
) -> int | None:
    """The whole-number query parameter ``name`` within ``[minimum, maximum]`` (``default``
    when absent or empty). Every endpoint reads its integers through this, so a value beyond
    the stores' int64 range is a 400 that says so, never an overflow deeper down."""
    text = params.get(name)
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise BadRequest(
            f"{name} must be a whole number between {minimum} and {maximum}, got {text[:40]!r}"
        )
    value = int(text)
    if not minimum <= value <= maximum:
        raise BadRequest(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def encode_cursor(position: Position, descending: bool) -> str:
    raw = orjson.dumps({"v": 1, "t": position.occurred_at, "s": position.seq, "d": descending})
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[Position, bool]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = orjson.loads(raw)
        t, seq = data["t"], data["s"]
        if not (type(t) is int and type(seq) is int and 0 <= t <= MAX_INT and 0 <= seq <= MAX_INT):
            raise ValueError("position out of range")
        position = Position(t, seq)
        descending = bool(data["d"])
        if data.get("v") != 1:
            raise ValueError("version")
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise BadRequest(
            "the cursor is not one this server issued; pass next_cursor from a previous page "
            "unchanged, or omit it to start from the beginning"
        ) from None
    return position, descending


def parse_query(params: Mapping[str, str]) -> PageRequest:
    """Validate query-string parameters of GET /v1/events; raises BadRequest."""
    unknown = set(params) - QUERY_PARAMS
    if unknown:
        raise BadRequest(
            f"unknown query parameter(s) {', '.join(sorted(unknown))}; "
            f"supported: {', '.join(sorted(QUERY_PARAMS))}"
        )
    action = params.get("action")
    action_prefix = None
    if action is not None and action.endswith("*"):
        if _PREFIX_RE.fullmatch(action) is None:
            raise BadRequest(
                f"action={action!r}: a prefix filter ends in '.*' after a namespace, "
                "e.g. action=user.* matches user.login and user.deleted"
            )
        action_prefix, action = action[:-1], None
    since = _time(params, "since")
    until = _time(params, "until")
    if since is not None and until is not None and since >= until:
        raise BadRequest("since must be earlier than until")
    outcome = params.get("outcome")
    if outcome is not None and outcome not in ("success", "failure"):
        raise BadRequest("outcome must be 'success' or 'failure'")
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadRequest("order must be 'asc' or 'desc'")
    descending = order == "desc"
    after = None
    if "cursor" in params:
        after, cursor_desc = decode_cursor(params["cursor"])
        if cursor_desc != descending:
            raise BadRequest("this cursor belongs to a query with the other order")
    return PageRequest(
        limit=int_param(params, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT),
        after=after,
        descending=descending,
        filters=EventFilter(
            actor_id=params.get("actor_id"),
            action=action,
            action_prefix=action_prefix,
            target_id=params.get("target_id"),
            target_type=params.get("target_type"),
            outcome=outcome,
            category=params.get("category"),
            since=since,
            until=until,
        ),
    )


def _time(params: Mapping[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None:
        return None
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}") from None
