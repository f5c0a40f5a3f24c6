"""AuditKeep and AsyncAuditKeep: log events to a durable outbox; a thread delivers them."""

from __future__ import annotations

import asyncio
import atexit
import functools
import inspect
import logging
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar, overload

import httpx

from . import _json
from .context import _current, actor_object
from .errors import ClientClosed, describe
from .outbox import Outbox, OutboxStats, Synchronous
from .redaction import Processor, ValuePattern, default_processors
from .schema import (
    LIMITS,
    EventValidationError,
    FieldError,
    check_event_size,
    new_event_id,
    normalize_event,
)
from .sender import RetryPolicy, Sender, SenderStatus
from .testing import _CAPTURES, CapturedEvents

__all__ = ["AsyncAuditKeep", "AuditKeep", "Recorder"]

log = logging.getLogger("auditkeep_client")

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_OUTBOX = ".auditkeep/outbox.sqlite3"

_ts_cache: tuple[int, str] = (-1, "")


def now_timestamp() -> str:
    """The current time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (cheap: the second is cached)."""
    global _ts_cache
    us = time.time_ns() // 1000
    sec, frac = divmod(us, 1_000_000)
    cached_sec, prefix = _ts_cache
    if sec != cached_sec:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _ts_cache = (sec, prefix)
    return f"{prefix}.{frac:06d}Z"


def _timestamp(value: str | datetime | None) -> str:
    if value is None:
        return now_timestamp()
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise EventValidationError(
                [FieldError("occurred_at", "a datetime must be timezone-aware (e.g. tz=UTC)")]
            )
        return value.isoformat()
    return value


_LIVE: weakref.WeakSet[AuditKeep] = weakref.WeakSet()


def _after_fork_child() -> None:
    for client in list(_LIVE):
        try:
            client._after_fork_in_child()
        except Exception:  # pragma: no cover
            log.exception("could not restart the auditkeep sender in a forked child")


os.register_at_fork(after_in_child=_after_fork_child)


def _close_at_exit(ref: weakref.ref[AuditKeep]) -> None:
    client = ref()
    if client is not None and not client.closed:
        try:
            client.close(client.flush_on_exit)
        except Exception:  # pragma: no cover
            log.debug("close at exit failed", exc_info=True)


class AuditKeep:
    """The synchronous client. Thread-safe; one per process (or per outbox) is the norm.

    ``log()`` validates the event, stores it in the outbox and returns its id; a background
    thread delivers it. See docs/sdk.md for every option.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        endpoints: Sequence[str] | str | None = None,
        outbox: str | os.PathLike[str] | None = None,
        synchronous: Synchronous = "NORMAL",
        on_full: Literal["raise", "block"] = "raise",
        full_timeout: float = 5.0,
        max_pending_events: int | None = None,
        max_pending_bytes: int | None = None,
        batch_size: int = 500,
        batch_bytes: int = 1024 * 1024,
        timeout: float = 10.0,
        retry_base: float = 0.5,
        retry_cap: float = 30.0,
        max_retry_after: float = 300.0,
        lease_seconds: float = 60.0,
        poll_interval: float = 1.0,
        failback_after: float = 60.0,
        concurrency: int = 2,
        processors: Sequence[Processor] | None = None,
        redact_keys: Iterable[str] = (),
        redact_patterns: Iterable[ValuePattern | str] = (),
        testing: bool = False,
        start_sender: bool = True,
        flush_on_exit: float = 2.0,
        transport: httpx.BaseTransport | None = None,
        _max_page_count: int | None = None,
    ) -> None:
        if on_full not in ("raise", "block"):
            raise ValueError("on_full must be 'raise' or 'block'")
        self.testing = testing
        self.on_full = on_full
        self.full_timeout = full_timeout
        self.flush_on_exit = flush_on_exit
        self.processors: list[Processor] = (
            list(processors)
            if processors is not None
            else default_processors(redact_keys, redact_patterns)
        )
        self.captured = CapturedEvents()
        self._closed = False
        self._start_sender = start_sender
        self._lock = threading.Lock()
        self._progress = threading.Condition(threading.Lock())
        self._outbox: Outbox | None = None
        self._sender: Sender | None = None
        if testing:
            return

        api_key = api_key or os.environ.get("AUDITKEEP_API_KEY")
        if not api_key:
            raise ValueError("an API key is needed: AuditKeep(api_key=...) or AUDITKEEP_API_KEY")
        if endpoints is None:
            endpoints = os.environ.get("AUDITKEEP_ENDPOINTS") or os.environ.get("AUDITKEEP_URL")
        if isinstance(endpoints, str):
            endpoints = [e.strip() for e in endpoints.split(",") if e.strip()]
        if not endpoints:
            raise ValueError("at least one endpoint URL is needed: AuditKeep(endpoints=[...])")
        for url in endpoints:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"endpoint {url!r} must start with http:// or https://")
        path = outbox or os.environ.get("AUDITKEEP_OUTBOX") or DEFAULT_OUTBOX
        self._outbox = Outbox(
            path,
            synchronous=synchronous,
            max_pending_events=max_pending_events,
            max_pending_bytes=max_pending_bytes,
            max_page_count=_max_page_count,
            writer_checkpoints=not start_sender,
        )
        self._sender = Sender(
            self._outbox,
            list(endpoints),
            api_key,
            batch_size=batch_size,
            batch_bytes=batch_bytes,
            timeout=timeout,
            lease_seconds=lease_seconds,
            poll_interval=poll_interval,
            retry=RetryPolicy(retry_base, retry_cap, max_retry_after),
            failback_after=failback_after,
            concurrency=concurrency,
            transport=transport,
            on_progress=self._notify_progress,
        )
        _LIVE.add(self)
        atexit.register(_close_at_exit, weakref.ref(self))
        if start_sender:
            self._sender.start()

    # -- logging -----------------------------------------------------------------------------

    def prepare(
        self,
        action: str,
        *,
        actor: Mapping[str, Any] | str | None = None,
        targets: Sequence[Mapping[str, Any]] | None = None,
        outcome: Literal["success", "failure"] = "success",
        reason: str | None = None,
        context: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        category: str = "audit",
        occurred_at: str | datetime | None = None,
        id: str | None = None,
    ) -> dict[str, Any]:
        """Build, redact and validate an event; return its normal form (not stored)."""
        raw: dict[str, Any] = {
            "action": action,
            "occurred_at": _timestamp(occurred_at),
            "outcome": outcome,
            "category": category,
        }
        raw["id"] = id if id is not None else new_event_id()
        frame = _current.get()
        if frame is not None:
            if actor is None:
                actor = frame.actor
            ctx = frame.event_context()
            if context:
                ctx.update(context)
            if ctx:
                raw["context"] = ctx
            if frame.metadata:
                metadata = {**frame.metadata, **(metadata or {})}
        elif context:
            raw["context"] = dict(context)
        if actor is not None:
            raw["actor"] = actor_object(actor)
        if targets:
            raw["targets"] = [dict(t) if isinstance(t, dict | Mapping) else t for t in targets]
        if reason is not None:
            raw["reason"] = reason
        if metadata:
            raw["metadata"] = dict(metadata)
        for processor in self.processors:
            raw = processor(raw)
        event, _ = normalize_event(raw)
        return event

    @staticmethod
    def _encode(event: dict[str, Any]) -> bytes:
        """The outbox form of a prepared event, refused (as the server would) when its
        canonical form is over the event size limit. The outbox form is the same JSON but for
        key order and number spelling, so the exact canonical check runs only for events near
        the limit."""
        body = _json.dumps(event)
        if len(body) > LIMITS.max_event_bytes * 3 // 4:
            check_event_size(event)
        return body

    def log(
        self,
        action: str,
        *,
        actor: Mapping[str, Any] | str | None = None,
        targets: Sequence[Mapping[str, Any]] | None = None,
        outcome: Literal["success", "failure"] = "success",
        reason: str | None = None,
        context: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        category: str = "audit",
        occurred_at: str | datetime | None = None,
        id: str | None = None,
    ) -> str:
        """Validate the event, store it durably in the outbox, and return its id.

        Raises EventValidationError (a ValueError listing every problem) for a bad event and
        OutboxFull when the outbox has no room (after waiting, with ``on_full="block"``).
        When this returns, the event survives the process being killed.
        """
        event = self.prepare(
            action,
            actor=actor,
            targets=targets,
            outcome=outcome,
            reason=reason,
            context=context,
            metadata=metadata,
            category=category,
            occurred_at=occurred_at,
            id=id,
        )
        return self._store(event)

    def _store(self, event: dict[str, Any]) -> str:
        event_id: str = event["id"]
        body = self._encode(event)
        if _CAPTURES:
            _CAPTURES[-1]._add(event)
            return event_id
        if self.testing:
            self.captured._add(event)
            return event_id
        outbox = self._outbox
        if self._closed or outbox is None:
            raise ClientClosed("this AuditKeep client is closed")
        outbox.append(
            event_id,
            body,
            block_timeout=self.full_timeout if self.on_full == "block" else None,
        )
        sender = self._sender
        if sender is not None and sender.idle:
            sender.wake()
        return event_id

    def record(
        self,
        action: str,
        *,
        actor: Mapping[str, Any] | str | None = None,
        targets: Sequence[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        category: str = "audit",
        context: Mapping[str, Any] | None = None,
    ) -> Recorder:
        """Log ``action`` with outcome success/failure from whether the wrapped code raised.

        Use as a decorator (sync or async functions) or a context manager (``with`` or
        ``async with``). The exception is always re-raised; the failure's reason is the
        exception's type name. Inside ``with ... as rec`` you may add ``rec.targets`` /
        ``rec.metadata`` before the block ends.
        """
        return Recorder(
            self.log,
            None,
            action,
            actor=actor,
            targets=targets,
            metadata=metadata,
            category=category,
            context=context,
        )

    # -- delivery control ----------------------------------------------------------------------

    def _notify_progress(self) -> None:
        with self._progress:
            self._progress.notify_all()

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every event pending in the outbox when called is delivered or
        dead-lettered: this client's, and older ones left by earlier processes or logged by
        others sharing the file (so a process opened only to drain an outbox can flush).
        Returns False on timeout (the events stay pending)."""
        outbox, sender = self._outbox, self._sender
        if outbox is None or sender is None:
            return True
        target, marked_at = outbox.pending_mark()
        if target == 0:
            return True
        self._ensure_sender()
        sender.wake()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not outbox.pending_through(target, marked_at):
                return True
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
            else:
                remaining = 0.05
            with self._progress:
                self._progress.wait(min(remaining, 0.05))

    def start(self) -> None:
        """Start the background sender (for clients made with ``start_sender=False``)."""
        self._start_sender = True
        if self._outbox is not None:
            self._outbox.writer_checkpoints = False  # applies to connections opened from now
        self._ensure_sender()

    def _ensure_sender(self) -> None:
        sender = self._sender
        if sender is not None and self._start_sender and not self._closed and not sender.running:
            sender.start()

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush (up to ``timeout``), stop the sender and close the outbox. Events not yet
        delivered stay in the outbox file and are sent by the next client that opens it.
        Returns whether everything was delivered."""
        with self._lock:
            if self._closed:
                return True
            self._closed = True
        delivered = True
        start = time.monotonic()
        if self._sender is not None and self._outbox is not None:
            if self._sender.running:
                delivered = self.flush(timeout)
            else:
                delivered = self._outbox.pending_mark()[0] == 0
            remaining = None if timeout is None else max(0.1, timeout - (time.monotonic() - start))
            self._sender.stop(remaining)
            if not delivered:
                stats = self._outbox.stats()
                log.warning(
                    "auditkeep client closed with %d event(s) still pending in %s; they will "
                    "be sent by the next client using this outbox",
                    stats.pending,
                    self._outbox.path,
                )
            self._outbox.close()
        _LIVE.discard(self)
        return delivered

    @property
    def closed(self) -> bool:
        return self._closed

    def status(self) -> SenderStatus:
        """The sender's health: ``state`` is idle, sending, retrying, config_error or stopped;
        ``config_error`` holds the server's reason while the key/URL is refused."""
        if self._sender is None:
            return SenderStatus(state="stopped")
        return self._sender.status()

    @property
    def config_error(self) -> str | None:
        """The server's reason while requests are refused as misconfigured (401/403/...)."""
        return None if self._sender is None else self._sender.status().config_error

    def outbox_stats(self) -> OutboxStats:
        if self._outbox is None:
            return OutboxStats(0, 0, 0, 0, None, None)
        return self._outbox.stats()

    @property
    def outbox(self) -> Outbox | None:
        return self._outbox

    def set_api_key(self, api_key: str) -> None:
        """Switch keys (e.g. after rotation or fixing a revoked key) and retry at once."""
        if self._sender is not None:
            self._sender.set_api_key(api_key)

    def _after_fork_in_child(self) -> None:
        if self._sender is None or self._closed:
            return
        self._lock = threading.Lock()
        self._progress = threading.Condition(threading.Lock())
        if self._sender.after_fork_in_child():
            self._sender.start()

    def __enter__(self) -> AuditKeep:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Recorder:
    """What ``client.record(...)`` returns: a decorator and a (sync or async) context manager."""

    def __init__(
        self,
        emit: Callable[..., str],
        aemit: Callable[..., Awaitable[str]] | None,
        action: str,
        *,
        actor: Mapping[str, Any] | str | None = None,
        targets: Sequence[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        category: str = "audit",
        context: Mapping[str, Any] | None = None,
    ) -> None:
        self._emit = emit
        self._aemit = aemit
        self.action = action
        self.actor = actor
        self.targets: list[Mapping[str, Any]] = list(targets or [])
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.category = category
        self.context = context
        self.event_id: str | None = None

    def _fresh(self) -> Recorder:
        return Recorder(
            self._emit,
            self._aemit,
            self.action,
            actor=self.actor,
            targets=self.targets,
            metadata=self.metadata,
            category=self.category,
            context=self.context,
        )

    def _kwargs(self, exc: BaseException | None) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "targets": self.targets,
            "metadata": self.metadata,
            "category": self.category,
            "context": self.context,
            "outcome": "failure" if exc is not None else "success",
            "reason": type(exc).__name__ if exc is not None else None,
        }

    def _finish(self, exc: BaseException | None) -> None:
        try:
            self.event_id = self._emit(self.action, **self._kwargs(exc))
        except Exception as log_exc:
            if exc is None:
                raise
            # Never mask the caller's exception; make the audit failure visible on it.
            exc.add_note(f"auditkeep: recording {self.action!r} failed: {describe(log_exc)}")
            log.error("auditkeep: could not record %r: %s", self.action, describe(log_exc))

    async def _afinish(self, exc: BaseException | None) -> None:
        if self._aemit is None:
            self._finish(exc)
            return
        try:
            self.event_id = await self._aemit(self.action, **self._kwargs(exc))
        except Exception as log_exc:
            if exc is None:
                raise
            exc.add_note(f"auditkeep: recording {self.action!r} failed: {describe(log_exc)}")
            log.error("auditkeep: could not record %r: %s", self.action, describe(log_exc))

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish(exc)

    async def __aenter__(self) -> Recorder:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._afinish(exc)

    @overload
    def __call__(
        self, func: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(self, func: Callable[P, R]) -> Callable[P, R]: ...

    def __call__(self, func: Callable[P, Any]) -> Callable[P, Any]:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                rec = self._fresh()
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    await rec._afinish(exc)
                    raise
                await rec._afinish(None)
                return result

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            rec = self._fresh()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                rec._finish(exc)
                raise
            rec._finish(None)
            return result

        return wrapper


class AsyncAuditKeep:
    """The asyncio client: the same outbox and sender; writes run off the event loop.

    ``await client.log(...)`` validates on the loop (fast, and errors surface at the call
    site) and performs the SQLite write on a dedicated single worker thread, so the loop is
    never blocked by a slow disk, an fsync (``synchronous="FULL"``) or another process
    holding the write lock.
    """

    def __init__(self, api_key: str | None = None, **options: Any) -> None:
        self.sync = AuditKeep(api_key, **options)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="auditkeep-write")

    @property
    def captured(self) -> CapturedEvents:
        return self.sync.captured

    async def log(
        self,
        action: str,
        *,
        actor: Mapping[str, Any] | str | None = None,
        targets: Sequence[Mapping[str, Any]] | None = None,
        outcome: Literal["success", "failure"] = "success",
        reason: str | None = None,
        context: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        category: str = "audit",
        occurred_at: str | datetime | None = None,
        id: str | None = None,
    ) -> str:
        """Like AuditKeep.log(); the durable write happens off the loop."""
        event = self.sync.prepare(
            action,
            actor=actor,
            targets=targets,
            outcome=outcome,
            reason=reason,
            context=context,
            metadata=metadata,
            category=category,
            occurred_at=occurred_at,
            id=id,
        )
        if _CAPTURES or self.sync.testing:
            return self.sync._store(event)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.sync._store, event)

    def record(
        self,
        action: str,
        *,
        actor: Mapping[str, Any] | str | None = None,
        targets: Sequence[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        category: str = "audit",
        context: Mapping[str, Any] | None = None,
    ) -> Recorder:
        """As AuditKeep.record(); ``async with`` and async functions log without blocking."""
        return Recorder(
            self.sync.log,
            self.log,
            action,
            actor=actor,
            targets=targets,
            metadata=metadata,
            category=category,
            context=context,
        )

    async def flush(self, timeout: float | None = 10.0) -> bool:  # noqa: ASYNC109
        return await asyncio.to_thread(self.sync.flush, timeout)

    async def aclose(self, timeout: float | None = 10.0) -> bool:  # noqa: ASYNC109
        self._executor.shutdown(wait=True)
        return await asyncio.to_thread(self.sync.close, timeout)

    def status(self) -> SenderStatus:
        return self.sync.status()

    def outbox_stats(self) -> OutboxStats:
        return self.sync.outbox_stats()

    async def __aenter__(self) -> AsyncAuditKeep:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
