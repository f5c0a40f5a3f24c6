"""The embedded SQLite store: one file in the data directory, WAL mode.

One connection writes (used by the group-commit writer thread, ``BEGIN IMMEDIATE``); reads
borrow one of at most ``readers`` connections from a pool shared by every thread, and give it
back when the read is done (a thread's nested reads and a snapshot keep the one they hold).
Durability: ``synchronous=FULL`` makes every commit fsync the WAL, so an
acknowledged batch survives power loss; ``normal`` syncs only at checkpoints (survives a process
crash, may lose the most recent commits on power loss).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from auditkeep.errors import Conflict, StoreError, StoreUnavailable
from auditkeep.integrity.merkle import CompactRange
from auditkeep.model import client_content
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
    Connection,
    SQLStore,
    SQLTenantEvents,
    SQLTenantLog,
    append_tiles,
    frontier,
    marks,
    migrations,
    page_by_target,
    prefix_range,
)

DB_FILE = "auditkeep.db"
_MAX_VARS = 500  # ids per IN (...) lookup


def _same(query: str) -> str:
    """Shared statements are already in SQLite's placeholder style."""
    return query


class _ReaderPool:
    """At most ``size`` read connections, shared by every thread.

    A thread borrows one for a read and gives it back after; a thread that already holds one
    (a snapshot, or a read inside another) reuses it, so it never waits for itself. Given-back
    connections stay open for the next borrower, so a busy server keeps ``size`` open and no
    more, however many threads come and go (thread pools retire idle workers: a connection
    per thread would leak one each time). A borrower finding all ``size`` in use waits up to
    ``wait`` seconds, then gets StoreUnavailable (503)."""

    def __init__(
        self, connect: Callable[[], sqlite3.Connection], size: int, wait: float = 30.0
    ) -> None:
        self._connect = connect
        self.size = size
        self._wait = wait
        self._idle: list[sqlite3.Connection] = []
        self._opened = 0
        self._closed = False
        self._cond = threading.Condition()
        self._held = threading.local()

    @contextlib.contextmanager
    def borrow(self) -> Iterator[sqlite3.Connection]:
        held: sqlite3.Connection | None = getattr(self._held, "conn", None)
        if held is not None:
            yield held
            return
        conn = self._take()
        self._held.conn = conn
        try:
            yield conn
        finally:
            self._held.conn = None
            self._give(conn)

    def _take(self) -> sqlite3.Connection:
        deadline = time.monotonic() + self._wait
        with self._cond:
            while True:
                if self._closed:
                    raise StoreUnavailable("the store is closed")
                if self._idle:
                    return self._idle.pop()
                if self._opened < self.size:
                    self._opened += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreUnavailable(
                        f"all {self.size} SQLite read connections stayed busy for "
                        f"{self._wait:g} s; raise database_pool_size or lower the read load"
                    )
                self._cond.wait(left)
        try:
            return self._connect()
        except BaseException:
            with self._cond:
                self._opened -= 1
                self._cond.notify()
            raise

    def _give(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:  # a read that failed inside BEGIN: do not lend it on like that
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        with self._cond:
            if self._closed:
                self._opened -= 1
                conn.close()
            else:
                self._idle.append(conn)
            self._cond.notify()

    @property
    def opened(self) -> int:
        """Connections open now (idle or lent)."""
        return self._opened

    def close(self) -> None:
        """Close the idle connections now and lent ones when they come back. Idempotent."""
        with self._cond:
            self._closed = True
            for conn in self._idle:
                conn.close()
            self._opened -= len(self._idle)
            self._idle.clear()
            self._cond.notify_all()


class SQLiteStore(SQLStore):
    """Store implementation over a single SQLite database file. What it shares with the
    PostgreSQL store is in :class:`~auditkeep.store.sql.SQLStore`."""

    _UNIQUE = sqlite3.IntegrityError

    def __init__(self, data_dir: Path, *, durability: str = "full", readers: int = 10) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_FILE
        self.durability = durability
        self._write_conn: sqlite3.Connection | None = None
        self._readers = _ReaderPool(self._connect_reader, max(1, readers))
        self._write_lock = threading.Lock()
        self._closed = False
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create data directory {self.data_dir}: {exc}") from exc

    # -- connections -----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={'FULL' if self.durability == 'full' else 'NORMAL'}")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA mmap_size=1073741824")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc
        return conn

    def _connect_reader(self) -> sqlite3.Connection:
        conn = self._connect()
        conn.execute("PRAGMA query_only=ON")
        return conn

    def _reader(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """``with self._reader() as conn:`` a read connection, given back after the block."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        return self._readers.borrow()

    def _fetch(self, query: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of one read on a pooled read connection (operational errors: 503)."""
        try:
            with self._reader() as conn:
                return conn.execute(query, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite read failed: {exc}") from exc

    def _writer(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        if self._write_conn is None:
            self._write_conn = self._connect()
        return self._write_conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One BEGIN IMMEDIATE transaction on the write connection, committed on success."""
        with self._write_lock:
            conn = self._writer()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(f"SQLite write failed: {exc}") from exc
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite write failed: {exc}") from exc

    def _write(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(conn, *args)`` in one BEGIN IMMEDIATE transaction on the write connection."""
        with self._transaction() as conn:
            return fn(conn, *args)

    def _insert_tenant(self, conn: Connection, slug: str, name: str, now: int) -> int:
        try:
            cur = conn.execute(
                "INSERT INTO tenants (slug, name, created_at) VALUES (?, ?, ?)", (slug, name, now)
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"a tenant named {slug!r} already exists") from None
        return int(cur.lastrowid or 0)  # type: ignore[attr-defined]  # sqlite3.Cursor's

    def _has_table(self, conn: Connection, name: str) -> bool:
        return (
            conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
            ).fetchone()
            is not None
        )

    def migrate(self) -> int:
        with self._transaction() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            version = max(done, default=0)
            for number, script in migrations("sqlite"):
                if number in done:
                    continue
                for statement in script.split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, strftime('%s','now') * 1000000)",
                    (number,),
                )
                version = number
            self._tiles_from_nodes(conn)
            self._build_missing_trees(conn)
            conn.execute(
                "INSERT OR IGNORE INTO tenants VALUES (?, ?, 'operator keys', 0)",
                (SYSTEM_TENANT_ID, SYSTEM_TENANT_SLUG),
            )
        return version

    def schema_version(self) -> int:
        try:
            with self._reader() as conn:
                row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        except sqlite3.OperationalError:
            return 0
        return int(row[0] or 0)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads of this thread inside the block see one consistent state of the store (the
        thread holds one read connection for the whole block)."""
        with self._reader() as conn:
            conn.execute("BEGIN")
            try:
                yield
            finally:
                conn.execute("COMMIT")

    def check_ready(self) -> None:
        try:
            with self._reader() as conn:
                conn.execute("SELECT 1 FROM log_heads LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store not usable: {exc}") from exc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._readers.close()
        with self._write_lock:
            if self._write_conn is not None:
                self._write_conn.close()
            self._write_conn = None

    # -- events ----------------------------------------------------------------------------

    def append(self, batches: Sequence[TenantAppend]) -> list[list[AppendResult]]:
        results: list[list[AppendResult]] = self._write(self._append_in_txn, batches)
        return results

    @staticmethod
    def _append_in_txn(
        conn: sqlite3.Connection, batches: Sequence[TenantAppend]
    ) -> list[list[AppendResult]]:
        out: list[list[AppendResult]] = []
        # Per tenant: the Merkle frontier (its size is the head), and ids decided earlier in
        # this same transaction. The frontier is read from log_heads in every transaction
        # (8 + 32 * popcount(size) bytes): no cache can drift from what another process wrote.
        trees: dict[int, CompactRange] = {}
        decided: dict[int, dict[str, tuple[int, bytes]]] = {}
        for batch in batches:
            tid = batch.tenant_id
            tree = trees.get(tid)
            if tree is None:
                head = conn.execute(
                    "SELECT size, frontier FROM log_heads WHERE tenant_id = ?", (tid,)
                ).fetchone()
                tree = trees[tid] = frontier(tid, head)
                decided[tid] = {}
            seen = decided[tid]
            ids = [ev.id for ev in batch.events if ev.id not in seen]
            for start in range(0, len(ids), _MAX_VARS):
                chunk = ids[start : start + _MAX_VARS]
                for event_id, seq, leaf_data in conn.execute(
                    f"SELECT id, seq, leaf_data FROM events WHERE tenant_id = ? AND id IN"
                    f" ({marks(len(chunk))})",
                    (tid, *chunk),
                ):
                    seen[event_id] = (seq, client_content(leaf_data))
            size = tree.size
            rows = []
            target_rows = []
            leaves = []
            results = []
            for ev in batch.events:
                prior = seen.get(ev.id)
                if prior is not None:
                    same = prior[1] == ev.content
                    results.append(AppendResult("duplicate" if same else "conflict", prior[0]))
                    continue
                size += 1
                seen[ev.id] = (size, ev.content)
                rows.append(
                    (
                        tid,
                        size,
                        ev.id,
                        ev.action,
                        ev.category,
                        ev.outcome,
                        ev.actor_id,
                        ev.occurred_at,
                        ev.received_at,
                        ev.leaf_hash,
                        ev.leaf_data,
                    )
                )
                for ttype, tid_ in set(ev.targets):
                    target_rows.append((tid, size, ttype, tid_, ev.occurred_at))
                leaves.append(ev.leaf_hash)
                results.append(AppendResult("accepted", size))
            if rows:
                conn.executemany(
                    "INSERT INTO events (tenant_id, seq, id, action, category, outcome, actor_id,"
                    " occurred_at, received_at, leaf_hash, leaf_data)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                old = tree.size
                created = tree.extend(leaves)
                append_tiles(conn, _same, tid, old, tree.size, created)
            if target_rows:
                conn.executemany(
                    "INSERT INTO event_targets"
                    " (tenant_id, seq, target_type, target_id, occurred_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    target_rows,
                )
            out.append(results)
        for tid, tree in trees.items():
            conn.execute(
                "UPDATE log_heads SET size = ?, frontier = ?, root = ? WHERE tenant_id = ?",
                (tree.size, tree.to_bytes(), tree.root(), tid),
            )
        return out

    def events(self, tenant_id: int) -> SQLiteTenantEvents:
        return SQLiteTenantEvents(self, tenant_id)

    # -- the verifiable log ----------------------------------------------------------------

    def log(self, tenant_id: int) -> SQLiteTenantLog:
        return SQLiteTenantLog(self, tenant_id)


class SQLiteTenantEvents(SQLTenantEvents[SQLiteStore]):
    """One tenant's events. Every statement here binds ``tenant_id``."""

    def query(self, page: PageRequest) -> list[StoredEvent]:
        f = page.filters
        where = ["e.tenant_id = ?"]
        params: list[Any] = [self.tenant_id]
        # With an actor, the actor index is the selective one: '+' keeps SQLite (which has no
        # statistics: the server never runs ANALYZE) from walking the action index instead.
        action_column = "+e.action" if f.actor_id is not None else "e.action"
        for column, value in (
            ("e.actor_id", f.actor_id),
            (action_column, f.action),
            ("e.outcome", f.outcome),
            ("e.category", f.category),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        actions_range: tuple[str, str] | None = None
        if f.action_prefix is not None:
            actions_range = prefix_range(f.action_prefix)
            range_at = len(where)
            where.append(f"{action_column} >= ? AND {action_column} < ?")
            params += actions_range
        if f.since is not None:
            where.append("e.occurred_at >= ?")
            params.append(f.since)
        if f.until is not None:
            where.append("e.occurred_at < ?")
            params.append(f.until)
        cmp, order = ("<", "DESC") if page.descending else (">", "ASC")
        if f.target_id is None and f.target_type is None:
            if page.after is not None:
                where.append(f"(e.occurred_at, e.seq) {cmp} (?, ?)")
                params += [page.after.occurred_at, page.after.seq]
            if actions_range is not None and f.actor_id is None:
                actions = self._actions_in(*actions_range)
                if len(actions) <= PREFIX_MERGE_MAX_ACTIONS:
                    # each part scans 'action = ?'; '+' keeps SQLite from taking the range
                    where[range_at] = "+e.action >= ? AND +e.action < ?"
                    return self._query_actions(actions, where, params, order, page.limit)
            sql = (
                f"SELECT {EVENT_COLUMNS} FROM events e WHERE {' AND '.join(where)} "
                f"ORDER BY e.occurred_at {order}, e.seq {order} LIMIT ?"
            )
            return self._rows(sql, [*params, page.limit])
        return self._query_by_target(page, where, params, cmp, order)

    def _actions_in(self, low: str, high: str) -> list[str]:
        """The distinct actions in ``[low, high)``, by skip-scan: one index seek each."""
        actions: list[str] = []
        sql = (
            "SELECT action FROM events WHERE tenant_id = ? AND action > ? AND action < ?"
            " ORDER BY action LIMIT 1"
        )
        try:
            with self._store._reader() as reader:
                row = reader.execute(
                    "SELECT action FROM events WHERE tenant_id = ? AND action >= ? AND action < ?"
                    " ORDER BY action LIMIT 1",
                    (self.tenant_id, low, high),
                ).fetchone()
                while row is not None and len(actions) <= PREFIX_MERGE_MAX_ACTIONS:
                    actions.append(row[0])
                    row = reader.execute(sql, (self.tenant_id, row[0], high)).fetchone()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite read failed: {exc}") from exc
        return actions

    def _query_actions(
        self, actions: list[str], where: list[str], params: list[Any], order: str, limit: int
    ) -> list[StoredEvent]:
        """An action-prefix page as a merge of one index-ordered scan per action under it.

        A range over ``events_by_action`` is not in (occurred_at, seq) order, so SQLite would
        sort every event under the prefix before the LIMIT; each ``action = ?`` scan is in
        order and stops after ``limit`` rows, and the union of at most ``limit`` rows per
        action is sorted instead.
        """
        if not actions:
            return []
        part = (
            "SELECT * FROM (SELECT e.occurred_at, e.seq FROM events e WHERE e.action = ? AND "
            f"{' AND '.join(where)} ORDER BY e.occurred_at {order}, e.seq {order} LIMIT ?)"
        )
        # the parts pick keys from the index alone; only the page's rows are read whole
        # (CROSS JOIN: SQLite keeps the page of keys as the outer loop, one PK lookup each)
        sql = (
            f"SELECT {EVENT_COLUMNS} FROM (SELECT occurred_at, seq FROM "
            f"({' UNION ALL '.join([part] * len(actions))})"
            f" ORDER BY occurred_at {order}, seq {order} LIMIT ?) AS k"
            " CROSS JOIN events e ON e.tenant_id = ? AND e.seq = k.seq"
            f" ORDER BY k.occurred_at {order}, k.seq {order}"
        )
        all_params: list[Any] = []
        for action in actions:
            all_params += [action, *params, limit]
        return self._rows(sql, [*all_params, limit, self.tenant_id])

    def _query_by_target(
        self, page: PageRequest, where: list[str], params: list[Any], cmp: str, order: str
    ) -> list[StoredEvent]:
        """Drive the query from event_targets (:func:`page_by_target` drops the repeats of an
        event that matches through several targets)."""
        f = page.filters
        twhere = ["t.tenant_id = ?", "e.tenant_id = t.tenant_id", "e.seq = t.seq"]
        tparams: list[Any] = [self.tenant_id]
        if f.target_id is not None:
            twhere.append("t.target_id = ?")
            tparams.append(f.target_id)
        if f.target_type is not None:
            twhere.append("t.target_type = ?")
            tparams.append(f.target_type)

        def fetch(after: Position | None, want: int) -> list[StoredEvent]:
            cursor_sql, cursor_params = "", []
            if after is not None:
                cursor_sql = f" AND (t.occurred_at, t.seq) {cmp} (?, ?)"
                cursor_params = [after.occurred_at, after.seq]
            sql = (
                f"SELECT {EVENT_COLUMNS} FROM event_targets t, events e "
                f"WHERE {' AND '.join(twhere + where)}{cursor_sql} "
                f"ORDER BY t.occurred_at {order}, t.seq {order} LIMIT ?"
            )
            return self._rows(sql, [*tparams, *params, *cursor_params, want])

        return page_by_target(page, fetch)

    def get(self, event_id: str) -> StoredEvent | None:
        rows = self._rows(
            f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.tenant_id = ? AND e.id = ?",
            (self.tenant_id, event_id),
        )
        return rows[0] if rows else None


class SQLiteTenantLog(SQLTenantLog[SQLiteStore]):
    """One tenant's Merkle tree and checkpoints. Every statement here binds ``tenant_id``."""
