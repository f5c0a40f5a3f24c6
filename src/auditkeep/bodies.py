"""Checks of JSON request bodies shared by the API and the CLI: which fields, of what type.

A body that breaks them is a BadRequest naming the fields, so a person knows what to fix.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, TypeVar

import msgspec
import orjson

from auditkeep.errors import BadRequest


def decode_json(body: bytes) -> Any:
    """Decode a request body as I-JSON (RFC 7493): valid UTF-8, nesting up to 1,024, and no
    object naming a member twice. Every JSON body the server accepts is decoded here.

    orjson keeps the last of two equal member names silently, so a record such as
    ``{"action": "user.login", "action": "user.logout"}`` would be ambiguous. The check costs
    one re-encoding: every member of the raw text has one ``:`` outside strings, and orjson
    writes the decoded value with the same strings (it never escapes ``:``), so the two counts
    of ``:`` are equal exactly when no member was dropped. Only when a string spells a colon
    as ``\\u003a`` (or the counts differ) is the body parsed again, slowly, to name the key.
    """
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        msg = str(exc)
        if "UTF-8" in msg or "surrogate" in msg:
            raise BadRequest(f"the body is not valid UTF-8 text: {msg}") from None
        if "depth" in msg:
            raise BadRequest(f"the JSON nests too deeply: {msg}") from None
        raise BadRequest(f"the body is not valid JSON: {msg}") from None
    try:
        encoded = orjson.dumps(value)
    except TypeError:  # orjson writes 254 levels at most, though it reads 1,024
        _reject_duplicate_names(body)
        return value
    if body.count(b":") != encoded.count(b":") or b"\\u003a" in body or b"\\u003A" in body:
        _reject_duplicate_names(body)
    return value


class _DuplicateName(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise _DuplicateName(name)
        seen.add(name)
    return {}  # only the check matters; orjson's value is the one used


# The slow duplicate-name check parses with the json module, which recurses once per level:
# Python's default limit (1,000 frames) would refuse bodies orjson accepts (1,024 levels).
_CHECK_RECURSION = 1500
if sys.getrecursionlimit() < _CHECK_RECURSION:
    sys.setrecursionlimit(_CHECK_RECURSION)


def _reject_duplicate_names(body: bytes) -> None:
    try:
        json.loads(body, object_pairs_hook=_unique_members)
    except _DuplicateName as dup:
        shown = dup.name if len(dup.name) <= 64 else dup.name[:64] + "…"
        raise BadRequest(
            f"an object in the body names the member {shown!r} more than once; an audit "
            "record must not be ambiguous (RFC 7493 I-JSON): send each member once",
            duplicate=shown,
        ) from None
    except RecursionError:
        raise BadRequest("the JSON nests too deeply to check for duplicate member names") from None


def check_fields(body: Any, allowed: set[str], required: set[str]) -> dict[str, Any]:
    """``body`` as a dict with only ``allowed`` fields and every ``required`` one."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = set(body) - allowed
    if unknown:
        raise BadRequest(
            f"unknown field(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}"
        )
    missing = required - set(body)
    if missing:
        raise BadRequest(f"missing field(s): {', '.join(sorted(missing))}")
    return body


S = TypeVar("S", bound=msgspec.Struct)


def struct_fields(model: type[msgspec.Struct]) -> tuple[set[str], set[str]]:
    """The JSON member names a body model declares: ``(allowed, required)``."""
    fields = msgspec.structs.fields(model)
    return {f.encode_name for f in fields}, {f.encode_name for f in fields if f.required}


def check_body(body: Any, model: type[msgspec.Struct]) -> dict[str, Any]:
    """``body`` as a dict with only the fields ``model`` declares and every required one
    (``check_fields``); the values are left to the caller's own checks."""
    allowed, required = struct_fields(model)
    return check_fields(body, allowed, required)


def parse_body(body: Any, model: type[S]) -> S:
    """``body`` as an instance of ``model``: the fields checked by ``check_body``, then every
    value against its declared type. A value of the wrong type is a BadRequest naming it."""
    check_body(body, model)
    try:
        return msgspec.convert(body, model, strict=True)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `$.")
        field = where.rstrip("`") or "the body"
        said = _PY_TYPE.sub(lambda m: _JSON_TYPES[m[0]], message.replace("`", "").lower())
        raise BadRequest(f"{field}: {said}") from None


_JSON_TYPES = {"float": "number", "str": "string", "int": "integer", "bool": "boolean"}
_PY_TYPE = re.compile(r"\b(?:float|str|int|bool)\b")


def optional_string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value
