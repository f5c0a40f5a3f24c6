"""Query parameters: their declarations (``Param``), the event filters, and the opaque cursor.

Every endpoint reads its query and path parameters through ``Param`` declarations: each
names the parameter, its type, bounds and description, parses and checks a value (a 400 that
says what is wrong), and describes itself as an OpenAPI parameter, so /openapi.json is built
from the very declarations the handlers parse with.

The cursor is base64url of a small JSON object holding the sort key of the last row returned
(occurred_at, seq) and the direction. It carries no tenant: tenant scoping comes from the key,
so a forged cursor can only move within the caller's own events.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

import orjson

from auditkeep.errors import BadRequest
from auditkeep.model import parse_timestamp
from auditkeep.store.base import EventFilter, PageRequest, Position

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
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


@dataclass(frozen=True)
class Param:
    """One query or path parameter of an endpoint: parsed by ``parse`` (``parse_params``) and
    described by ``openapi``. ``kind`` "integer" reads through ``int_param`` (bounds default
    to 0 and int64); "number" is a finite decimal; "date-time" an RFC 3339 time, parsed to
    UTC microseconds; "string" is taken as is, or must be one of ``enum``."""

    name: str
    description: str
    kind: Literal["string", "integer", "number", "date-time"] = "string"
    default: Any = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    enum: tuple[str, ...] = ()
    required: bool = False
    location: Literal["query", "path"] = "query"

    def parse(self, params: Mapping[str, str]) -> Any:
        """This parameter's value in ``params`` (``default`` when absent); BadRequest if bad."""
        text = params.get(self.name)
        if text is None or (text == "" and self.kind in ("integer", "number")):
            if self.required:
                raise BadRequest(f"{self.name} ({self.description.lower()}) is required")
            return self.default
        if self.kind == "integer":
            return int_param(
                params,
                self.name,
                self.default,
                minimum=int(self.minimum or 0),
                maximum=MAX_INT if self.maximum is None else int(self.maximum),
            )
        if self.kind == "number":
            return self._number(text)
        if self.kind == "date-time":
            try:
                return parse_timestamp(text)
            except ValueError as exc:
                raise BadRequest(f"{self.name}: {exc}") from None
        if self.enum and text not in self.enum:
            raise BadRequest(f"{self.name} must be {_choices(self.enum)}, got {text[:40]!r}")
        return text

    def _number(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        low = -math.inf if self.minimum is None else self.minimum
        high = math.inf if self.maximum is None else self.maximum
        if not (math.isfinite(value) and low <= value <= high):
            bounds = (
                f" between {low:g} and {high:g}"
                if self.maximum is not None
                else f" of at least {low:g}"
                if self.minimum is not None
                else ""
            )
            raise BadRequest(f"{self.name} must be a number{bounds}, got {text[:40]!r}")
        return value

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 Parameter Object."""
        schema: dict[str, Any]
        if self.kind in ("integer", "number"):
            schema = {"type": self.kind, "minimum": self.minimum or 0}
            schema["maximum"] = MAX_INT if self.maximum is None else self.maximum
        elif self.kind == "date-time":
            schema = {"type": "string", "format": "date-time"}
        else:
            schema = {"type": "string", **({"enum": list(self.enum)} if self.enum else {})}
        if self.default is not None:
            schema["default"] = self.default
        out: dict[str, Any] = {"name": self.name, "in": self.location}
        out["description"] = self.description
        if self.required or self.location == "path":
            out["required"] = True
        out["schema"] = schema
        return out


def _choices(values: Sequence[str]) -> str:
    if len(values) == 2:
        return f"{values[0]} or {values[1]}"
    return "one of " + ", ".join(values)


def parse_params(
    params: Mapping[str, str], declared: Sequence[Param], *, what: str = "query parameter"
) -> dict[str, Any]:
    """Every declared parameter's value, by name; an undeclared query parameter is a 400
    naming the ones supported (a typo must not silently widen a query)."""
    known = {p.name for p in declared if p.location == "query"}
    unknown = set(params) - known
    if unknown:
        raise BadRequest(
            f"unknown {what}(s) {', '.join(sorted(unknown))}; "
            f"supported: {', '.join(sorted(known)) or 'none'}"
        )
    return {p.name: p.parse(params) for p in declared if p.location == "query"}


def path_param(name: str, description: str, kind: Literal["string", "integer"] = "string") -> Param:
    return Param(name, description, kind, location="path", required=True)


EVENT_FILTERS: tuple[Param, ...] = (
    Param("actor_id", "Exact actor id"),
    Param("action", "Exact action, or a prefix such as user.*"),
    Param("target_id", "Events with a target of this id"),
    Param("target_type", "Events with a target of this type"),
    Param("outcome", "success or failure", enum=("success", "failure")),
    Param("category", "audit, access, error, security, performance or system"),
    Param("since", "occurred_at >= this RFC 3339 time", "date-time"),
    Param("until", "occurred_at < this RFC 3339 time", "date-time"),
)
"""The filters of GET /v1/events, shared by GET /v1/export."""

EVENT_QUERY: tuple[Param, ...] = (
    *EVENT_FILTERS,
    Param(
        "limit",
        f"Page size, 1-{MAX_LIMIT} (default {DEFAULT_LIMIT})",
        "integer",
        DEFAULT_LIMIT,
        minimum=1,
        maximum=MAX_LIMIT,
    ),
    Param("cursor", "next_cursor of the previous page"),
    Param("order", "desc (newest first, default) or asc", default="desc", enum=("asc", "desc")),
)
"""The query parameters of GET /v1/events."""

QUERY_PARAMS = frozenset(p.name for p in EVENT_QUERY)


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


def parse_query(
    params: Mapping[str, str],
    declared: Sequence[Param] = EVENT_QUERY,
    *,
    what: str = "query parameter",
) -> PageRequest:
    """Validate the query-string parameters of GET /v1/events (``declared``: those of an
    endpoint that takes the same filters); raises BadRequest."""
    args = parse_params(params, declared, what=what)
    filters = _filters(args)
    descending = args["order"] == "desc"
    after = None
    if args.get("cursor") is not None:
        after, cursor_desc = decode_cursor(args["cursor"])
        if cursor_desc != descending:
            raise BadRequest("this cursor belongs to a query with the other order")
    return PageRequest(
        limit=args.get("limit", DEFAULT_LIMIT),
        after=after,
        descending=descending,
        filters=filters,
    )


def parse_filters(params: Mapping[str, str], *, what: str = "filter") -> EventFilter:
    """The filters of GET /v1/events (``EVENT_FILTERS``) alone, e.g. a viewer token's fixed
    ones; raises BadRequest."""
    return _filters(parse_params(params, EVENT_FILTERS, what=what))


def _filters(args: Mapping[str, Any]) -> EventFilter:
    action = args["action"]
    action_prefix = None
    if action is not None and action.endswith("*"):
        if _PREFIX_RE.fullmatch(action) is None:
            raise BadRequest(
                f"action={action!r}: a prefix filter ends in '.*' after a namespace, "
                "e.g. action=user.* matches user.login and user.deleted"
            )
        action_prefix, action = action[:-1], None
    since, until = args["since"], args["until"]
    if since is not None and until is not None and since >= until:
        raise BadRequest("since must be earlier than until")
    return EventFilter(
        actor_id=args["actor_id"],
        action=action,
        action_prefix=action_prefix,
        target_id=args["target_id"],
        target_type=args["target_type"],
        outcome=args["outcome"],
        category=args["category"],
        since=since,
        until=until,
    )
