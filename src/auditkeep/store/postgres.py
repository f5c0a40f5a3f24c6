"""The PostgreSQL store: the Store contract of ``store/base.py`` over a PostgreSQL database that
several API nodes share (schema: ``migrations/postgres/*.sql``).

Why it looks the way it does:

* **Writers serialize in the database, not in the process.** ``append`` runs one transaction
  that locks the ``log_heads`` rows of its tenants (``SELECT ... FOR UPDATE``, in tenant_id
  order, so two nodes cannot deadlock), reads each Merkle frontier from that row (never from a
  cache: another node may have appended), decides duplicates from ``event_ids``, assigns
  gap-free seqs, extends the tree exactly as ``sqlite.py`` does, writes every table with COPY
  and advances the heads. Each node keeps its own group-commit writer; nodes appending to the
  same tenant take turns on the row lock.
* **Idempotency survives failover.** An event whose commit outcome is unknown (the connection
  broke during COMMIT) is reported as an error, never as accepted; the client's retry with the
  same id is then either accepted or a duplicate. With ``durability=full`` a commit is
  acknowledged only once PostgreSQL has made it durable (``synchronous_commit``; with a
  synchronous standby, once the standby has it too), so no acknowledged event is lost when the
  primary fails over.
* **Partitions by month** of ``received_at`` for ``events`` and ``event_targets``, created ahead
  of time by :meth:`PostgresStore.ensure_partitions`, so retention can drop whole months; a
  DEFAULT partition catches anything else. A new partition is attached with ``ATTACH
  PARTITION``, whose lock on the parent does not conflict with readers or writers; only the
  DEFAULT partition is locked exclusively, and for at most a 2 s ``lock_timeout``.
* **Idempotency without reading events**: a partitioned table's unique constraints must
  include the partition key, so ``(tenant_id, id)`` is the primary key of the unpartitioned
  ``event_ids`` table, which also holds the SHA-256 of the event's canonical content.
* **Connections** come from a ``psycopg_pool.ConnectionPool`` of autocommit connections:
  single-statement reads need no BEGIN/COMMIT; writes and :meth:`PostgresStore.snapshot` open
  explicit transactions. After a broken connection the pool's idle connections are dropped
  untested (a failover kills them all; testing one on a hung server would hang); a read, or a
  transaction whose BEGIN found its connection dead, is retried once on a fresh one.
* **A primary that stops answering** (hung, stopped, behind a network black hole) does not hold
  a writer for ever: every write transaction runs under a watchdog (``write_timeout``) that shuts
  the connection's socket down when it is overdue; the write then fails as unknown (503, retry
  with the same ids) and the pool's idle connections, which likely lead to the same server, are
  dropped. New connections get short connect timeouts, TCP keepalives and ``tcp_user_timeout``
  unless the URL sets them, and reconnection is retried at least every few seconds (the pool's
  backoff is cut short), so writes resume within seconds of a promotion. While no connection
  can be made, requests wait at most ``_DEGRADED_TIMEOUT`` for one (fast 503s).
* **An acknowledgement means replicated.** A COMMIT whose wait for the synchronous standby was
  cancelled (``pg_cancel_backend``, ``statement_timeout``) succeeds with a WARNING: the
  transaction is committed locally only. That warning fails the write (503, retry).
* **Fencing** (:class:`Fence`): each node remembers the database's system identifier, the
  highest timeline it has seen and each tenant's largest acknowledged log size (in memory, and
  in ``postgres-state.json`` in its data directory); a database behind any of them (a former
  primary that came back read-write) is refused.
* **Errors are mapped at the boundary**: connection and operational errors become
  ``StoreUnavailable`` (503, retry), unique violations ``Conflict`` where SQLite raises it,
  anything else ``StoreError``. No message carries the password of the database URL.
"""

from __future__ import annotations

import calendar
import contextlib
import fcntl
import getpass
import hashlib
import logging
import os
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
import psycopg_pool
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus

from auditkeep.errors import AuditkeepError, ConfigError, Conflict, StoreError, StoreUnavailable
from auditkeep.integrity.merkle import CompactRange
from auditkeep.model import now_micros
from auditkeep.store.base import (
    SYSTEM_TENANT_ID,
    SYSTEM_TENANT_SLUG,
    AppendResult,
    PageRequest,
    Position,
    StoredEvent,
    TenantAppend,
)
from auditkeep.store.sql import (
    EVENT_COLUMNS,
    PREFIX_MERGE_MAX_ACTIONS,
    SQLStore,
    SQLTenantEvents,
    SQLTenantLog,
    append_tiles,
    frontier,
    migrations,
    page_by_target,
    prefix_range,
    pyformat,
)
from auditkeep.store.sql import Connection as SharedConnection

log = logging.getLogger("auditkeep.store.postgres")

Connection = psycopg.Connection[tuple[Any, ...]]

_LOCK_KEY = 0x6175_6469_746B_6570  # pg_advisory_xact_lock key of schema changes ("auditkep")
_PARTITION_MONTHS = 3  # the current month and the next two
_PARTITIONED = ("events", "event_targets")
_PARTITION_LOCK_TIMEOUT = "2s"  # ATTACH PARTITION waits (and delays readers) at most this
_PARTITION_WRITE_TIMEOUT = 60.0  # the watchdog's deadline for making partitions
_PARTITION_RETRY_US = 60 * 1_000_000  # after a failed ensure_partitions, try again this late
_POOL_TIMEOUT = 10.0  # seconds to wait for a pooled connection
_READY_TIMEOUT = 2.0  # ... for /readyz (also the longest a readiness query may take)
_DEGRADED_TIMEOUT = 1.5  # ... while the last connection broke and no new one was made since
_READ_TIMEOUT = 30.0  # a pooled read that takes longer: its connection is abandoned
_FENCED_FOR = 30.0  # a host refused by the fence is left out of new connections this long
_RECONNECT_WINDOW = 3.0  # the pool retries a failed connect at most this long, then gives up
# until the next request asks (psycopg_pool's backoff would otherwise space attempts 1, 2, 4, 8,
# 16... s apart, and writes would resume long after a promotion)
_CONNECT_TIMEOUT = 2  # seconds per host (libpq's minimum), unless the URL or PGCONNECT_TIMEOUT says
# Defaults for a connection whose URL does not set them: a dead peer or a black-holed network is
# noticed in seconds (keepalives on idle connections, tcp_user_timeout on unacknowledged data).
_TCP_DEFAULTS: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 9000,  # milliseconds
}
STATE_FILE = "postgres-state.json"  # in the data directory: what this node has seen (Fence)
_BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"
_BEGIN_SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

_EVENT_COPY = (
    "COPY events (tenant_id, seq, id, action, category, outcome, actor_id, occurred_at,"
    " received_at, leaf_hash, leaf_data) FROM STDIN (FORMAT BINARY)"
)
_EVENT_TYPES = (
    "int8",
    "int8",
    "text",
    "text",
    "text",
    "text",
    "bytea",
    "int8",
    "int8",
    "bytea",
    "bytea",
)
_TARGET_COPY = (
    "COPY event_targets (tenant_id, seq, target_type, target_id, occurred_at, received_at)"
    " FROM STDIN (FORMAT BINARY)"
)
_TARGET_TYPES = ("int8", "int8", "text", "bytea", "int8", "int8")
_ID_COPY = "COPY event_ids (tenant_id, id, seq, content_hash) FROM STDIN (FORMAT BINARY)"
_ID_TYPES = ("int8", "text", "int8", "bytea")


# -- the database URL, without its password --------------------------------------------------

_URL_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with each of ``secrets`` (passwords, in any of the forms :func:`url_secrets`
    lists) and the password of any PostgreSQL URL or conninfo in it replaced by ``***``."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        for form in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret)}:
            text = text.replace(form, "***")
    text = _URL_PASSWORD.sub(r"\1***@", text)
    return _KEYWORD_PASSWORD.sub(r"\1***", text)


def url_secrets(url: str) -> list[str]:
    """Every form in which the password of ``url`` could reach a message: as parsed and as
    written (percent-encoded or not) and, when the URL is malformed (a password with an
    unescaped ``/``, ``@`` or ``:``), each piece of it that a parser may have taken for a host,
    port or database name."""
    found: set[str] = set()
    try:
        parsed = urllib.parse.urlsplit(url).password
    except ValueError:
        parsed = None
    written = None
    if "://" in url:
        rest = url.split("://", 1)[1]
        if "@" in rest:
            credentials = rest.rsplit("@", 1)[0]  # up to the last '@': the password's end
            if ":" in credentials:
                written = credentials.split(":", 1)[1]
    try:
        keyword = conninfo_to_dict(url).get("password")
    except psycopg.Error:
        keyword = None
    for value in (parsed, written, keyword):
        if value:
            found |= {str(value), urllib.parse.unquote(str(value))}
    if written and urllib.parse.unquote(written) != urllib.parse.unquote(parsed or ""):
        for value in (written, urllib.parse.unquote(written)):
            for piece in re.split(r"[/?#@:]", value):
                if len(piece) >= 3:
                    found |= {piece, urllib.parse.unquote(piece)}
    return sorted(found, key=len, reverse=True)


def describe_url(url: str) -> str:
    """Where ``url`` points, for messages: hosts and ports, database and user (no password)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        return redact(url, *url_secrets(url))
    return redact(_describe(params), *url_secrets(url))


def _describe(params: dict[str, Any]) -> str:
    hosts = str(params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST") or "")
    ports = str(params.get("port") or os.environ.get("PGPORT") or "5432").split(",")
    names = hosts.split(",") if hosts else ["localhost (Unix socket)"]
    if len(ports) == 1:
        ports = ports * len(names)
    where = ",".join(
        host if host.startswith("/") else f"{host}:{port}"
        for host, port in zip(names, ports, strict=False)
    )
    user = str(params.get("user") or os.environ.get("PGUSER") or _os_user())
    dbname = str(params.get("dbname") or os.environ.get("PGDATABASE") or user)
    return f"{where} (database {dbname!r}, user {user!r})"


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "?"


_LOGIN_PROBLEMS = (
    "password",
    "authentication",
    "does not exist",
    "no pg_hba.conf entry",
    "permission denied",
    "not permitted to log in",
)


def _month_bounds(now: int, count: int = _PARTITION_MONTHS) -> list[tuple[str, int, int]]:
    """``(suffix, first, end)`` of ``count`` calendar months (UTC) from the one holding ``now``
    (microseconds): first inclusive, end exclusive, both in microseconds."""
    at = datetime.fromtimestamp(now // 1_000_000, UTC)
    year, month = at.year, at.month
    out = []
    for _ in range(count):
        nyear, nmonth = (year + 1, 1) if month == 12 else (year, month + 1)
        first = calendar.timegm((year, month, 1, 0, 0, 0)) * 1_000_000
        end = calendar.timegm((nyear, nmonth, 1, 0, 0, 0)) * 1_000_000
        out.append((f"p{year:04d}_{month:02d}", first, end))
        year, month = nyear, nmonth
    return out


def _next_month(now: int) -> int:
    """The first microsecond of the month after the one holding ``now``."""
    return _month_bounds(now, 1)[0][2]


def _bindable(*values: str | None) -> bool:
    """Whether every value can be sent as PostgreSQL text (no U+0000, valid UTF-8). A filter
    value that cannot matches nothing: no stored text column holds such a value."""
    for value in values:
        if value is None:
            continue
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True


def _utf8(value: str) -> bytes:
    """A free-form id (actor, target) as stored: its UTF-8 (bytea columns)."""
    return value.encode("utf-8", errors="surrogatepass")


def _content_hash(content: bytes) -> bytes:
    return hashlib.sha256(content).digest()


def connection_defaults(params: dict[str, Any]) -> dict[str, Any]:
    """Connection keywords for the settings ``params`` (a parsed URL) leaves unset: the connect
    timeout per host, TCP keepalives and ``tcp_user_timeout``, and the application name."""
    kwargs: dict[str, Any] = {}
    if "connect_timeout" not in params and "PGCONNECT_TIMEOUT" not in os.environ:
        kwargs["connect_timeout"] = _CONNECT_TIMEOUT
    if "application_name" not in params and "PGAPPNAME" not in os.environ:
        kwargs["application_name"] = "auditkeep"
    for name, value in _TCP_DEFAULTS.items():
        if name not in params:
            kwargs[name] = value
    return kwargs


def connect_snapshot(url: str) -> Connection:
    """One connection in a read-only REPEATABLE READ transaction (a consistent snapshot), for
    verification workers. StoreUnavailable, without the password, if it cannot connect."""
    secrets = url_secrets(url)
    try:
        params: dict[str, Any] = {"autocommit": True, **connection_defaults(conninfo_to_dict(url))}
        conn: Connection = psycopg.connect(url, **params)
        try:
            conn.execute(_BEGIN_SNAPSHOT)
        except BaseException:
            conn.close()
            raise
    except psycopg.Error as exc:
        raise StoreUnavailable(
            f"cannot read PostgreSQL at {describe_url(url)}: {redact(str(exc).strip(), *secrets)}"
        ) from None
    return conn


# -- abandoning connections whose server stops answering --------------------------------------


class _Watch:
    """One armed deadline of a :class:`Watchdog` (``fired`` once the connection was cut)."""

    __slots__ = ("conn", "deadline", "fired")

    def __init__(self, conn: Connection | None, deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self.fired = False


class Watchdog:
    """Cuts connections whose statements overrun their deadline.

    A primary that is stopped or cut off by the network keeps its TCP connections open (or
    silent) and never answers: a thread waiting for it waits for ever, and no server-side
    timeout can help. :meth:`watch` arms a deadline for one connection; when it passes, one
    background thread shuts the connection's socket down, which wakes the waiting thread with
    a connection error. (The fd stays valid while armed: the connection is closed only after
    the guarded block, and disarming takes the same lock.)
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: set[_Watch] = set()
        self._wake_at: float | None = None  # when the thread next wakes (None: when notified)
        self._thread: threading.Thread | None = None
        self._closed = False

    def arm(self, conn: Connection, seconds: float) -> _Watch:
        """Cut ``conn`` ``seconds`` from now (0: never) unless disarmed before."""
        if seconds <= 0:
            return _Watch(None, 0.0)
        armed = _Watch(conn, time.monotonic() + seconds)
        with self._cond:
            self._armed.add(armed)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="auditkeep-pg-watchdog", daemon=True
                )
                self._thread.start()
            if self._wake_at is None or armed.deadline < self._wake_at:
                self._cond.notify()
        return armed

    def disarm(self, armed: _Watch) -> None:
        """After this returns, ``armed``'s connection is not cut any more."""
        with self._cond:
            self._armed.discard(armed)

    @contextlib.contextmanager
    def watch(self, conn: Connection, seconds: float) -> Iterator[_Watch]:
        """Inside the block, ``conn`` is cut if the block lasts more than ``seconds``."""
        armed = self.arm(conn, seconds)
        try:
            yield armed
        finally:
            self.disarm(armed)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                for due in [w for w in self._armed if w.deadline <= now]:
                    self._armed.discard(due)
                    due.fired = True
                    if due.conn is not None:
                        _cut(due.conn)
                self._wake_at = min((w.deadline for w in self._armed), default=None)
                self._cond.wait(None if self._wake_at is None else self._wake_at - now)


def _cut(conn: Connection) -> None:
    """Shut the connection's socket down (both ways): its thread's wait ends with an error."""
    with contextlib.suppress(OSError, psycopg.Error):
        sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


class _Notices:
    """A notice handler that keeps (severity, SQLSTATE, message) of each notice. (A
    Diagnostic must be read inside the handler: its result is freed afterwards.)"""

    def __init__(self) -> None:
        self.seen: list[tuple[str | None, str | None, str | None]] = []

    def __call__(self, diag: pg_errors.Diagnostic) -> None:
        self.seen.append((diag.severity_nonlocalized, diag.sqlstate, diag.message_primary))

    def unreplicated(self) -> bool:
        """Whether COMMIT warned that it did not wait for the synchronous standby: PostgreSQL
        reports a cancelled wait ("canceling wait for synchronous replication ...", "The
        transaction has already committed locally, but might not have been replicated") as a
        WARNING with the generic SQLSTATE 01000 (checked without relying on the language of
        the message)."""
        return any(
            severity == "WARNING"
            and (sqlstate == "01000" or "synchronous replication" in (message or ""))
            for severity, sqlstate, message in self.seen
        )


# -- fencing: refuse a database behind what this node has seen --------------------------------


class StaleDatabase(StoreUnavailable):
    """The database is behind what this node has already seen acknowledged (a former primary
    that came back read-write, or an older backup): it must not be written or served."""


class Fence:
    """What this node has seen of its PostgreSQL database, and the check that refuses one
    that is behind it.

    Kept: the database's ``system_identifier`` (a physical standby shares its primary's), the
    highest timeline seen (a promotion starts a new, higher one; a former primary stays on
    the old one) and, per tenant, the largest log size acknowledged by this node's commits
    (with ``durability=full``, where an acknowledged commit is on the synchronous standby)
    or covered by a checkpoint it signed. A database of the same system whose timeline is
    lower, or any database with a tenant's log shorter than that size, is refused.

    The state lives in memory and, when ``path`` is given, in a small JSON file, saved when
    the identity or timeline changes, after each signed checkpoint and at close; a node that
    restarts therefore still knows. What it cannot know is what it never saw: a node with a
    fresh data directory, which never connected to the new primary, has nothing to compare
    with (docs/operations.md, Fencing).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.system: int | None = None
        self.timeline = 0
        self.sizes: dict[int, int] = {}
        self._warned = False
        if path is not None and path.exists():
            try:
                data = orjson.loads(path.read_bytes())
                self.system = data.get("system_identifier")
                self.timeline = int(data.get("timeline", 0))
                self.sizes = {int(t): int(n) for t, n in data.get("log_sizes", {}).items()}
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                raise ConfigError(
                    f"cannot read {path}: {exc}. It records what this node has seen of the "
                    "database (docs/operations.md, Fencing); fix or remove it."
                ) from None

    def saw(self, sizes: dict[int, int]) -> None:
        """Log sizes this node has acknowledged or signed (kept in memory)."""
        with self._lock:
            for tenant_id, size in sizes.items():
                if size > self.sizes.get(tenant_id, 0):
                    self.sizes[tenant_id] = size

    def check(self, conn: Connection, where: str) -> None:
        """Raise StaleDatabase if the database behind ``conn`` is behind what was seen; else
        record its identity and timeline (saved at once when they changed)."""
        try:
            row = conn.execute(
                "SELECT (SELECT system_identifier FROM pg_control_system()),"
                " CASE WHEN pg_is_in_recovery() THEN NULL"
                " ELSE pg_walfile_name(pg_current_wal_lsn()) END,"
                " to_regclass('log_heads') IS NOT NULL"
            ).fetchone()
        except (pg_errors.InsufficientPrivilege, pg_errors.UndefinedFunction) as exc:
            # a managed service may hide these: the log sizes are still compared
            if not self._warned:
                self._warned = True
                log.warning("fencing without the timeline check: %s", str(exc).strip())
            row = conn.execute("SELECT NULL, NULL, to_regclass('log_heads') IS NOT NULL").fetchone()
        assert row is not None
        system = int(row[0]) if row[0] is not None else self.system
        timeline = int(row[1][:8], 16) if row[1] else None
        heads: dict[int, int] = {}
        if row[2]:
            rows = conn.execute("SELECT tenant_id, size FROM log_heads")
            heads = {int(t): int(n) for t, n in rows}
        server = f"{conn.info.host}:{conn.info.port}"
        with self._lock:
            same = self.system is None or self.system == system
            if same and timeline is not None and timeline < self.timeline:
                raise StaleDatabase(
                    f"refusing PostgreSQL at {server} ({where}): it is on timeline {timeline}, "
                    "but this node "
                    f"has already used timeline {self.timeline} of the same database cluster: it "
                    "is a former primary that came back read-write after a failover. Fence it "
                    "(stop it) and rebuild it as a standby of the new primary (pg_rewind or "
                    "pg_basebackup); see docs/operations.md, Fencing."
                )
            behind = sorted(
                (t, heads.get(t, 0), n) for t, n in self.sizes.items() if heads.get(t, 0) < n
            )
            if behind:
                tenant_id, has, seen = behind[0]
                raise StaleDatabase(
                    f"refusing PostgreSQL at {server} ({where}): tenant {tenant_id}'s log "
                    f"has {has} events there, but this node has already acknowledged or "
                    f"signed {seen}"
                    f"{f' ({len(behind)} tenants are behind)' if len(behind) > 1 else ''}: it is "
                    "a stale former primary or an older backup. Fence it and point database_url "
                    "at the current primary; see docs/operations.md, Fencing. If you restored an "
                    f"older backup on purpose, remove {self.path or 'this state'} first."
                )
            changed = (
                not same
                or (self.system is None and system is not None)
                or (timeline or 0) > self.timeline
            )
            if not same:
                log.warning(
                    "PostgreSQL at %s is a different database cluster (system identifier %s, "
                    "was %s); its logs are not behind, so it is used",
                    where,
                    system,
                    self.system,
                )
                self.timeline = 0
            self.system = system
            self.timeline = max(self.timeline, timeline or 0)
        if changed:
            self.save()

    def save(self) -> None:
        """Write the state file (atomically); a failure is logged, not raised.

        Other processes on the same data directory (a second node, a CLI command) save it too,
        so what is on disk is merged in first, under a lock: the larger of each log size and
        of the timeline wins, and a process that loaded the file earlier never writes smaller
        sizes back over a node's newer ones."""
        if self.path is None:
            return
        try:
            with open(self.path.with_name(self.path.name + ".lock"), "a") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                self._merge_saved()
                with self._lock:
                    data = {
                        "system_identifier": self.system,
                        "timeline": self.timeline,
                        "log_sizes": {str(t): n for t, n in sorted(self.sizes.items())},
                    }
                tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
                tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
                os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot save %s: %s", self.path, exc)

    def _merge_saved(self) -> None:
        """Fold what another process saved into this one's state (same database cluster
        only; an unreadable file is left to be overwritten)."""
        assert self.path is not None
        try:
            data = orjson.loads(self.path.read_bytes())
            system = data.get("system_identifier")
            timeline = int(data.get("timeline", 0))
            sizes = {int(t): int(n) for t, n in data.get("log_sizes", {}).items()}
        except (OSError, ValueError, TypeError, AttributeError):
            return
        with self._lock:
            if system is not None and self.system is not None and system != self.system:
                return
            if self.system is None:
                self.system = system
            self.timeline = max(self.timeline, timeline)
            for tenant_id, size in sizes.items():
                if size > self.sizes.get(tenant_id, 0):
                    self.sizes[tenant_id] = size


class PostgresStore(SQLStore):
    """Store implementation over a PostgreSQL database, shared by any number of API nodes.
    What it shares with the SQLite store is in :class:`~auditkeep.store.sql.SQLStore`."""

    _UNIQUE = pg_errors.UniqueViolation
    _LOCK_ROWS = " FOR UPDATE"
    _SYSTEM_ROWS = f"tenant_id = {SYSTEM_TENANT_ID}"

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        durability: str = "full",
        write_timeout: float = 5.0,
        state_path: Path | None = None,
    ) -> None:
        self.url = url  # needed by verification workers; never put it in a message
        self._secrets = url_secrets(url)
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise ConfigError(
                f"database_url is not a usable PostgreSQL URL: {self._redact(str(exc))} "
                "(expected postgresql://USER:PASSWORD@HOST:PORT/DATABASE)"
            ) from None
        self.where = self._redact(_describe(params))
        if durability not in ("full", "normal"):
            raise ConfigError(f"durability must be 'full' or 'normal', not {durability!r}")
        if pool_size < 1:
            raise ConfigError("database_pool_size must be at least 1")
        if write_timeout < 0:
            raise ConfigError("database_write_timeout must not be negative")
        self.durability = durability
        self.pool_size = pool_size
        self.write_timeout = write_timeout
        self._watchdog = Watchdog()
        self.fence = Fence(state_path)
        self._healthy = True  # False from a broken connection until a new one is made
        self._refused: str | None = None  # why the last new connection was refused (fencing)
        self._params = params
        self._fenced: dict[tuple[str, str], float] = {}  # (host, port) -> refused until
        self._suspect: dict[tuple[str, str], float] = {}  # (host, port) -> tried last until
        self._begin_append = _BEGIN
        if durability == "normal":
            # survives a crash of the API node, may lose the last commits if PostgreSQL fails
            self._begin_append += "; SET LOCAL synchronous_commit = off"
        kwargs: dict[str, Any] = {"autocommit": True, **connection_defaults(params)}
        self._probe(kwargs)
        self._local = threading.local()
        self._partitions_due = 0  # when append should next call ensure_partitions
        self._partitions_lock = threading.Lock()
        self._pool: psycopg_pool.ConnectionPool[Connection] = psycopg_pool.ConnectionPool(
            self._conninfo,
            kwargs=kwargs,
            min_size=1,
            max_size=pool_size,
            open=False,
            configure=self._configure,
            name="auditkeep",
            timeout=_POOL_TIMEOUT,
            reconnect_timeout=_RECONNECT_WINDOW,
        )
        self._pool.open(wait=False)

    def __repr__(self) -> str:
        return f"PostgresStore({self.where})"

    # -- connections -----------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        return redact(text, *self._secrets)

    def _probe(self, kwargs: dict[str, Any]) -> None:
        """Connect once, so that a wrong URL, password or address is reported now, plainly,
        rather than as a pool timeout on the first request. A server the fence refuses is
        left out (:meth:`_conninfo`) and the next host of the URL tried; if none is left, the
        refusal is the error."""
        try:
            while True:
                with psycopg.connect(self._conninfo(), **kwargs) as conn:
                    try:
                        self.fence.check(conn, self.where)
                        return
                    except StaleDatabase as exc:
                        before = self._conninfo()
                        self._fence_out(conn)
                        if self._conninfo() == before:
                            raise
                        log.error("%s", exc)
        except StaleDatabase:
            raise
        except psycopg.OperationalError as exc:
            detail = self._redact(str(exc).strip())
            if any(p in detail.lower() for p in _LOGIN_PROBLEMS):
                raise ConfigError(
                    f"cannot log in to PostgreSQL at {self.where}: {detail}. Check the user, "
                    "password and database name in database_url."
                ) from None
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL at {self.where}: {detail}. Check that the server "
                "is running and reachable at the host and port of database_url."
            ) from None
        except psycopg.Error as exc:
            raise ConfigError(
                f"database_url is not usable: {self._redact(str(exc).strip())}"
            ) from None

    def _configure(self, conn: Connection) -> None:
        """A new pooled connection. It is refused if the database is behind what this node has
        seen (:class:`Fence`). With durability=full a commit returns only once it is flushed
        (and, with a synchronous standby, once the standby has it): a server default of ``off``
        or ``local`` is raised to ``on``; stronger settings are kept."""
        try:
            self.fence.check(conn, self.where)
        except StaleDatabase as exc:
            self._refused = str(exc)
            self._healthy = False
            log.error("%s", exc)
            self._fence_out(conn)
            conn.close()
            raise
        self._refused = None
        if self.durability == "full":
            row = conn.execute("SHOW synchronous_commit").fetchone()
            if row is not None and row[0] in ("off", "local"):
                conn.execute("SET synchronous_commit = on")
        self._healthy = True

    def _fence_out(self, conn: Connection) -> None:
        """Leave the server of ``conn`` out of new connections for _FENCED_FOR seconds."""
        self._fenced[(str(conn.info.host), str(conn.info.port))] = time.monotonic() + _FENCED_FOR

    def conninfo(self) -> str:
        """The URL for a further connection to this store's database (verification workers):
        without a host the fence refused. Secret: it holds the password."""
        return self._conninfo()

    def _conninfo(self) -> str:
        """The URL of the next new connection. With several hosts, those the fence refused in
        the last _FENCED_FOR seconds are left out (so libpq goes on to the current primary
        instead of finding the refused one first again), and those whose connection the
        watchdog cut are tried last (a hung primary accepts TCP and costs a whole connect
        timeout; a merely slow one is still reached after the others)."""
        now = time.monotonic()
        self._fenced = {h: until for h, until in self._fenced.items() if until > now}
        self._suspect = {h: until for h, until in self._suspect.items() if until > now}
        hosts = str(self._params.get("host") or "").split(",")
        if not (self._fenced or self._suspect) or len(hosts) < 2 or self._params.get("hostaddr"):
            return self.url
        ports = str(self._params.get("port") or "5432").split(",")
        if len(ports) == 1:
            ports *= len(hosts)
        if len(ports) != len(hosts):
            return self.url
        listed = list(zip(hosts, ports, strict=True))
        usable = [h for h in listed if h not in self._fenced] or listed
        ordered = [h for h in usable if h not in self._suspect]
        ordered += [h for h in usable if h in self._suspect]
        if ordered == listed:
            return self.url
        return make_conninfo(
            self.url, host=",".join(h for h, _ in ordered), port=",".join(p for _, p in ordered)
        )

    def _wait_timeout(self) -> float:
        """How long a request waits for a pooled connection: briefly while the database is
        known to be away (a quick 503 beats a client's timeout), longer otherwise (a busy pool)."""
        return _POOL_TIMEOUT if self._healthy else _DEGRADED_TIMEOUT

    def _lost(self) -> None:
        """A connection broke or was abandoned: the pool's idle connections most likely lead
        to the same (dead or hung) server, so drop them all, untested (testing one on a hung
        server would hang too); connections in use are dropped when returned."""
        self._healthy = False
        with contextlib.suppress(psycopg_pool.PoolClosed):
            self._pool.drain()

    def _abandoned(self, conn: Connection, seconds: float, setting: str) -> StoreUnavailable:
        """The error for a connection the watchdog cut. Its server is tried last by new
        connections for a while (:meth:`_conninfo`): if it hangs, a promoted standby later in
        the URL is found without first waiting out a connect timeout at the hung one."""
        with contextlib.suppress(psycopg.Error):
            server = (str(conn.info.host), str(conn.info.port))
            self._suspect[server] = time.monotonic() + _FENCED_FOR
        self._lost()
        return StoreUnavailable(
            f"PostgreSQL at {self.where} did not answer within {seconds:g} s ({setting}): the "
            "connection was abandoned (a hung or unreachable primary?). The outcome of a write "
            "in it is unknown: retry with the same event ids, which is safe"
        )

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Map driver errors to the store's (messages without the URL's password)."""
        try:
            yield
        except AuditkeepError:
            raise
        except psycopg_pool.PoolClosed:
            raise StoreUnavailable("the store is closed") from None
        except psycopg_pool.PoolTimeout:
            self._healthy = False
            why = self._refused or (
                "no primary accepted a connection (every host down, read-only or not answering "
                "within the connect timeout)"
            )
            raise StoreUnavailable(
                f"no connection to PostgreSQL at {self.where} (pool of {self.pool_size}): {why}"
            ) from None
        except pg_errors.ReadOnlySqlTransaction as exc:
            raise StoreUnavailable(
                f"PostgreSQL at {self.where} is read-only (a standby, or a primary being "
                "demoted); list every host in database_url with target_session_attrs=read-write "
                f"to follow a failover: {self._redact(str(exc))}"
            ) from None
        except (psycopg.OperationalError, pg_errors.TransactionRollback) as exc:
            raise StoreUnavailable(
                f"PostgreSQL at {self.where} is unavailable: {self._redact(str(exc).strip())}"
            ) from None
        except psycopg.Error as exc:
            raise StoreError(
                f"PostgreSQL failed: {type(exc).__name__}: {self._redact(str(exc).strip())}"
            ) from None

    def _fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read: on this thread's snapshot connection if there is one, else on a
        pooled connection in autocommit (retried once when that connection was broken; cut
        after _READ_TIMEOUT, so a hung server cannot hold the thread)."""
        pinned: Connection | None = getattr(self._local, "conn", None)
        with self._errors():
            if pinned is not None:
                return pinned.execute(query, params).fetchall()
            for attempt in range(2):
                with (
                    self._pool.connection(self._wait_timeout()) as conn,
                    self._watchdog.watch(conn, _READ_TIMEOUT) as watch,
                ):
                    try:
                        return conn.execute(query, params).fetchall()
                    except psycopg.OperationalError:
                        if watch.fired:
                            raise self._abandoned(conn, _READ_TIMEOUT, "read timeout") from None
                        if attempt or not conn.broken:
                            raise
                self._lost()  # a failover breaks every idle connection: replace them
        raise AssertionError("unreachable")

    def _one(self, query: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = self._fetch(query, params)
        return rows[0] if rows else None

    @contextlib.contextmanager
    def _transaction(
        self, begin: str = _BEGIN, *, timeout: float | None = None
    ) -> Iterator[Connection]:
        """One read-write transaction on a pooled connection, committed on success.

        It runs under the watchdog: past ``timeout`` seconds (default ``write_timeout``; 0: no
        limit) the connection is cut and the transaction fails as unknown. A COMMIT that warns
        that its wait for the synchronous standby was cancelled fails too: it is committed on
        the primary only, and a failover may lose it, so it must not be acknowledged (the
        client's retry then finds it as a duplicate, and its own COMMIT, which writes WAL
        because it locks rows, waits for the standby to have everything up to it)."""
        limit = self.write_timeout if timeout is None else timeout
        with self._errors():
            conn, watch = self._checkout(begin, limit)
            notices = _Notices()
            try:
                yield conn
                conn.add_notice_handler(notices)
                try:
                    conn.execute("COMMIT")
                finally:
                    conn.remove_notice_handler(notices)
            except BaseException as exc:
                if watch.fired:
                    setting = "database_write_timeout"
                    raise self._abandoned(conn, limit, setting) from None
                _rollback(conn)
                if isinstance(exc, psycopg.OperationalError) and conn.broken:
                    self._lost()
                raise
            finally:
                self._watchdog.disarm(watch)
                self._pool.putconn(conn)
            if notices.unreplicated():
                raise StoreUnavailable(
                    "not replicated, retry: PostgreSQL committed this write on the primary, but "
                    "its wait for the synchronous standby was cancelled (pg_cancel_backend, "
                    "statement_timeout, an operator), so a failover could lose it. It is not "
                    "acknowledged; retry with the same event ids (safe: ids are idempotency keys)"
                )

    def _checkout(self, begin: str, timeout: float = 0.0) -> tuple[Connection, _Watch]:
        """A pooled connection on which ``begin`` has run, and the watchdog's deadline for it
        (``timeout`` seconds from now; 0: none). One found dead (after a failover every idle
        connection is) is replaced once: nothing of the transaction was sent yet, so this
        retry is safe even for writes. (A failure later in a write is not retried here; if it
        hit the COMMIT its outcome is unknown, and the client's retry with the same event ids
        decides it.)"""
        for attempt in range(2):
            conn = self._pool.getconn(self._wait_timeout())
            watch = self._watchdog.arm(conn, timeout)
            try:
                conn.execute(begin)
            except psycopg.OperationalError:
                self._watchdog.disarm(watch)
                broken = conn.broken
                abandoned = (
                    self._abandoned(conn, timeout, "database_write_timeout")
                    if watch.fired
                    else None
                )
                self._pool.putconn(conn)
                if abandoned is not None:
                    raise abandoned from None
                if attempt or not broken:
                    raise
                self._lost()
                continue
            return conn, watch
        raise AssertionError("unreachable")

    # -- schema ----------------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply pending migrations in one transaction, under an advisory lock (several nodes
        may start together), then make this month's partitions and the next two
        (:meth:`ensure_partitions`)."""
        known = migrations("postgres")
        newest = max(number for number, _ in known)
        # no deadline: a migration may build Merkle trees over millions of events, and nodes
        # starting together wait here for the one that migrates
        with self._transaction(timeout=0) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            # the one table whose primary key is not led by tenant_id: it describes the database
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version integer PRIMARY KEY, applied_at bigint NOT NULL)"
            )
            done = {int(r[0]) for r in conn.execute("SELECT version FROM schema_migrations")}
            version = max(done, default=0)
            if version > newest:
                raise ConfigError(
                    f"the database schema is at version {version} but this auditkeep knows up "
                    f"to {newest}: upgrade auditkeep"
                )
            for number, script in known:
                if number in done:
                    continue
                conn.execute(script)
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                    (number, now_micros()),
                )
                version = max(version, number)
            self._tiles_from_nodes(conn)
            self._build_missing_trees(conn)
            conn.execute(
                "INSERT INTO tenants (tenant_id, slug, name, created_at)"
                " VALUES (%s, %s, 'operator keys', 0) ON CONFLICT DO NOTHING",
                (SYSTEM_TENANT_ID, SYSTEM_TENANT_SLUG),
            )
        # Outside the migration: on a busy database ATTACH PARTITION may not get its locks
        # within its lock_timeout; the DEFAULT partition takes the rows until a later call
        # (append makes one once a month) succeeds, so that must not stop the node.
        try:
            self.ensure_partitions()
        except StoreUnavailable as exc:
            log.warning("could not create the monthly partitions yet (will retry): %s", exc)
        else:
            self._partitions_due = _next_month(now_micros())
        return version

    def schema_version(self) -> int:
        row = self._one("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if row is None or not row[0]:
            return 0
        row = self._one("SELECT max(version) FROM schema_migrations")
        return int(row[0] or 0) if row else 0

    def ensure_partitions(self, now: int | None = None) -> list[str]:
        """Make the monthly partitions of ``events`` and ``event_targets`` for the month of
        ``now`` (microseconds; default: the clock) and the next two; return those made.

        Idempotent and cheap when they exist (one catalog query). A new partition is made
        empty, filled with any rows of its month that the DEFAULT partition caught, and
        attached (which does not block readers or writers of the other partitions); if that
        cannot get its locks within a few seconds it raises StoreUnavailable and can simply be
        called again later: until then the DEFAULT partition takes the rows.
        """
        months = _month_bounds(now_micros() if now is None else now)
        names = [f"{parent}_{suffix}" for parent in _PARTITIONED for suffix, _, _ in months]
        row = self._one(
            "SELECT count(*) FROM unnest(%s::text[]) AS n WHERE to_regclass(n) IS NULL", (names,)
        )
        if row is None or not row[0]:
            return []
        # a longer deadline than a write's: rows caught by the DEFAULT partition are moved
        deadline = max(_PARTITION_WRITE_TIMEOUT, self.write_timeout) if self.write_timeout else 0
        with self._transaction(timeout=deadline) as conn:
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (_PARTITION_LOCK_TIMEOUT,))
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            made = _create_partitions(conn, months)
        for name in made:
            log.info("created partition %s", name)
        return made

    def _maybe_ensure_partitions(self) -> None:
        """Called by append: once a month (and at the first append), make the partitions of
        the next months, so a node that runs for months keeps them ahead of time."""
        now = now_micros()
        if now < self._partitions_due or not self._partitions_lock.acquire(blocking=False):
            return
        try:
            self.ensure_partitions(now)
            self._partitions_due = _next_month(now)
        except StoreError as exc:
            log.warning("could not create the next monthly partitions (will retry): %s", exc)
            self._partitions_due = now + _PARTITION_RETRY_US
        finally:
            self._partitions_lock.release()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads of this thread inside the block see one consistent state of the store."""
        if getattr(self._local, "conn", None) is not None:
            yield
            return
        with self._errors():
            conn, _ = self._checkout(_BEGIN_SNAPSHOT)  # long reads (verify): no deadline
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None
                _rollback(conn)
                self._pool.putconn(conn)

    def check_ready(self) -> None:
        """Raise StoreUnavailable unless a writable primary answers within a readiness probe's
        patience (_READY_TIMEOUT): a load balancer must hear "not ready" quickly, not after the
        pool's own, longer wait; nor hang on a primary that stopped answering)."""
        with (
            self._errors(),
            self._pool.connection(timeout=_READY_TIMEOUT) as conn,
            self._watchdog.watch(conn, _READY_TIMEOUT) as watch,
        ):
            try:
                row = conn.execute(
                    "SELECT pg_is_in_recovery(), EXISTS (SELECT 1 FROM log_heads)"
                ).fetchone()
            except psycopg.OperationalError:
                if watch.fired:
                    raise self._abandoned(conn, _READY_TIMEOUT, "readiness probe") from None
                if conn.broken:
                    self._lost()
                raise
        if row is not None and row[0]:
            raise StoreUnavailable(
                f"PostgreSQL at {self.where} is a read-only standby; list every host in "
                "database_url with target_session_attrs=read-write to follow a failover"
            )

    def close(self) -> None:
        self._pool.close()
        self._watchdog.close()
        self.fence.save()

    # -- hooks of the shared store (store/sql.py) ------------------------------------------

    def _q(self, query: str) -> str:
        return pyformat(query)

    def _bindable(self, *values: str | None) -> bool:
        return _bindable(*values)

    def _insert_tenant(self, conn: SharedConnection, slug: str, name: str, now: int) -> int:
        try:
            row = conn.execute(
                "INSERT INTO tenants (slug, name, created_at) VALUES (%s, %s, %s)"
                " RETURNING tenant_id",
                (slug, name, now),
            ).fetchone()
        except pg_errors.UniqueViolation:
            raise Conflict(f"a tenant named {slug!r} already exists") from None
        return int(row[0])

    def _has_table(self, conn: SharedConnection, name: str) -> bool:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
        return bool(row[0])

    def _lock_signing_keys(self, conn: SharedConnection) -> None:
        conn.execute("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")

    def _checkpointed(self, tenant_id: int, size: int) -> None:
        self.fence.saw({tenant_id: size})  # committed (and replicated) with the checkpoint
        self.fence.save()

    # -- events ----------------------------------------------------------------------------

    def append(self, batches: Sequence[TenantAppend]) -> list[list[AppendResult]]:
        if not batches:
            return []
        self._maybe_ensure_partitions()
        with self._transaction(self._begin_append) as conn:
            out, sizes = _append_in_txn(conn, batches)
        if self.durability == "full":  # acknowledged, so on the synchronous standby too
            self.fence.saw(sizes)
        return out

    def events(self, tenant_id: int) -> PostgresTenantEvents:
        return PostgresTenantEvents(self, tenant_id)

    def log(self, tenant_id: int) -> PostgresTenantLog:
        return PostgresTenantLog(self, tenant_id)


def _rollback(conn: Connection) -> None:
    """End the connection's transaction, if any, without raising (it may be broken)."""
    if conn.closed or conn.info.transaction_status == TransactionStatus.IDLE:
        return
    with contextlib.suppress(psycopg.Error):
        conn.execute("ROLLBACK")


# -- append --------------------------------------------------------------------------------


def _append_in_txn(
    conn: Connection, batches: Sequence[TenantAppend]
) -> tuple[list[list[AppendResult]], dict[int, int]]:
    """Append in the open transaction: the results, and the new log size of each tenant."""
    tids = sorted({b.tenant_id for b in batches})
    # Lock the heads in tenant_id order (a writer on another node that wants the same tenants
    # waits here, and no two writers can deadlock), then read the frontiers they hold.
    heads = {
        int(tid): (int(size), frontier)
        for tid, size, frontier in conn.execute(
            "SELECT tenant_id, size, frontier FROM log_heads WHERE tenant_id = ANY(%s)"
            " ORDER BY tenant_id FOR UPDATE",
            (tids,),
        )
    }
    trees = {tid: frontier(tid, heads.get(tid)) for tid in tids}
    # Ids already stored (one query for every tenant of the call), then ids decided earlier in
    # this same call: (seq, SHA-256 of the canonical content).
    wanted = {(b.tenant_id, ev.id) for b in batches for ev in b.events}
    seen: dict[tuple[int, str], tuple[int, bytes]] = {}
    if wanted:
        keys = list(wanted)
        for tid, event_id, seq, content_hash in conn.execute(
            "SELECT i.tenant_id, i.id, i.seq, i.content_hash"
            " FROM unnest(%s::bigint[], %s::text[]) AS k (tenant_id, id)"
            ' JOIN event_ids i ON i.tenant_id = k.tenant_id AND i.id = k.id COLLATE "C"',
            ([k[0] for k in keys], [k[1] for k in keys]),
        ):
            seen[(int(tid), event_id)] = (int(seq), bytes(content_hash))
    events: list[tuple[Any, ...]] = []
    targets: list[tuple[Any, ...]] = []
    ids: list[tuple[Any, ...]] = []
    grown: set[int] = set()
    out: list[list[AppendResult]] = []
    for batch in batches:
        tid = batch.tenant_id
        tree = trees[tid]
        size = tree.size
        leaves = []
        results = []
        for ev in batch.events:
            digest = _content_hash(ev.content)
            prior = seen.get((tid, ev.id))
            if prior is not None:
                same = prior[1] == digest
                results.append(AppendResult("duplicate" if same else "conflict", prior[0]))
                continue
            size += 1
            seen[(tid, ev.id)] = (size, digest)
            events.append(
                (
                    tid,
                    size,
                    ev.id,
                    ev.action,
                    ev.category,
                    ev.outcome,
                    _utf8(ev.actor_id),
                    ev.occurred_at,
                    ev.received_at,
                    ev.leaf_hash,
                    ev.leaf_data,
                )
            )
            for ttype, target_id in set(ev.targets):
                targets.append((tid, size, ttype, _utf8(target_id), ev.occurred_at, ev.received_at))
            ids.append((tid, ev.id, size, digest))
            leaves.append(ev.leaf_hash)
            results.append(AppendResult("accepted", size))
        if leaves:
            old = tree.size
            created = tree.extend(leaves)
            append_tiles(conn, pyformat, tid, old, tree.size, created)
            grown.add(tid)
        out.append(results)
    with conn.cursor() as cur:
        for statement, types, rows in (
            (_EVENT_COPY, _EVENT_TYPES, events),
            (_TARGET_COPY, _TARGET_TYPES, targets),
            (_ID_COPY, _ID_TYPES, ids),
        ):
            if rows:
                with cur.copy(statement) as copy:
                    copy.set_types(list(types))
                    for row in rows:
                        copy.write_row(row)
    _update_heads(conn, {tid: trees[tid] for tid in sorted(grown)})
    return out, {tid: tree.size for tid, tree in trees.items()}


def _update_heads(conn: Connection, trees: dict[int, CompactRange]) -> None:
    """Advance the heads of the tenants that grew (their rows are locked by this transaction)."""
    if not trees:
        return
    conn.execute(
        "UPDATE log_heads h SET size = v.size, frontier = v.frontier, root = v.root"
        " FROM unnest(%s::bigint[], %s::bigint[], %s::bytea[], %s::bytea[])"
        " AS v (tenant_id, size, frontier, root) WHERE h.tenant_id = v.tenant_id",
        (
            list(trees),
            [t.size for t in trees.values()],
            [t.to_bytes() for t in trees.values()],
            [t.root() for t in trees.values()],
        ),
    )


def _create_partitions(conn: Connection, months: list[tuple[str, int, int]]) -> list[str]:
    """Make the missing monthly partitions (the caller holds the schema advisory lock).

    Each is created as a plain table, given the rows of its month that the DEFAULT partition
    holds, and attached: ATTACH PARTITION takes only a SHARE UPDATE EXCLUSIVE lock on the
    parent (CREATE TABLE ... PARTITION OF would block every reader and writer of it).
    """
    made = []
    for parent in _PARTITIONED:
        for suffix, first, end in months:
            name = f"{parent}_{suffix}"
            # pg_class read with this statement's snapshot: to_regclass() may answer from a
            # catalog cache that predates the advisory lock (another node's partition, made
            # while this one waited for the lock, would look missing)
            row = conn.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = %s"
                " AND relnamespace = current_schema()::regnamespace)",
                (name,),
            ).fetchone()
            if row is None or not row[0]:
                continue
            table, parent_id = sql.Identifier(name), sql.Identifier(parent)
            default = sql.Identifier(f"{parent}_default")
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
                ).format(table, parent_id)
            )
            conn.execute(
                sql.SQL(
                    "WITH moved AS (DELETE FROM {} WHERE received_at >= %s AND received_at < %s"
                    " RETURNING *) INSERT INTO {} SELECT * FROM moved"
                ).format(default, table),
                (first, end),
            )
            conn.execute(
                sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                    parent_id, table, sql.Literal(first), sql.Literal(end)
                )
            )
            made.append(name)
    return made


# -- reads -----------------------------------------------------------------------------------


class PostgresTenantEvents(SQLTenantEvents[PostgresStore]):
    """One tenant's events. Every statement here binds ``tenant_id``."""

    def query(self, page: PageRequest) -> list[StoredEvent]:
        f = page.filters
        if page.limit <= 0 or not _bindable(
            f.action, f.action_prefix, f.target_type, f.outcome, f.category
        ):
            return []
        # conditions on the event's own columns (the tenant is bound separately)
        conditions: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("e.actor_id", _utf8(f.actor_id) if f.actor_id is not None else None),
            ("e.action", f.action),
            ("e.outcome", f.outcome),
            ("e.category", f.category),
        ):
            if value is not None:
                conditions.append(f"{column} = %s")
                params.append(value)
        actions_range: tuple[str, str] | None = None
        if f.action_prefix:
            actions_range = prefix_range(f.action_prefix)  # COLLATE "C": in code point order
            conditions.append("e.action >= %s AND e.action < %s")
            params += actions_range
        # the time window, on events or on event_targets (both hold the event's occurred_at)
        times: list[str] = []
        time_params: list[Any] = []
        if f.since is not None:
            times.append("occurred_at >= %s")
            time_params.append(f.since)
        if f.until is not None:
            times.append("occurred_at < %s")
            time_params.append(f.until)
        cmp, order = ("<", "DESC") if page.descending else (">", "ASC")
        if f.target_id is not None or f.target_type is not None:
            return self._query_by_target(page, conditions, params, times, time_params, cmp, order)
        where = ["e.tenant_id = %s", *conditions, *(f"e.{t}" for t in times)]
        all_params: list[Any] = [self.tenant_id, *params, *time_params]
        if page.after is not None:
            where.append(f"(e.occurred_at, e.seq) {cmp} (%s, %s)")
            all_params += [page.after.occurred_at, page.after.seq]
        if actions_range is not None and f.actor_id is None:
            actions = self._actions_in(*actions_range)
            if len(actions) <= PREFIX_MERGE_MAX_ACTIONS:
                return self._query_actions(actions, where, all_params, order, page.limit)
        query = (
            f"SELECT {EVENT_COLUMNS} FROM events e WHERE {' AND '.join(where)} "
            f"ORDER BY e.occurred_at {order}, e.seq {order} LIMIT %s"
        )
        return self._rows(query, [*all_params, page.limit])

    def _actions_in(self, low: str, high: str) -> list[str]:
        """The distinct actions in ``[low, high)``, by skip-scan (one index seek each, in one
        recursive query), at most one more than the merge takes."""
        rows = self._store._fetch(
            "WITH RECURSIVE a (action) AS ("
            " (SELECT action FROM events WHERE tenant_id = %s AND action >= %s AND action < %s"
            "  ORDER BY action LIMIT 1)"
            " UNION ALL"
            " SELECT (SELECT e.action FROM events e WHERE e.tenant_id = %s"
            "  AND e.action > a.action AND e.action < %s ORDER BY e.action LIMIT 1)"
            " FROM a WHERE a.action IS NOT NULL)"
            " SELECT action FROM a WHERE action IS NOT NULL LIMIT %s",
            (self.tenant_id, low, high, self.tenant_id, high, PREFIX_MERGE_MAX_ACTIONS + 1),
        )
        return [r[0] for r in rows]

    def _query_actions(
        self, actions: list[str], where: list[str], params: list[Any], order: str, limit: int
    ) -> list[StoredEvent]:
        """An action-prefix page as a merge of one index-ordered scan per action under it.

        A range over ``events_by_action`` is not in (occurred_at, seq) order, so it would
        have to be sorted whole before the LIMIT; each ``action = %s`` part is read in order
        from the index (across partitions: a Merge Append) and stops after ``limit`` rows, and
        only the union of those, at most ``limit`` per action, is sorted.
        """
        if not actions:
            return []
        part = (
            f"(SELECT {EVENT_COLUMNS} FROM events e WHERE e.action = %s AND"
            f" {' AND '.join(where)} ORDER BY e.occurred_at {order}, e.seq {order} LIMIT %s)"
        )
        query = (
            f"SELECT * FROM ({' UNION ALL '.join([part] * len(actions))}) AS e"
            f" ORDER BY e.occurred_at {order}, e.seq {order} LIMIT %s"
        )
        all_params: list[Any] = []
        for action in actions:
            all_params += [action, *params, limit]
        return self._rows(query, [*all_params, limit])

    def _query_by_target(
        self,
        page: PageRequest,
        conditions: list[str],
        params: list[Any],
        times: list[str],
        time_params: list[Any],
        cmp: str,
        order: str,
    ) -> list[StoredEvent]:
        """Drive the query from event_targets, in index order, and look each event up by its
        primary key (with received_at, so one partition is searched).

        Without conditions on the event itself, a page of keys is taken first and only those
        events are read; with them, each key's event is checked in a LATERAL lookup (its
        LIMIT 1 keeps the planner from turning it into a hash join over every key), so the
        scan stops as soon as the page is full. One event may match through several targets:
        :func:`page_by_target` drops the repeats.
        """
        f = page.filters
        tconds = ["t.tenant_id = %s", *(f"t.{t}" for t in times)]
        tparams: list[Any] = [self.tenant_id, *time_params]
        if f.target_id is not None:
            tconds.append("t.target_id = %s")
            tparams.append(_utf8(f.target_id))
        if f.target_type is not None:
            tconds.append("t.target_type = %s")
            tparams.append(f.target_type)
        keys_order = f"ORDER BY t.occurred_at {order}, t.seq {order}"
        lookup = "e.tenant_id = %s AND e.seq = k.seq AND e.received_at = k.received_at"
        outer_order = f"ORDER BY k.occurred_at {order}, k.seq {order}"

        def fetch(after: Position | None, want: int) -> list[StoredEvent]:
            cursor_sql, cursor_params = "", []
            if after is not None:
                cursor_sql = f" AND (t.occurred_at, t.seq) {cmp} (%s, %s)"
                cursor_params = [after.occurred_at, after.seq]
            keys = (
                "SELECT t.seq, t.received_at, t.occurred_at FROM event_targets t"
                f" WHERE {' AND '.join(tconds)}{cursor_sql} {keys_order}"
            )
            if conditions:
                query = (
                    f"SELECT e.* FROM ({keys}) AS k CROSS JOIN LATERAL"
                    f" (SELECT {EVENT_COLUMNS} FROM events e WHERE {lookup}"
                    f" AND {' AND '.join(conditions)} LIMIT 1) AS e {outer_order} LIMIT %s"
                )
                return self._rows(query, [*tparams, *cursor_params, self.tenant_id, *params, want])
            query = (
                f"SELECT {EVENT_COLUMNS} FROM ({keys} LIMIT %s) AS k"
                f" JOIN events e ON {lookup} {outer_order}"
            )
            return self._rows(query, [*tparams, *cursor_params, want, self.tenant_id])

        return page_by_target(page, fetch)

    def get(self, event_id: str) -> StoredEvent | None:
        if not _bindable(event_id):
            return None
        rows = self._rows(
            f"SELECT {EVENT_COLUMNS} FROM event_ids i JOIN events e"
            " ON e.tenant_id = i.tenant_id AND e.seq = i.seq"
            " WHERE i.tenant_id = %s AND i.id = %s",
            (self.tenant_id, event_id),
        )
        return rows[0] if rows else None


# -- the Merkle tree and checkpoints ---------------------------------------------------------


class PostgresTenantLog(SQLTenantLog[PostgresStore]):
    """One tenant's Merkle tree and checkpoints. Every statement here binds ``tenant_id``."""
