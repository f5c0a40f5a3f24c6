"""The group-commit writer: many concurrent requests, one transaction and one fsync.

Requests hand prepared events to :meth:`GroupCommitWriter.submit`. A single writer thread takes
everything queued (up to ``max_batch`` events), calls :meth:`Store.append` once — which assigns
seqs and commits durably in one transaction — and only then completes every waiting request.
If a combined commit fails, each request's events are retried in a transaction of their own so
one bad request cannot fail its neighbours; a request whose commit fails gets the error and
nothing of it was written.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from auditkeep.errors import ServiceUnavailable, StoreUnavailable
from auditkeep.model import PreparedEvent
from auditkeep.monitor.metrics import Metrics
from auditkeep.store.base import AppendResult, Store, TenantAppend

log = logging.getLogger("auditkeep.ingest")

Done = Callable[[list[AppendResult] | None, BaseException | None], None]


class _Job:
    __slots__ = ("done", "events", "tenant_id")

    def __init__(self, tenant_id: int, events: Sequence[PreparedEvent], done: Done) -> None:
        self.tenant_id = tenant_id
        self.events = events
        self.done = done


_STOP = object()
_STALL_MEMORY = 10.0  # seconds a failed commit keeps counting towards stalled_seconds


class GroupCommitWriter:
    """Owns all event writes of one process."""

    def __init__(
        self,
        store: Store,
        *,
        max_batch: int = 5000,
        queue_limit: int = 200_000,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._max_batch = max_batch
        self._queue_limit = queue_limit
        self._metrics = metrics or Metrics()
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._listeners: list[Callable[[set[int]], None]] = []
        self._commit_started: float | None = None  # monotonic time of the commit in progress
        self._failing_since: float | None = None  # start of the first commit since a success
        self._failed_at = 0.0  # when the last commit failed

    @property
    def stalled_seconds(self) -> float:
        """How long the writer has gone without a successful commit while trying (0 when it is
        not trying, or the last commit succeeded): a commit that does not return (PostgreSQL
        waiting for a synchronous standby that is gone), or a run of commits that each fail
        (abandoned after database_write_timeout), shows here. A failure older than
        _STALL_MEMORY with nothing tried since no longer counts: a node taken out of the load
        balancer gets no writes that could succeed, and must be able to look ready again."""
        since = self._failing_since
        if since is None:
            return 0.0
        now = time.monotonic()
        if self._commit_started is None and now - self._failed_at > _STALL_MEMORY:
            return 0.0
        return now - since

    def on_commit(self, listener: Callable[[set[int]], None]) -> None:
        """Call ``listener(tenant_ids)`` from the writer thread after each commit that wrote
        events (the feed's long-polls and the delivery dispatcher wake on it)."""
        self._listeners.append(listener)

    @property
    def pending(self) -> int:
        return self._pending

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="auditkeep-writer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish everything queued, then stop. Safe to call twice."""
        if self._thread is None or self._stopped:
            return
        self._stopped = True
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def submit(self, tenant_id: int, events: Sequence[PreparedEvent], done: Done) -> None:
        """Queue events; ``done(results, error)`` is called from the writer thread."""
        if self._stopped:
            raise ServiceUnavailable("the server is shutting down; retry", retry_after=1.0)
        with self._pending_lock:
            if self._pending + len(events) > self._queue_limit and self._pending > 0:
                raise ServiceUnavailable(
                    f"ingest is overloaded ({self._pending} events waiting to be written); retry",
                    retry_after=1.0,
                )
            self._pending += len(events)
        self._metrics.writer_queue_depth.set(self._pending)
        self._queue.put(_Job(tenant_id, events, done))

    async def append(self, tenant_id: int, events: Sequence[PreparedEvent]) -> list[AppendResult]:
        """Submit and wait (asyncio): returns once the events are durable."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[AppendResult]] = loop.create_future()

        def done(results: list[AppendResult] | None, error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, fut, results, error)

        self.submit(tenant_id, events, done)
        return await fut

    def append_sync(self, tenant_id: int, events: Sequence[PreparedEvent]) -> list[AppendResult]:
        """Submit and wait (threads)."""
        fut: Future[list[AppendResult]] = Future()

        def done(results: list[AppendResult] | None, error: BaseException | None) -> None:
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(results or [])

        self.submit(tenant_id, events, done)
        return fut.result()

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            assert isinstance(first, _Job)
            jobs = [first]
            count = len(first.events)
            while count < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                assert isinstance(item, _Job)
                jobs.append(item)
                count += len(item.events)
            self._commit(jobs, count)

    def _commit(self, jobs: list[_Job], count: int) -> None:
        started = time.perf_counter()
        self._commit_started = time.monotonic()
        if self._failing_since is None or (self._commit_started - self._failed_at > _STALL_MEMORY):
            self._failing_since = self._commit_started
        try:
            results = self._store.append([TenantAppend(j.tenant_id, j.events) for j in jobs])
        except Exception as exc:
            self._commit_started = None
            self._failed_at = time.monotonic()
            self._metrics.writer_failures.inc()
            if len(jobs) > 1 and not isinstance(exc, StoreUnavailable):
                log.warning("group commit failed; retrying requests one by one", exc_info=exc)
                for job in jobs:
                    self._commit([job], len(job.events))
                return
            log.error("commit failed: %s", exc)
            self._finish(jobs, count)
            error = exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(str(exc))
            for job in jobs:
                _call(job.done, None, error)
            return
        self._commit_started = None
        self._failing_since = None
        self._metrics.writer_commit_seconds.observe(time.perf_counter() - started)
        self._metrics.writer_batch_events.observe(count)
        self._finish(jobs, count)
        grown: set[int] = set()
        for job, result in zip(jobs, results, strict=True):
            _call(job.done, result, None)
            if any(r.status == "accepted" for r in result):
                grown.add(job.tenant_id)
        if grown:
            for listener in self._listeners:
                try:
                    listener(grown)
                except Exception:
                    log.exception("commit listener failed")

    def _finish(self, jobs: list[_Job], count: int) -> None:
        with self._pending_lock:
            self._pending -= count
        self._metrics.writer_queue_depth.set(self._pending)


def _settle(
    fut: asyncio.Future[list[AppendResult]],
    results: list[AppendResult] | None,
    error: BaseException | None,
) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(results or [])


def _call(done: Done, results: list[AppendResult] | None, error: BaseException | None) -> None:
    try:
        done(results, error)
    except Exception:  # a waiter that went away must not kill the writer
        log.exception("ingest completion callback failed")
