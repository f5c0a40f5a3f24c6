"""The durable local outbox: a SQLite file (WAL) holding events until the server has them.

Tables:

- ``outbox``: one row per pending event (``seq`` = rowid, the event ``id``, its canonical JSON
  ``body``, when it was logged, and the lease: ``lease_owner`` / ``lease_until``). A row leaves
  this table only when the server answered ``accepted`` or ``duplicate`` for it (it is deleted)
  or rejected it for good (it moves to ``dead``).
- ``dead``: dead letters, with the server's HTTP status and its reason as JSON.

Several senders (threads, forked workers, separate processes) may share one file: a sender
claims rows by setting ``lease_owner``/``lease_until`` inside a ``BEGIN IMMEDIATE``
transaction, so no two senders hold the same row at once. A lease that expires (its owner died
or hung) is claimed again; a lease whose owner is a dead process on this host is reclaimed at
once.

Fork safety: connections are never carried across ``os.fork()``. A registered fork hook closes
them in the parent just before the fork (after waiting for any statement in progress), and both
sides reopen them lazily on next use.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from .errors import OutboxFull

__all__ = ["DeadLetter", "Outbox", "OutboxStats", "PendingRow", "Synchronous"]

log = logging.getLogger("auditkeep_client.outbox")

Synchronous = Literal["NORMAL", "FULL", "EXTRA"]
_SYNC_VALUES: Final = ("NORMAL", "FULL", "EXTRA")

SCHEMA_VERSION: Final = 1

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    seq         INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL,
    body        BLOB    NOT NULL,
    created_us  INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS dead (
    dead_seq    INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL,
    body        BLOB    NOT NULL,
    created_us  INTEGER NOT NULL,
    dead_us     INTEGER NOT NULL,
    attempts    INTEGER NOT NULL,
    http_status INTEGER,
    error       TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""

_INSERT: Final = "INSERT INTO outbox (id, body, created_us) VALUES (?, ?, ?)"
_SQLITE_FULL: Final = 13


def now_us() -> int:
    """Wall-clock microseconds (leases are compared across processes, so not monotonic)."""
    return time.time_ns() // 1000


def _is_disk_full(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code == _SQLITE_FULL or "database or disk is full" in str(exc)


def _pid_alive(pid: int) -> bool:
    """Whether a local process exists and has not exited (a zombie counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in (b"Z", b"X")


@dataclass(frozen=True, slots=True)
class PendingRow:
    """One claimed outbox row."""

    seq: int
    id: str
    body: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event the server rejected for good, with the server's reason."""

    dead_seq: int
    id: str
    body: bytes
    created_us: int
    dead_us: int
    attempts: int
    http_status: int | None
    error: dict[str, Any]

    def event(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Counts and ages, as the ``auditkeep-client outbox status`` command prints them."""

    pending: int
    pending_bytes: int
    leased: int
    dead: int
    oldest_pending_age_s: float | None
    oldest_dead_age_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "pending_bytes": self.pending_bytes,
            "leased": self.leased,
            "dead": self.dead,
            "oldest_pending_age_s": self.oldest_pending_age_s,
            "oldest_dead_age_s": self.oldest_dead_age_s,
        }


_LIVE: weakref.WeakSet[Outbox] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


def _before_fork() -> None:
    for ob in list(_LIVE):
        ob._before_fork()


def _after_fork_parent() -> None:
    for ob in list(_LIVE):
        ob._after_fork_parent()


def _after_fork_child() -> None:
    for ob in list(_LIVE):
        ob._after_fork_child()


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_parent, after_in_child=_after_fork_child
)


def _seq_list(seqs: Sequence[int]) -> str:
    return json.dumps(list(seqs))


class Outbox:
    """A SQLite outbox file. Thread-safe; safe across fork; shareable between processes.

    ``synchronous`` is SQLite's ``PRAGMA synchronous`` for the writing connection, in WAL mode:

    - ``"NORMAL"``: a committed event survives the process being killed (the data is in the
      OS page cache, and SQLite recovers the WAL on next open) but the last commits can be lost
      on power loss or an OS crash. The file is never corrupted.
    - ``"FULL"``: each commit fsyncs the WAL; the event also survives power loss. Costs one
      fsync per ``log()``.
    - ``"EXTRA"``: like FULL, and also syncs the directory when the WAL is created/reset.

    ``max_pending_events`` / ``max_pending_bytes`` cap the ``outbox`` table; beyond them (or
    when SQLite reports the disk full) :meth:`append` raises :class:`OutboxFull`, or first
    waits up to ``block_timeout`` seconds for the sender to make room.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "NORMAL",
        busy_timeout: float = 10.0,
        max_pending_events: int | None = None,
        max_pending_bytes: int | None = None,
        max_page_count: int | None = None,
        writer_checkpoints: bool = True,
    ) -> None:
        sync = synchronous.upper()
        if sync not in _SYNC_VALUES:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNC_VALUES)}, not {sync!r}")
        self.path = Path(path)
        self.synchronous: str = sync
        self.busy_timeout = busy_timeout
        self.max_pending_events = max_pending_events
        self.max_pending_bytes = max_pending_bytes
        self._max_page_count = max_page_count
        # False when a sender thread in this process runs checkpoint() regularly: then log()'s
        # connection never checkpoints (which would cost it an fsync now and then).
        self.writer_checkpoints = writer_checkpoints
        self.last_checkpoint_at = time.monotonic()
        self._appends = 0
        self._caps = max_pending_events is not None or max_pending_bytes is not None
        self._wlock = threading.Lock()  # the writing connection (log)
        self._slock = threading.Lock()  # the sender/admin connection
        self._room = threading.Condition(threading.Lock())
        self._wconn: sqlite3.Connection | None = None
        self._wcur: sqlite3.Cursor | None = None
        self._sconn: sqlite3.Connection | None = None
        self._closed = False
        self.last_seq = 0  # the highest seq appended through this object
        # Estimated pending counts (exact when refreshed; other processes' inserts are seen only
        # on refresh, which happens whenever the estimate comes near a cap).
        self._est_events = 0
        self._est_bytes = 0
        self._host = socket.gethostname()
        self._init_file()
        if self._caps:
            self._refresh_estimate()
        with _LIVE_LOCK:
            _LIVE.add(self)

    # -- connections -----------------------------------------------------------------------

    def _init_file(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # The outbox holds event payloads: readable by its owner only.
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
            except OSError:  # pragma: no cover - e.g. a read-only directory; connect() reports
                pass
        with self._slock:
            conn = self._sender_conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
                conn.execute(
                    "INSERT OR IGNORE INTO meta (k, v) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise

    def _connect(self, *, writer: bool) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("the outbox is closed")
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=32,
        )
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                raise sqlite3.OperationalError(f"could not put {self.path} in WAL mode")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA journal_size_limit=67108864")
            if writer and not self.writer_checkpoints:
                # A background sender checkpoints (see checkpoint()); log() never pays for it.
                conn.execute("PRAGMA wal_autocheckpoint=0")
            if self._max_page_count is not None:
                conn.execute(f"PRAGMA max_page_count={int(self._max_page_count)}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _sender_conn(self) -> sqlite3.Connection:
        conn = self._sconn
        if conn is None:
            conn = self._sconn = self._connect(writer=False)
        return conn

    def _open_writer(self) -> sqlite3.Cursor:
        self._wconn = self._connect(writer=True)
        self._wcur = self._wconn.cursor()
        return self._wcur

    def _before_fork(self) -> None:
        self._wlock.acquire()
        self._slock.acquire()
        for conn in (self._wconn, self._sconn):
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
        self._wconn = self._sconn = None
        self._wcur = None

    def _after_fork_parent(self) -> None:
        self._slock.release()
        self._wlock.release()

    def _after_fork_child(self) -> None:
        self._wlock = threading.Lock()
        self._slock = threading.Lock()
        self._room = threading.Condition(threading.Lock())
        self._wconn = self._sconn = None
        self._wcur = None

    def close(self) -> None:
        """Close both connections. Pending rows stay in the file for the next run."""
        with self._wlock, self._slock:
            for conn in (self._wconn, self._sconn):
                if conn is not None:
                    with contextlib.suppress(sqlite3.Error):
                        conn.close()
            self._wconn = self._sconn = None
            self._wcur = None
            self._closed = True
        with _LIVE_LOCK:
            _LIVE.discard(self)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- writing (the log() path) ------------------------------------------------------------

    def append(self, event_id: str, body: bytes, *, block_timeout: float | None = None) -> int:
        """Store one event durably (per ``synchronous``); return its outbox ``seq``.

        Raises OutboxFull when a cap is reached or the disk is full; with ``block_timeout``
        it first waits that many seconds for room.
        """
        if self._caps and not self._has_room(len(body)):
            self._wait_for_room(len(body), block_timeout, None)
        created = time.time_ns() // 1000
        deadline: float | None = None
        while True:
            try:
                with self._wlock:
                    cur = self._wcur
                    if cur is None:
                        cur = self._open_writer()
                    cur.execute(_INSERT, (event_id, body, created))
                    seq = cur.lastrowid
                    if seq is not None and seq > self.last_seq:
                        self.last_seq = seq
                    self._appends += 1
                    if (
                        self._appends % 1000 == 0
                        and not self.writer_checkpoints
                        and time.monotonic() - self.last_checkpoint_at > 2.0
                    ):
                        # The sender has not checkpointed lately (e.g. it is backing off
                        # during an outage): keep the WAL bounded ourselves.
                        cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                        self.last_checkpoint_at = time.monotonic()
                break
            except sqlite3.OperationalError as exc:
                if not _is_disk_full(exc):
                    raise
                if block_timeout is None or block_timeout <= 0:
                    raise OutboxFull(
                        f"the outbox {self.path} is full (SQLite: {exc}); the event was not stored"
                    ) from exc
                if deadline is None:
                    deadline = time.monotonic() + block_timeout
                self._wait_for_room(len(body), block_timeout, deadline, disk_full=True)
        self._est_events += 1
        self._est_bytes += len(body)
        assert seq is not None
        return seq

    def _has_room(self, size: int) -> bool:
        ev_cap, by_cap = self.max_pending_events, self.max_pending_bytes
        near = (ev_cap is not None and self._est_events + 1 >= ev_cap * 0.9) or (
            by_cap is not None and self._est_bytes + size >= by_cap * 0.9
        )
        if near:
            self._refresh_estimate()
        if ev_cap is not None and self._est_events + 1 > ev_cap:
            return False
        return not (by_cap is not None and self._est_bytes + size > by_cap)

    def _refresh_estimate(self) -> None:
        with self._slock:
            row = (
                self._sender_conn()
                .execute("SELECT count(*), coalesce(sum(length(body)), 0) FROM outbox")
                .fetchone()
            )
        self._est_events, self._est_bytes = int(row[0]), int(row[1])

    def _wait_for_room(
        self, size: int, timeout: float | None, deadline: float | None, *, disk_full: bool = False
    ) -> None:
        if timeout is None or timeout <= 0:
            raise OutboxFull(
                f"the outbox {self.path} holds {self._est_events} pending events "
                f"({self._est_bytes} bytes); the cap is "
                f"{self.max_pending_events} events / {self.max_pending_bytes} bytes",
                pending_events=self._est_events,
                pending_bytes=self._est_bytes,
            )
        if deadline is None:
            deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                what = "the disk is full" if disk_full else "the pending cap is reached"
                raise OutboxFull(
                    f"the outbox {self.path} had no room for {timeout:g}s ({what}); "
                    "the event was not stored",
                    pending_events=self._est_events,
                    pending_bytes=self._est_bytes,
                )
            with self._room:
                self._room.wait(min(remaining, 0.05))
            if disk_full:
                return  # the caller retries the INSERT
            if self._has_room(size):
                return

    # -- the sender's side ---------------------------------------------------------------------

    def claim(
        self, owner: str, *, limit: int, max_bytes: int, lease_seconds: float
    ) -> list[PendingRow]:
        """Lease up to ``limit`` unleased rows (oldest first) whose bodies fit in ``max_bytes``."""
        now = now_us()
        until = now + int(lease_seconds * 1_000_000)
        with self._slock:
            conn = self._sender_conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = conn.execute(
                    "SELECT seq, id, body, attempts FROM outbox WHERE lease_until < ? "
                    "ORDER BY seq LIMIT ?",
                    (now, limit),
                ).fetchall()
                taken: list[PendingRow] = []
                total = 0
                for seq, event_id, body, attempts in rows:
                    size = len(body) + 1
                    if taken and total + size > max_bytes:
                        break
                    taken.append(PendingRow(seq, event_id, bytes(body), attempts + 1))
                    total += size
                if taken:
                    conn.execute(
                        "UPDATE outbox SET lease_owner = ?, lease_until = ?,"
                        " attempts = attempts + 1 WHERE seq IN (SELECT value FROM json_each(?))",
                        (owner, until, _seq_list([r.seq for r in taken])),
                    )
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        return taken

    def renew(self, owner: str, seqs: Sequence[int], lease_seconds: float) -> list[int]:
        """Extend our lease on ``seqs``; returns the seqs we still hold."""
        until = now_us() + int(lease_seconds * 1_000_000)
        with self._slock:
            rows = (
                self._sender_conn()
                .execute(
                    "UPDATE outbox SET lease_until = ? WHERE lease_owner = ? "
                    "AND seq IN (SELECT value FROM json_each(?)) RETURNING seq",
                    (until, owner, _seq_list(seqs)),
                )
                .fetchall()
            )
        return [r[0] for r in rows]

    def release(self, owner: str, seqs: Sequence[int] | None = None) -> int:
        """Give rows back (lease cleared) so any sender may take them at once."""
        with self._slock:
            conn = self._sender_conn()
            if seqs is None:
                cur = conn.execute(
                    "UPDATE outbox SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = ?",
                    (owner,),
                )
            else:
                cur = conn.execute(
                    "UPDATE outbox SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = ? "
                    "AND seq IN (SELECT value FROM json_each(?))",
                    (owner, _seq_list(seqs)),
                )
            return cur.rowcount

    def settle(
        self,
        delivered: Sequence[int],
        dead: Sequence[tuple[int, int | None, dict[str, Any]]] = (),
    ) -> None:
        """Delete delivered rows; move ``(seq, http_status, error)`` rows to dead letters."""
        if not delivered and not dead:
            return
        now = now_us()
        with self._slock:
            conn = self._sender_conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                if dead:
                    conn.executemany(
                        "INSERT INTO dead (id, body, created_us, dead_us, attempts, http_status,"
                        " error) SELECT id, body, created_us, ?, attempts, ?, ? FROM outbox"
                        " WHERE seq = ?",
                        [
                            (now, status, json.dumps(error, ensure_ascii=False), seq)
                            for seq, status, error in dead
                        ],
                    )
                seqs = [*delivered, *(d[0] for d in dead)]
                cur = conn.execute(
                    "DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each(?))",
                    (_seq_list(seqs),),
                )
                removed = cur.rowcount
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        self._est_events = max(0, self._est_events - removed)
        if self._caps:
            self._refresh_estimate()
        with self._room:
            self._room.notify_all()

    def reclaim_orphans(self) -> int:
        """Clear leases held by processes on this host that no longer exist."""
        now = now_us()
        reclaimed = 0
        with self._slock:
            conn = self._sender_conn()
            owners = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT lease_owner FROM outbox "
                    "WHERE lease_until >= ? AND lease_owner IS NOT NULL",
                    (now,),
                )
            ]
            for owner in owners:
                pid, host = _parse_owner(owner)
                if pid is None or host != self._host or pid == os.getpid() or _pid_alive(pid):
                    continue
                cur = conn.execute(
                    "UPDATE outbox SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = ?",
                    (owner,),
                )
                reclaimed += cur.rowcount
        if reclaimed:
            log.info("reclaimed %d outbox rows leased by exited processes", reclaimed)
        return reclaimed

    def pending_through(self, seq: int, created_by_us: int | None = None) -> bool:
        """True while some row with ``seq`` at or below the given one is still pending (and,
        with ``created_by_us``, was appended at or before that time: a seq freed by a delivered
        row can be reused by a later append, which must not extend a wait)."""
        sql = "SELECT EXISTS(SELECT 1 FROM outbox WHERE seq <= ?)"
        args: tuple[int, ...] = (seq,)
        if created_by_us is not None:
            sql = "SELECT EXISTS(SELECT 1 FROM outbox WHERE seq <= ? AND created_us <= ?)"
            args = (seq, created_by_us)
        with self._slock:
            row = self._sender_conn().execute(sql, args).fetchone()
        return bool(row[0])

    def pending_mark(self) -> tuple[int, int]:
        """``(highest pending seq, now in µs)``: what is pending now, in every process using
        this file, for :meth:`pending_through` (``(0, now)`` when nothing is pending)."""
        with self._slock:
            row = self._sender_conn().execute("SELECT coalesce(max(seq), 0) FROM outbox").fetchone()
        return int(row[0]), now_us()

    def has_claimable(self) -> bool:
        with self._slock:
            row = (
                self._sender_conn()
                .execute("SELECT EXISTS(SELECT 1 FROM outbox WHERE lease_until < ?)", (now_us(),))
                .fetchone()
            )
        return bool(row[0])

    def checkpoint(self) -> tuple[int, int]:
        """Copy committed WAL frames into the database file without blocking writers.
        Returns ``(wal_frames, checkpointed_frames)``."""
        with self._slock:
            row = self._sender_conn().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.last_checkpoint_at = time.monotonic()
        return int(row[1]), int(row[2])

    # -- inspection and dead-letter administration ------------------------------------------------

    def stats(self) -> OutboxStats:
        now = now_us()
        with self._slock:
            conn = self._sender_conn()
            p = conn.execute(
                "SELECT count(*), coalesce(sum(length(body)), 0), min(created_us),"
                " coalesce(sum(lease_until >= ?), 0) FROM outbox",
                (now,),
            ).fetchone()
            d = conn.execute("SELECT count(*), min(dead_us) FROM dead").fetchone()
        return OutboxStats(
            pending=int(p[0]),
            pending_bytes=int(p[1]),
            leased=int(p[3]),
            dead=int(d[0]),
            oldest_pending_age_s=None if p[2] is None else max(0.0, (now - p[2]) / 1e6),
            oldest_dead_age_s=None if d[1] is None else max(0.0, (now - d[1]) / 1e6),
        )

    def dead_letters(self, ids: Sequence[str] | None = None) -> Iterator[DeadLetter]:
        """Dead letters, oldest first (optionally only those with the given event ids)."""
        sql = (
            "SELECT dead_seq, id, body, created_us, dead_us, attempts, http_status, error FROM dead"
        )
        params: tuple[Any, ...] = ()
        if ids is not None:
            sql += " WHERE id IN (SELECT value FROM json_each(?))"
            params = (json.dumps(list(ids)),)
        with self._slock:
            rows = self._sender_conn().execute(sql + " ORDER BY dead_seq", params).fetchall()
        for r in rows:
            try:
                error = json.loads(r[7])
            except ValueError:
                error = {"detail": r[7]}
            yield DeadLetter(r[0], r[1], bytes(r[2]), r[3], r[4], r[5], r[6], error)

    def retry_dead(self, ids: Sequence[str] | None = None) -> int:
        """Move dead letters back to the outbox (all, or those with the given ids)."""
        where, params = _id_filter(ids)
        with self._slock:
            conn = self._sender_conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT INTO outbox (id, body, created_us) SELECT id, body, created_us"
                    f" FROM dead{where} ORDER BY dead_seq",
                    params,
                )
                n = conn.execute(f"DELETE FROM dead{where}", params).rowcount
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        return n

    def purge_dead(self, ids: Sequence[str] | None = None) -> int:
        """Delete dead letters for good (all, or those with the given ids)."""
        where, params = _id_filter(ids)
        with self._slock:
            return self._sender_conn().execute(f"DELETE FROM dead{where}", params).rowcount

    def pending_events(self, limit: int | None = None) -> list[tuple[int, str, bytes]]:
        """``(seq, id, body)`` of pending rows, oldest first (for inspection and export)."""
        with self._slock:
            rows = (
                self._sender_conn()
                .execute(
                    "SELECT seq, id, body FROM outbox ORDER BY seq LIMIT ?",
                    (-1 if limit is None else limit,),
                )
                .fetchall()
            )
        return [(r[0], r[1], bytes(r[2])) for r in rows]


def _id_filter(ids: Sequence[str] | None) -> tuple[str, tuple[Any, ...]]:
    if ids is None:
        return "", ()
    return " WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(list(ids)),)


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:  # pragma: no cover
        pass


def make_owner() -> str:
    """A lease owner name: ``pid@host/random`` (so a dead local owner can be recognised)."""
    return f"{os.getpid()}@{socket.gethostname()}/{os.urandom(4).hex()}"


def _parse_owner(owner: str) -> tuple[int | None, str]:
    pid_text, _, rest = owner.partition("@")
    host = rest.rpartition("/")[0]
    try:
        return int(pid_text), host
    except ValueError:
        return None, host
