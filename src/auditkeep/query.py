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


def encode_cursor(position: Position, descending: bool) -> str:
    raw = orjson.dumps({"v": 1, "t": position.occurred_at, "s": position.seq, "d": descending})
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[Position, bool]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = orjson.loads(raw)
        position = Position(int(data["t"]), int(data["s"]))
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
        limit=_limit(params),
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


def _limit(params: Mapping[str, str]) -> int:
    text = params.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"limit={text[:20]!r} is not a whole number") from None
    if not 1 <= value <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    return value


def _time(params: Mapping[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None:
        return None
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}") from None
