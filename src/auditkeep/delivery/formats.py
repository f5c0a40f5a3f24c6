"""Export and delivery encodings of stored events: NDJSON, CSV and OCSF.

Each encoder turns one page of events into bytes, so an export streams page by page with
constant memory. NDJSON lines are the API's event objects (the stored canonical JSON plus
``seq`` and ``hash``), one per line. CSV has fixed columns (``CSV_COLUMNS``); nested values
(targets, metadata) are JSON in their cell, and cells that a spreadsheet would run as a
formula are prefixed with ``'`` (CSV injection). OCSF is in ``delivery/ocsf.py``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from auditkeep.store.base import StoredEvent

CSV_COLUMNS: tuple[str, ...] = (
    "seq",
    "id",
    "occurred_at",
    "received_at",
    "action",
    "category",
    "outcome",
    "reason",
    "actor_id",
    "actor_type",
    "actor_name",
    "targets",
    "ip",
    "user_agent",
    "request_id",
    "session_id",
    "location",
    "metadata",
    "tenant",
    "hash",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def ndjson_lines(events: Iterable[StoredEvent]) -> bytes:
    """One API event object per line, each line ending in ``\\n``."""
    return b"".join(orjson.dumps(ev.to_json()) + b"\n" for ev in events)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    text = orjson.dumps(value).decode() if isinstance(value, dict | list) else str(value)
    if text.startswith(_FORMULA_START):
        text = "'" + text
    return text


def csv_row(event: dict[str, Any]) -> list[str]:
    actor = event.get("actor") or {}
    context = event.get("context") or {}
    values = {
        **{k: event.get(k) for k in ("seq", "id", "occurred_at", "received_at", "action")},
        "category": event.get("category"),
        "outcome": event.get("outcome"),
        "reason": event.get("reason"),
        "actor_id": actor.get("id"),
        "actor_type": actor.get("type"),
        "actor_name": actor.get("name"),
        "targets": event.get("targets") or None,
        **{k: context.get(k) for k in ("ip", "user_agent", "request_id", "session_id")},
        "location": context.get("location"),
        "metadata": event.get("metadata") or None,
        "tenant": event.get("tenant"),
        "hash": event.get("hash"),
    }
    return [_csv_cell(values[c]) for c in CSV_COLUMNS]


def csv_header() -> bytes:
    return _csv_bytes([list(CSV_COLUMNS)])


def csv_rows(events: Iterable[StoredEvent]) -> bytes:
    return _csv_bytes([csv_row(ev.to_json()) for ev in events])


def _csv_bytes(rows: Sequence[Sequence[str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")  # RFC 4180 line ends
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


@dataclass(frozen=True, slots=True)
class ExportFormat:
    """How a format starts, encodes a page, and is served."""

    name: str
    media_type: str
    extension: str
    header: Callable[[], bytes]
    page: Callable[[Sequence[StoredEvent]], bytes]


def _no_header() -> bytes:
    return b""


def _ocsf_lines(events: Sequence[StoredEvent]) -> bytes:
    from auditkeep.delivery.ocsf import to_ocsf

    return b"".join(orjson.dumps(to_ocsf(ev.to_json())) + b"\n" for ev in events)


FORMATS: dict[str, ExportFormat] = {
    "ndjson": ExportFormat("ndjson", "application/x-ndjson", "ndjson", _no_header, ndjson_lines),
    "csv": ExportFormat("csv", "text/csv; charset=utf-8", "csv", csv_header, csv_rows),
    "ocsf": ExportFormat("ocsf", "application/x-ndjson", "ocsf.ndjson", _no_header, _ocsf_lines),
}
