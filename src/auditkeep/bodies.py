"""Checks of JSON request bodies shared by the API and the CLI: which fields, of what type.

A body that breaks them is a BadRequest naming the fields, so a person knows what to fix.
"""

from __future__ import annotations

from typing import Any

from auditkeep.errors import BadRequest


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


def optional_string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value
