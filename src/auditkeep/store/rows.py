"""What both stores share: how rows become records, and the column lists behind them.

The SQL dialects differ (placeholders, locking, COPY), so each store writes its own statements;
the shapes of what they read and the paging over a log do not, and live here once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson

from auditkeep.store.base import DESTINATION_COLUMNS, Destination, StoredEvent

#: an event row as the stores select it (alias ``e`` for events)
EVENT_COLUMNS = "e.seq, e.occurred_at, e.leaf_hash, e.leaf_data"
#: an action prefix with more distinct actions than this under it is read as one range instead
PREFIX_MERGE_MAX_ACTIONS = 64

DEST_SELECT = ", ".join(DESTINATION_COLUMNS)
DEST_UPDATABLE = frozenset(DESTINATION_COLUMNS) - {"tenant_id", "dest_id", "created_at"}


def stored_event(row: Sequence[Any]) -> StoredEvent:
    """A row of EVENT_COLUMNS."""
    return StoredEvent(int(row[0]), int(row[1]), bytes(row[2]), bytes(row[3]))


def destination(row: Sequence[Any]) -> Destination:
    """A row of DEST_SELECT (config is JSON text)."""
    values = dict(zip(DESTINATION_COLUMNS, row, strict=True))
    values["config"] = orjson.loads(values["config"])
    if values["secret"] is not None:
        values["secret"] = bytes(values["secret"])
    return Destination(**values)


def scan_log(
    after_seq: Callable[[int, int], list[StoredEvent]], batch: int
) -> Iterator[StoredEvent]:
    """Every event of a log in seq order, ``batch`` rows per read."""
    last = 0
    while True:
        rows = after_seq(last, batch)
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
