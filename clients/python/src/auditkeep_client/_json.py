"""JSON encoding for the outbox and the wire: orjson when installed, the stdlib otherwise."""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - the light install
    _orjson = None  # type: ignore[assignment]

__all__ = ["dumps", "loads"]


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON. The SDK stores these bytes and resends exactly them on every retry."""
    if _orjson is not None:
        return _orjson.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def loads(data: bytes | str) -> Any:
    if _orjson is not None:
        return _orjson.loads(data)
    return json.loads(data)
