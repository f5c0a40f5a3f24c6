"""Wake asyncio waiters when a tenant's log grows (long-polling of GET /v1/feed).

The group-commit writer calls :meth:`LogWatch.notify` from its thread after each commit; a
waiter registers *before* it reads the log, so an append between its read and its wait still
wakes it. Waiters also give up after their timeout, and callers re-read the log then, so a
missed wake-up (another process appended) costs at most one timeout, never an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class LogWatch:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[int, set[asyncio.Future[None]]] = {}

    def notify(self, tenant_ids: set[int]) -> None:
        with self._lock:
            woken = [f for tid in tenant_ids for f in self._waiters.pop(tid, ())]
        for fut in woken:
            fut.get_loop().call_soon_threadsafe(_wake, fut)

    @contextlib.contextmanager
    def watching(self, tenant_id: int) -> Iterator[asyncio.Future[None]]:
        """Register a waiter; the future completes when ``tenant_id``'s log grows."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._waiters.setdefault(tenant_id, set()).add(fut)
        try:
            yield fut
        finally:
            with self._lock:
                waiting = self._waiters.get(tenant_id)
                if waiting is not None:
                    waiting.discard(fut)
                    if not waiting:
                        del self._waiters[tenant_id]

    @property
    def waiting(self) -> int:
        with self._lock:
            return sum(len(w) for w in self._waiters.values())


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
