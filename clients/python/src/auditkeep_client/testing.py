"""Test mode: capture events in memory instead of storing and sending them.

Two ways in::

    with capture_events() as captured:      # every client in this process captures
        service.delete_document("d1")
    captured.assert_logged(action="document.deleted", outcome="success", actor={"id": "u1"})

    client = AuditKeep(testing=True)         # a client that never touches disk or network
    client.log(...)
    client.captured.assert_logged(action="user.login")

Captured events are the normalised, redacted events exactly as they would be stored (the same
validation runs, so a bad event still raises at the call site).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = ["CapturedEvents", "capture_events"]

_CAPTURES: list[CapturedEvents] = []
_LOCK = threading.Lock()


def _matches(actual: Any, expected: Any) -> bool:
    """Dicts match as subsets (recursively); lists match when each expected item matches some
    actual item; anything else compares equal."""
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return False
        return all(k in actual and _matches(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list | tuple) and isinstance(actual, list | tuple):
        return all(any(_matches(a, e) for a in actual) for e in expected)
    return bool(actual == expected)


class CapturedEvents:
    """Events captured in memory, with assertion helpers."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def _add(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(event)

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(list(self.events))

    def clear(self) -> None:
        with self._lock:
            self.events.clear()

    def find(self, action: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        """Events whose ``action`` equals ``action`` and whose fields match ``fields``
        (nested dicts match as subsets: ``actor={"id": "u1"}``)."""
        if action is not None:
            fields["action"] = action
        with self._lock:
            events = list(self.events)
        return [e for e in events if _matches(e, fields)]

    def assert_logged(
        self, action: str | None = None, *, count: int | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Assert some event matches (exactly ``count`` of them, if given); return the first."""
        found = self.find(action, **fields)
        want = dict(fields, **({"action": action} if action is not None else {}))
        if not found or (count is not None and len(found) != count):
            seen = (
                "\n".join(
                    f"  - {e.get('action')} outcome={e.get('outcome')} actor={e.get('actor')}"
                    for e in self.events[-20:]
                )
                or "  (none)"
            )
            how_many = f"{count} events" if count is not None else "an event"
            raise AssertionError(
                f"expected {how_many} matching {want!r}, found {len(found)}; "
                f"captured events:\n{seen}"
            )
        return found[0]

    def assert_not_logged(self, action: str | None = None, **fields: Any) -> None:
        found = self.find(action, **fields)
        if found:
            raise AssertionError(f"expected no event matching, found {len(found)}: {found[0]!r}")

    @property
    def actions(self) -> list[str]:
        return [str(e.get("action")) for e in self.events]


@contextmanager
def capture_events() -> Iterator[CapturedEvents]:
    """Within the block every AuditKeep client in this process captures events in memory
    instead of writing them to its outbox. Nestable; the innermost capture gets the events."""
    captured = CapturedEvents()
    with _LOCK:
        _CAPTURES.append(captured)
    try:
        yield captured
    finally:
        with _LOCK:
            _CAPTURES.remove(captured)
