"""The background sender: moves events from the outbox to the server, in batches.

Delivery rules (docs/sdk.md, "Delivery guarantees", states them for users):

- A batch is at most ``batch_size`` events and ``batch_bytes`` bytes, leased from the outbox.
- A row leaves the outbox only when the server answered ``accepted`` or ``duplicate`` for it
  (deleted) or ``rejected`` (moved to the dead-letter table with the server's reason).
- Connection errors, timeouts and 5xx answers fail over to the next endpoint; when every
  endpoint failed, the sender backs off (exponential, full jitter, ``retry_base`` ..
  ``retry_cap``) and retries the *same bytes*: the server's idempotency on event ids turns
  a retry of an already stored event into ``duplicate``, so nothing is stored twice.
- 429 and 503 honour ``Retry-After``.
- 401, 403, 404, 405 and 3xx mean the client is misconfigured (key revoked, wrong scope, wrong
  URL): events stay pending, the sender backs off, logs an error, and the status shows
  ``config_error`` until a request succeeds again (e.g. after :meth:`Sender.set_api_key`).
- 413 splits the batch in two; other 4xx answers for a whole batch bisect it to find the
  offending event, and an event rejected on its own is dead-lettered.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import httpx

from . import _json
from .outbox import Outbox, PendingRow, make_owner

__all__ = ["RetryPolicy", "Sender", "SenderStatus"]

log = logging.getLogger("auditkeep_client.sender")

State = Literal["idle", "sending", "retrying", "config_error", "stopped"]

_CONFIG_ERROR_STATUSES: Final = frozenset({401, 403, 404, 405})
_USER_AGENT: Final = "auditkeep-client-python/0.1.0"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter: ``uniform(0, min(cap, base * 2**attempt))``."""

    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 300.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0.0, min(self.cap, self.base * (2 ** min(attempt, 30))))


@dataclass(slots=True)
class SenderStatus:
    """A snapshot of the sender's health, as ``client.status()`` returns it."""

    state: State = "idle"
    endpoint: str = ""
    config_error: str | None = None
    last_error: str | None = None
    last_http_status: int | None = None
    consecutive_failures: int = 0
    last_success_at: float | None = None
    delivered: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    requests: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Answer:
    """What one POST of one batch came to."""

    kind: Literal["settled", "split", "transient", "config"]
    delivered: list[int] = field(default_factory=list)
    duplicates: int = 0
    dead: list[tuple[int, int | None, dict[str, Any]]] = field(default_factory=list)
    retry_after: float | None = None
    failover: bool = False
    error: str = ""
    http_status: int | None = None
    problem: dict[str, Any] = field(default_factory=dict)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _problem(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        keep = ("type", "title", "status", "detail", "errors")
        out = {k: data[k] for k in keep if k in data}
        out.setdefault("status", resp.status_code)
        return out
    return {"status": resp.status_code, "title": resp.reason_phrase, "detail": resp.text[:500]}


def _problem_text(problem: dict[str, Any]) -> str:
    parts = [str(problem.get("status", "")), str(problem.get("title", ""))]
    if problem.get("detail"):
        parts.append(f"- {problem['detail']}")
    return " ".join(p for p in parts if p)


class Sender:
    """One background thread per client (and per process: restarted after fork)."""

    def __init__(
        self,
        outbox: Outbox,
        endpoints: Sequence[str],
        api_key: str,
        *,
        batch_size: int = 500,
        batch_bytes: int = 1024 * 1024,
        timeout: float = 10.0,
        lease_seconds: float = 60.0,
        poll_interval: float = 1.0,
        retry: RetryPolicy | None = None,
        failback_after: float = 60.0,
        concurrency: int = 2,
        transport: httpx.BaseTransport | None = None,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one endpoint is needed")
        if not 1 <= batch_size <= 1000:
            raise ValueError("batch_size must be between 1 and 1000 (the server's limit)")
        self.outbox = outbox
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self._api_key = api_key
        self.batch_size = batch_size
        self.batch_bytes = min(batch_bytes, 5 * 1024 * 1024 - 64)
        self.timeout = timeout
        self.lease_seconds = max(lease_seconds, timeout * 2 + 5)
        self.poll_interval = poll_interval
        self.retry = retry or RetryPolicy()
        self.failback_after = failback_after
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self._transport = transport
        self._on_progress = on_progress
        self._status = SenderStatus(endpoint=self.endpoints[0])
        self._status_lock = threading.Lock()
        self._init_runtime()

    def _init_runtime(self) -> None:
        """Per-process state: rebuilt in a forked child."""
        self._owners = [make_owner() for _ in range(self.concurrency)]
        self._stop = threading.Event()
        self._interrupt = threading.Event()
        self._wake = threading.Event()
        self._idle = [True] * self.concurrency
        self._threads: list[threading.Thread] = []
        self._http_lock = threading.Lock()
        self._http: httpx.Client | None = None
        self._current = 0
        self._failed_over_at = 0.0
        self._last_reclaim = 0.0
        self._last_checkpoint = 0.0
        self._last_error_log = 0.0
        self._pid = os.getpid()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    @property
    def idle(self) -> bool:
        """True when some sender thread is waiting for work (log() then wakes them)."""
        return any(self._idle)

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        # Build the HTTP client here, in the caller's thread, not lazily in a sender thread:
        # its first construction imports modules, and a fork while a sender thread holds an
        # import lock would leave the child deadlocked on it.
        self._client()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), name=f"auditkeep-sender-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for t in self._threads:
            t.start()

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Stop the thread (leases it holds are released). True when it has ended."""
        self._stop.set()
        self._interrupt.set()
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            if thread is threading.current_thread():
                continue
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                # Still in a request or a connect: give its rows back now, or the next client
                # of this outbox would wait lease_seconds for them (if the request still
                # succeeds, the server answers the resend as a duplicate).
                self._release_leases()
                return False
        with self._status_lock:
            self._status.state = "stopped"
        if self._http is not None:
            self._http.close()
            self._http = None
        return True

    def _release_leases(self) -> None:
        for owner in self._owners:
            try:
                if not self.outbox.closed:
                    self.outbox.release(owner)
            except Exception:  # pragma: no cover - the file is going away; leases expire
                log.debug("could not release leases at stop", exc_info=True)

    def after_fork_in_child(self) -> bool:
        """Reset per-process state; return True if the parent's sender was running."""
        was_running = bool(self._threads) and not self._stop.is_set()
        self._status_lock = threading.Lock()
        old_http = self._http
        if old_http is not None:
            _ABANDONED.append(old_http)  # its sockets belong to the parent: never close them
        self._init_runtime()
        return was_running

    def wake(self) -> None:
        self._wake.set()

    def set_api_key(self, api_key: str) -> None:
        """Use a new key from the next request on, and retry at once."""
        self._api_key = api_key
        if self._http is not None:
            self._http.headers["Authorization"] = f"Bearer {api_key}"
        self._interrupt.set()
        self._wake.set()

    def status(self) -> SenderStatus:
        with self._status_lock:
            s = self._status
            return SenderStatus(
                state=s.state,
                endpoint=s.endpoint,
                config_error=s.config_error,
                last_error=s.last_error,
                last_http_status=s.last_http_status,
                consecutive_failures=s.consecutive_failures,
                last_success_at=s.last_success_at,
                delivered=s.delivered,
                duplicates=s.duplicates,
                dead_lettered=s.dead_lettered,
                requests=s.requests,
            )

    # -- the loop ----------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        client = self._http
        if client is not None:
            return client
        with self._http_lock:
            if self._http is None:
                self._http = httpx.Client(
                    timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0)),
                    headers={
                        "Authorization": f"Bearer {self._api_key}",
                        "Content-Type": "application/json",
                        "User-Agent": _USER_AGENT,
                    },
                    transport=self._transport,
                    follow_redirects=False,
                )
            return self._http

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._interrupt.wait(seconds)
        self._interrupt.clear()

    def _run(self, slot: int) -> None:
        owner = self._owners[slot]
        try:
            self._loop(slot, owner)
        except Exception:  # pragma: no cover - a bug; keep the process alive and say so
            if not self.outbox.closed:
                log.exception("the auditkeep sender thread crashed; events stay in the outbox")
        finally:
            try:
                if not self.outbox.closed:
                    self.outbox.release(owner)
            except Exception:  # pragma: no cover
                log.debug("could not release leases at exit", exc_info=True)
            with self._status_lock:
                self._status.state = "stopped"

    def _maybe_checkpoint(self, slot: int) -> None:
        """Keep the WAL short (log()'s connection leaves checkpoints to us)."""
        now = time.monotonic()
        if slot != 0 or now - self._last_checkpoint < 0.25:
            return
        self._last_checkpoint = now
        try:
            self.outbox.checkpoint()
        except sqlite3.Error:
            log.debug("checkpoint failed", exc_info=True)

    def _loop(self, slot: int, owner: str) -> None:
        db_failures = 0
        while not self._stop.is_set():
            self._maybe_checkpoint(slot)
            now = time.monotonic()
            if now - self._last_reclaim > min(self.lease_seconds / 2, 30.0):
                self._last_reclaim = now
                try:
                    self.outbox.reclaim_orphans()
                except sqlite3.Error:
                    log.warning("could not check the outbox for orphaned leases", exc_info=True)
            self._idle[slot] = True
            self._wake.clear()
            try:
                batch = self.outbox.claim(
                    owner,
                    limit=self.batch_size,
                    max_bytes=self.batch_bytes - 16,
                    lease_seconds=self.lease_seconds,
                )
                db_failures = 0
            except sqlite3.Error as exc:
                db_failures += 1
                log.warning("could not read the outbox (%s); retrying", exc)
                self._stop.wait(self.retry.delay(db_failures))
                continue
            if not batch:
                if self._on_progress is not None:
                    self._on_progress()
                if time.monotonic() - self._last_reclaim > 1.0:
                    # Nothing claimable: rows may be leased by a worker that exited.
                    self._last_reclaim = time.monotonic()
                    try:
                        if self.outbox.reclaim_orphans():
                            continue
                    except sqlite3.Error:
                        log.debug("could not check for orphaned leases", exc_info=True)
                self._wake.wait(self.poll_interval)
                continue
            self._idle[slot] = False
            if len(batch) >= self.batch_size:
                self._wake.set()  # more work is waiting: let an idle sibling take the next batch
            self._deliver(batch, owner)
            if self._on_progress is not None:
                self._on_progress()

    def _deliver(self, batch: list[PendingRow], owner: str) -> None:
        """Send one leased batch until every row in it is settled (or we are stopping)."""
        queue: list[list[PendingRow]] = [batch]
        attempt = 0
        while queue:
            if self._stop.is_set():
                self.outbox.release(owner, [r.seq for part in queue for r in part])
                return
            part = queue[0]
            answer = self._post(part)
            if answer.kind == "settled":
                if not self._settle(answer, owner, part):
                    return
                queue.pop(0)
                attempt = 0
                self._on_success(answer)
                if answer.dead:
                    log.warning(
                        "the server rejected %d event(s); they are in the outbox's dead-letter "
                        "table (auditkeep-client outbox status --outbox %s)",
                        len(answer.dead),
                        self.outbox.path,
                    )
                continue
            if answer.kind == "split":
                if len(part) == 1:
                    problem = {"result": "request_rejected", **answer.problem}
                    queue[0] = []
                    try:
                        self.outbox.settle([], [(part[0].seq, answer.http_status, problem)])
                    except sqlite3.Error as exc:  # pragma: no cover
                        log.warning("could not dead-letter an event: %s", exc)
                        queue[0] = part
                        self._sleep(self.retry.delay(attempt))
                        attempt += 1
                        continue
                    queue.pop(0)
                    with self._status_lock:
                        self._status.dead_lettered += 1
                    log.warning(
                        "an event was rejected on its own (HTTP %s); it is in the dead-letter "
                        "table",
                        answer.http_status,
                    )
                else:
                    mid = len(part) // 2
                    queue[0:1] = [part[:mid], part[mid:]]
                continue
            # transient or config: wait, renew the lease, try the same bytes again.
            attempt += 1
            delay = self.retry.delay(attempt)
            if answer.retry_after:  # honour Retry-After (0 or absent: our own backoff)
                delay = min(answer.retry_after, self.retry.max_retry_after)
            self._on_failure(answer, delay)
            self._last_checkpoint = 0.0
            self._maybe_checkpoint(0)
            seqs = [r.seq for p in queue for r in p]
            try:
                held = set(self.outbox.renew(owner, seqs, self.lease_seconds + delay))
            except sqlite3.Error:
                held = set(seqs)
            if len(held) != len(seqs):
                # Our lease lapsed and another sender took some rows: they are its job now.
                queue = [[r for r in p if r.seq in held] for p in queue]
                queue = [p for p in queue if p]
            self._sleep(delay)

    def _settle(self, answer: _Answer, owner: str, part: list[PendingRow]) -> bool:
        """Record the server's answer in the outbox, retrying the write (not the request)."""
        failures = 0
        while True:
            try:
                self.outbox.settle(answer.delivered, answer.dead)
                return True
            except sqlite3.Error as exc:
                # The server has these events. Should this process die now they are sent
                # again and the server answers "duplicate": nothing is stored twice.
                failures += 1
                log.warning("could not mark delivered events in the outbox: %s", exc)
                if self._stop.is_set():
                    with contextlib.suppress(sqlite3.Error):
                        self.outbox.release(owner, [r.seq for r in part])
                    return False
                self._sleep(self.retry.delay(failures))

    # -- one request ---------------------------------------------------------------------------

    def _pick_endpoint(self) -> int:
        if (
            self._current != 0
            and self.failback_after >= 0
            and time.monotonic() - self._failed_over_at > self.failback_after
        ):
            self._current = 0
        return self._current

    def _post(self, part: list[PendingRow]) -> _Answer:
        body = b'{"events":[' + b",".join(r.body for r in part) + b"]}"
        n = len(self.endpoints)
        start = self._pick_endpoint()
        answer = _Answer("transient")
        retry_after: float | None = None
        for i in range(n):
            idx = (start + i) % n
            url = self.endpoints[idx]
            answer = self._post_one(url, body, part)
            if answer.retry_after is not None:
                retry_after = max(retry_after or 0.0, answer.retry_after)
            if answer.kind == "transient" and answer.failover and n > 1:
                if i + 1 < n:
                    nxt = self.endpoints[(idx + 1) % n]
                    log.warning(
                        "endpoint %s failed (%s); failing over to %s", url, answer.error, nxt
                    )
                continue
            if idx != self._current:
                self._current = idx
                self._failed_over_at = time.monotonic()
            with self._status_lock:
                self._status.endpoint = url
            break
        if answer.kind == "transient" and retry_after is not None:
            answer.retry_after = retry_after
        return answer

    def _post_one(self, base: str, body: bytes, part: list[PendingRow]) -> _Answer:
        with self._status_lock:
            self._status.requests += 1
            if self._status.state != "config_error":
                self._status.state = "sending"
        try:
            resp = self._client().post(base + "/v1/events", content=body)
        except httpx.TimeoutException as exc:
            return _Answer("transient", failover=True, error=f"timeout: {type(exc).__name__}")
        except httpx.TransportError as exc:
            return _Answer("transient", failover=True, error=f"{type(exc).__name__}: {exc}")
        code = resp.status_code
        if code == 200 or code == 201:
            return self._results(resp, part)
        problem = _problem(resp)
        text = _problem_text(problem)
        if code in (429, 503):
            return _Answer(
                "transient",
                failover=code == 503,
                retry_after=parse_retry_after(resp.headers.get("retry-after")),
                error=text,
                http_status=code,
            )
        if code == 408:
            return _Answer("transient", error=text, http_status=code)
        if code >= 500:
            return _Answer("transient", failover=True, error=text, http_status=code)
        if code in _CONFIG_ERROR_STATUSES or 300 <= code < 400:
            return _Answer("config", error=text, http_status=code)
        if 400 <= code < 500:
            # 413 splits; any other whole-request rejection bisects to find the bad event.
            return _Answer("split", error=text, http_status=code, problem=problem)
        return _Answer(
            "transient", failover=True, error=f"unexpected HTTP {code}", http_status=code
        )

    def _results(self, resp: httpx.Response, part: list[PendingRow]) -> _Answer:
        try:
            data = _json.loads(resp.content)
        except ValueError:
            return _Answer("transient", failover=True, error="the server's answer is not JSON")
        if resp.status_code == 201 or (isinstance(data, dict) and "results" not in data):
            data = {"results": [data]}
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list) or len(results) != len(part):
            return _Answer(
                "transient",
                failover=True,
                error=f"the server answered {len(results or [])} results for {len(part)} events",
            )
        answer = _Answer("settled", http_status=resp.status_code)
        for row, res in zip(part, results, strict=True):
            status = res.get("status") if isinstance(res, dict) else None
            if isinstance(res, dict) and res.get("id") not in (None, row.id):
                return _Answer("transient", error="the server's answer is out of order")
            if status == "accepted":
                answer.delivered.append(row.seq)
            elif status == "duplicate":
                answer.delivered.append(row.seq)
                answer.duplicates += 1
            elif status == "rejected":
                err = res.get("error") if isinstance(res.get("error"), dict) else {}
                answer.dead.append((row.seq, resp.status_code, {"result": "rejected", **err}))
            else:
                return _Answer("transient", error=f"unknown result status {status!r}")
        return answer

    # -- status bookkeeping --------------------------------------------------------------------

    def _on_success(self, answer: _Answer) -> None:
        with self._status_lock:
            s = self._status
            was_config_error = s.config_error
            s.state = "idle"
            s.config_error = None
            s.consecutive_failures = 0
            s.last_success_at = time.time()
            s.last_http_status = answer.http_status
            s.delivered += len(answer.delivered)
            s.duplicates += answer.duplicates
            s.dead_lettered += len(answer.dead)
        if was_config_error:
            log.warning("auditkeep: the server accepts requests again; delivery resumed")

    def _on_failure(self, answer: _Answer, delay: float) -> None:
        with self._status_lock:
            s = self._status
            s.consecutive_failures += 1
            s.last_error = answer.error
            s.last_http_status = answer.http_status
            first_config = answer.kind == "config" and s.config_error is None
            if answer.kind == "config":
                s.state = "config_error"
                s.config_error = answer.error
            else:
                s.state = "retrying"
            failures = s.consecutive_failures
        now = time.monotonic()
        if answer.kind == "config":
            if first_config or now - self._last_error_log > 300:
                self._last_error_log = now
                log.error(
                    "auditkeep: the server refused the client's requests (%s). This is a "
                    "configuration problem (API key, scope or URL), not the events: they are "
                    "kept in the outbox %s and will be delivered once it is fixed.",
                    answer.error,
                    self.outbox.path,
                )
        elif failures == 1 or now - self._last_error_log > 60:
            self._last_error_log = now
            log.warning(
                "auditkeep: delivery failed (%s); retrying in %.2fs (events are kept in the "
                "outbox)",
                answer.error,
                delay,
            )


_ABANDONED: list[Any] = []
