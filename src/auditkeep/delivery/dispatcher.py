"""The delivery dispatcher: pushes each destination's events, in order, from its own cursor.

One dispatcher thread per server process finds the destinations that are due and hands each to
a small worker pool (one worker per destination at a time, so a slow receiver delays only its
own destination). A worker reads the next batch after the destination's cursor (seq order),
sends it, and only then advances the cursor, in the store, with a compare-and-set on the old
cursor. With several API nodes over one database, a worker first takes the destination's lease
(renewed with every batch; another node takes over once it expires), so one destination is
delivered by one node at a time. Delivery is at-least-once: a crash between the receiver's
answer and the cursor update sends that batch again, with the same batch id and events.

A batch is fixed once first attempted (``batch_end``): retries send exactly the same seq
range. A failed attempt schedules the next one after an exponential backoff with jitter
(``delivery_retry_base`` doubling up to ``delivery_retry_cap``), never sooner than the
receiver's Retry-After; a destination failing for longer than ``delivery_pause_after`` seconds
(or answering 410 Gone) is paused with the reason, and waits for a resume. Events are never
skipped and never leave the store, so nothing is lost however long a receiver is down.

The writer wakes the dispatcher after each commit, so a healthy destination's lag is about one
batch's round trip.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client.core import GaugeMetricFamily, Metric

from auditkeep.delivery.base import Batch, DeliveryFailed, Kind, Sender, SenderContext
from auditkeep.delivery.kinds import get_kind
from auditkeep.delivery.netguard import NetGuard
from auditkeep.delivery.secretbox import SecretBox
from auditkeep.errors import StoreUnavailable
from auditkeep.model import now_micros, parse_timestamp
from auditkeep.monitor.metrics import Metrics
from auditkeep.store.base import Destination, Store

log = logging.getLogger("auditkeep.delivery")

_SECOND = 1_000_000


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    batch_size: int = 500
    interval: float = 1.0  # seconds between looks for due destinations when not woken
    retry_base: float = 1.0
    retry_cap: float = 300.0
    pause_after: float = 86_400.0
    timeout: float = 10.0
    workers: int = 4
    max_batches_per_turn: int = 20  # then the worker yields to other destinations


def backoff(attempts: int, base: float, cap: float, retry_after: float | None) -> float:
    """Seconds before the next attempt: exponential with 'equal jitter', at least Retry-After."""
    delay: float = min(cap, base * 2.0 ** min(60, max(0, attempts - 1)))
    delay = delay / 2 + random.uniform(0, delay / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, 3600.0))
    return delay


class Dispatcher:
    """Owns outbound delivery for one process."""

    def __init__(
        self,
        store: Store,
        box: SecretBox,
        guard: NetGuard,
        metrics: Metrics,
        settings: DeliverySettings,
        *,
        tenant_slug: Callable[[int], str],
        tenant_label: Callable[[int], str] | None = None,
    ) -> None:
        self.store = store
        self.box = box
        self.guard = guard
        self.metrics = metrics
        self.settings = settings
        self._slug = tenant_slug
        #: the tenant label of the metrics (metrics_tenant_label): the slug, the id or ""
        self._label = tenant_label or tenant_slug
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._busy: set[tuple[int, str]] = set()
        self._busy_lock = threading.Lock()
        self._senders: dict[tuple[int, str], tuple[int, Sender, tuple[str, ...]]] = {}
        self._ctx = SenderContext(guard=guard, timeout=settings.timeout, hostname=_hostname())
        #: identifies this process's dispatcher in destination leases (several API nodes)
        self.node_id = f"{_hostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, *, sole: bool = False) -> None:
        """Start delivering. ``sole``: no other process can serve this store (SQLite), so
        leases left by a previous run that crashed are dropped instead of waited out."""
        if self._thread is not None:
            return
        if sole:
            self.store.release_leases(None)
        self._pool = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="auditkeep-dlv")
        self._thread = threading.Thread(target=self._run, name="auditkeep-delivery", daemon=True)
        self._thread.start()

    def wake(self, _tenant_ids: set[int] | None = None) -> None:
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop looking for work and wait for batches in flight. Safe to call twice."""
        if self._thread is None:
            return
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for _, sender, _secrets in self._senders.values():
            _close(sender)
        self._senders.clear()
        try:
            self.store.release_leases(self.node_id)  # another node may take over at once
        except Exception:
            log.exception("releasing delivery leases failed")

    # -- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self._dispatch_due()
            except StoreUnavailable as exc:  # the database is away (failover): say so, briefly
                log.warning("delivery paused while the store is unavailable: %s", exc)
            except Exception:
                log.exception("looking for due destinations failed")
            self._wake.wait(self.settings.interval)

    def _dispatch_due(self) -> None:
        pool = self._pool
        if pool is None:
            return
        for dest in self.store.due_destinations(now_micros()):
            key = (dest.tenant_id, dest.dest_id)
            with self._busy_lock:
                if key in self._busy:
                    continue
                self._busy.add(key)
            try:
                pool.submit(self._work, key)
            except RuntimeError:  # shutting down
                with self._busy_lock:
                    self._busy.discard(key)
                return

    def _work(self, key: tuple[int, str]) -> None:
        try:
            for _ in range(self.settings.max_batches_per_turn):
                if self._stop.is_set() or not self.deliver_once(*key):
                    break
            else:
                self._wake.set()  # more to do: come back after the others had a turn
        except Exception:
            log.exception("delivery to %s failed unexpectedly", key[1])
        finally:
            with self._busy_lock:
                self._busy.discard(key)

    # -- one batch --------------------------------------------------------------------------

    def deliver_once(self, tenant_id: int, dest_id: str) -> bool:
        """Send the destination's next batch. True if one was delivered (there may be more)."""
        dests = self.store.destinations(tenant_id)
        now = now_micros()
        # the lease first, then the row: what is read afterwards is what this node may act on
        # (a send takes at most the receiver timeout, well under the lease: it cannot expire
        # while the batch is in flight); every write below holds to the lease
        lease = now + int(max(30.0, 3 * self.settings.timeout) * _SECOND)
        if not dests.claim(dest_id, self.node_id, now, lease):
            self._evict((tenant_id, dest_id))
            return False  # gone, or another node's dispatcher is delivering it
        dest = dests.get(dest_id)
        if dest is None or dest.state != "active":
            self._evict((tenant_id, dest_id))
            return False
        if dest.next_attempt_at is not None and dest.next_attempt_at > now:
            return False
        events_reader = self.store.events(tenant_id)
        want = self.settings.batch_size
        if dest.batch_end is not None:
            want = max(1, dest.batch_end - dest.cursor)
        events = events_reader.after_seq(dest.cursor, want)
        if not events:
            return False
        batch = Batch(tenant_id, self._slug(tenant_id), dest_id, events)
        # fix the batch before the first attempt: after a crash between the receiver's answer
        # and the cursor update, the same seq range (same batch id, same S3 object) is sent
        # again, never a differently cut one
        fixed = dest.batch_end is not None or dests.update(
            dest_id, held_by=self.node_id, batch_end=batch.last_seq
        )
        if not fixed:
            return False
        kind = get_kind(dest.kind)
        started = time.perf_counter()
        try:
            self._sender(dest, kind).send(batch)
        except DeliveryFailed as exc:
            self._failed(dest, batch, self._redact(dest, exc.message), exc.retry_after, exc.status)
            return False
        except Exception as exc:  # a sender bug must not stall delivery silently
            log.error(
                "%s sender failed on destination %s: %s",
                dest.kind,
                dest_id,
                self._redact(dest, f"{type(exc).__name__}: {exc}"),
            )
            self._failed(
                dest,
                batch,
                f"internal error ({type(exc).__name__}); see the server log",
                None,
                None,
            )
            return False
        finally:
            self.metrics.delivery_seconds.labels(dest.kind).observe(time.perf_counter() - started)
        advanced = dests.advance(
            dest_id, dest.cursor, batch.last_seq, now_micros(), held_by=self.node_id
        )
        labels = (self._label(tenant_id), dest_id, dest.kind)
        self.metrics.delivery_attempts.labels(*labels, "success").inc()
        self.metrics.delivery_events.labels(*labels).inc(len(events))
        if not advanced:
            log.warning("destination %s moved while a batch was in flight", dest_id)
            return False
        return True

    def _failed(
        self,
        dest: Destination,
        batch: Batch,
        message: str,
        retry_after: float | None,
        status: int | None,
    ) -> None:
        now = now_micros()
        attempts = dest.attempts + 1
        failing_since = dest.failing_since or now
        delay = backoff(attempts, self.settings.retry_base, self.settings.retry_cap, retry_after)
        changes: dict[str, Any] = {
            "attempts": attempts,
            "batch_end": batch.last_seq,
            "failing_since": failing_since,
            "last_error": message[:1000],
            "last_attempt_at": now,
            "next_attempt_at": now + int(delay * _SECOND),
        }
        pause = None
        if status == 410:
            pause = "the receiver answered 410 Gone: it asks not to be sent more"
        elif (now - failing_since) / _SECOND >= self.settings.pause_after:
            pause = (
                f"failing for {(now - failing_since) / _SECOND:.0f} s "
                f"({attempts} attempts); last error: {message[:300]}"
            )
        if pause is not None:
            changes |= {"state": "paused", "paused_reason": pause, "next_attempt_at": None}
        self.store.destinations(dest.tenant_id).update(
            dest.dest_id, held_by=self.node_id, **changes
        )
        labels = (self._label(dest.tenant_id), dest.dest_id, dest.kind)
        self.metrics.delivery_attempts.labels(*labels, "failure").inc()
        log.warning(
            "delivery to %s (%s) failed, attempt %d, next in %.1f s: %s%s",
            dest.dest_id,
            dest.kind,
            attempts,
            delay,
            message[:300],
            "; destination paused" if pause else "",
        )

    def _evict(self, key: tuple[int, str]) -> None:
        """Forget the sender of a destination that is gone, paused or not ours (its client and
        connections are closed)."""
        cached = self._senders.pop(key, None)
        if cached is not None:
            _close(cached[1])

    def _redact(self, dest: Destination, message: str) -> str:
        """``message`` without any of the destination's secrets (a receiver or a library may
        echo one back, e.g. in an error about a header)."""
        cached = self._senders.get((dest.tenant_id, dest.dest_id))
        for secret in cached[2] if cached is not None else ():
            if len(secret) >= 8:  # (a shorter one would blank ordinary words, not protect)
                message = message.replace(secret, "[secret]")
        return message

    def _sender(self, dest: Destination, kind: Kind) -> Sender:
        """The destination's sender, rebuilt when its configuration or secret changed."""
        key = (dest.tenant_id, dest.dest_id)
        version = hash((dest.kind, orjson.dumps(dest.config), dest.secret))
        cached = self._senders.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        if cached is not None:
            _close(cached[1])
        secrets = self.box.open(dest.tenant_id, dest.dest_id, dest.secret)
        sender = kind.make_sender(dest.config, secrets, self._ctx)
        self._senders[key] = (version, sender, secrets.all)
        return sender


def destination_status(store: Store, dest: Destination, now: int | None = None) -> dict[str, Any]:
    """Progress of a destination: lag in events and seconds behind its tenant's log."""
    now = now_micros() if now is None else now
    events = store.events(dest.tenant_id)
    size = events.size()
    lag_events = max(0, size - dest.cursor)
    lag_seconds = 0.0
    if lag_events:
        oldest = events.after_seq(dest.cursor, 1)
        if oldest:
            received = orjson.loads(oldest[0].leaf_data).get("received_at")
            if isinstance(received, str):
                lag_seconds = max(0.0, (now - parse_timestamp(received)) / _SECOND)
    return {"log_size": size, "lag_events": lag_events, "lag_seconds": round(lag_seconds, 3)}


def _close(sender: Sender) -> None:
    try:
        sender.close()
    except Exception:
        log.exception("closing a sender failed")


def _hostname() -> str:
    name = socket.gethostname() or "auditkeep"
    return name.split(".", 1)[0][:255]


class DeliveryStatusCollector:
    """Per-destination lag, paused state and failure streak, computed at scrape time."""

    def __init__(self, store: Store, tenant_label: Callable[[int], str]) -> None:
        self.store = store
        self._label = tenant_label

    def collect(self) -> Iterator[Metric]:
        labels = ["tenant", "destination", "kind"]
        lag_events = GaugeMetricFamily(
            "auditkeep_delivery_lag_events",
            "Events in the tenant's log not yet delivered to the destination.",
            labels=labels,
        )
        lag_seconds = GaugeMetricFamily(
            "auditkeep_delivery_lag_seconds",
            "Age of the oldest event not yet delivered (0 when caught up).",
            labels=labels,
        )
        paused = GaugeMetricFamily(
            "auditkeep_delivery_paused", "1 if the destination is paused.", labels=labels
        )
        failing = GaugeMetricFamily(
            "auditkeep_delivery_failed_attempts",
            "Failed attempts of the batch in flight (0 when healthy).",
            labels=labels,
        )
        try:
            dests = self.store.all_destinations()
            now = now_micros()
            for dest in dests:
                values = [self._label(dest.tenant_id), dest.dest_id, dest.kind]
                status = destination_status(self.store, dest, now)
                lag_events.add_metric(values, status["lag_events"])
                lag_seconds.add_metric(values, status["lag_seconds"])
                paused.add_metric(values, 1.0 if dest.state == "paused" else 0.0)
                failing.add_metric(values, dest.attempts)
        except Exception:
            log.exception("collecting delivery metrics failed")
        yield from (lag_events, lag_seconds, paused, failing)
