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
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from auditkeep.errors import Conflict, StoreError, StoreUnavailable
from auditkeep.integrity.merkle import EMPTY_ROOT, CompactRange
from auditkeep.model import client_content
from auditkeep.store.base import (
    DESTINATION_COLUMNS,
    SYSTEM_TENANT_ID,
    SYSTEM_TENANT_SLUG,
    ApiKey,
    AppendResult,
    CheckpointSigner,
    Destination,
    LogHead,
    PageRequest,
    Position,
    SigningKeyRecord,
    StoredCheckpoint,
    StoredEvent,
    Tenant,
    TenantAppend,
)
from auditkeep.store.rows import (
    DEST_SELECT,
    DEST_UPDATABLE,
    EVENT_COLUMNS,
    PREFIX_MERGE_MAX_ACTIONS,
    destination,
    scan_log,
    stored_event,
)

DB_FILE = "auditkeep.db"
_MAX_VARS = 500  # ids per IN (...) lookup
_EMPTY_FRONTIER = CompactRange().to_bytes()
_INSERT_NODES = "INSERT INTO merkle_nodes (tenant_id, level, idx, hash) VALUES (?, ?, ?, ?)"


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("auditkeep.store") / "migrations" / "sqlite"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text("utf-8")))
    return sorted(found)


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


class SQLiteStore:
    """Store implementation over a single SQLite database file."""

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

    def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._reader() as conn:
            return conn.execute(sql, params).fetchone()

    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._reader() as conn:
            return conn.execute(sql, params).fetchall()

    def _writer(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        if self._write_conn is None:
            self._write_conn = self._connect()
        return self._write_conn

    def _write(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(conn, *args)`` in one BEGIN IMMEDIATE transaction on the write connection."""
        with self._write_lock:
            conn = self._writer()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn, *args)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(f"SQLite write failed: {exc}") from exc
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite write failed: {exc}") from exc
            return result

    def migrate(self) -> int:
        def apply(conn: sqlite3.Connection) -> int:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            version = max(done, default=0)
            for number, sql in _migrations():
                if number in done:
                    continue
                for statement in sql.split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, strftime('%s','now') * 1000000)",
                    (number,),
                )
                version = number
            _build_missing_trees(conn)
            conn.execute(
                "INSERT OR IGNORE INTO tenants VALUES (?, ?, 'operator keys', 0)",
                (SYSTEM_TENANT_ID, SYSTEM_TENANT_SLUG),
            )
            return version

        version: int = self._write(apply)
        return version

    def schema_version(self) -> int:
        try:
            row = self._fetchone("SELECT max(version) FROM schema_migrations")
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
            self._fetchall("SELECT 1 FROM log_heads LIMIT 1")
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

    # -- tenants and keys ------------------------------------------------------------------

    def create_tenant(self, slug: str, name: str) -> Tenant:
        from auditkeep.model import now_micros

        now = now_micros()

        def insert(conn: sqlite3.Connection) -> Tenant:
            try:
                cur = conn.execute(
                    "INSERT INTO tenants (slug, name, created_at) VALUES (?, ?, ?)",
                    (slug, name, now),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"a tenant named {slug!r} already exists") from None
            tenant_id = int(cur.lastrowid or 0)
            conn.execute(
                "INSERT INTO log_heads (tenant_id, size, frontier, root) VALUES (?, 0, ?, ?)",
                (tenant_id, _EMPTY_FRONTIER, EMPTY_ROOT),
            )
            return Tenant(tenant_id, slug, name, now)

        tenant: Tenant = self._write(insert)
        return tenant

    def get_tenant(self, slug: str) -> Tenant | None:
        row = self._fetchone(
            "SELECT tenant_id, slug, name, created_at FROM tenants WHERE slug = ?", (slug,)
        )
        return Tenant(*row) if row else None

    def list_tenants(self) -> list[Tenant]:
        rows = self._fetchall(
            "SELECT tenant_id, slug, name, created_at FROM tenants WHERE tenant_id != ? "
            "ORDER BY slug",
            (SYSTEM_TENANT_ID,),
        )
        return [Tenant(*row) for row in rows]

    def create_key(self, key: ApiKey) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO api_keys (tenant_id, key_id, secret_hash, scopes, name, created_at,"
                " expires_at, revoked_at, rate_limit_rps) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key.tenant_id,
                    key.key_id,
                    key.secret_hash,
                    " ".join(sorted(key.scopes)),
                    key.name,
                    key.created_at,
                    key.expires_at,
                    key.revoked_at,
                    key.rate_limit_rps,
                ),
            )

        self._write(insert)

    _KEY_COLUMNS = (
        "k.tenant_id, t.slug, k.key_id, k.secret_hash, k.scopes, k.name, k.created_at,"
        " k.expires_at, k.revoked_at, k.rate_limit_rps"
    )

    @staticmethod
    def _key(row: Sequence[Any]) -> ApiKey:
        return ApiKey(
            tenant_id=row[0],
            tenant_slug=row[1],
            key_id=row[2],
            secret_hash=bytes(row[3]),
            scopes=frozenset(row[4].split()),
            name=row[5],
            created_at=row[6],
            expires_at=row[7],
            revoked_at=row[8],
            rate_limit_rps=row[9],
        )

    def find_key(self, key_id: str) -> ApiKey | None:
        row = self._fetchone(
            f"SELECT {self._KEY_COLUMNS} FROM api_keys k JOIN tenants t USING (tenant_id) "
            "WHERE k.key_id = ?",
            (key_id,),
        )
        return self._key(row) if row else None

    def list_keys(self, tenant_id: int) -> list[ApiKey]:
        rows = self._fetchall(
            f"SELECT {self._KEY_COLUMNS} FROM api_keys k JOIN tenants t USING (tenant_id) "
            "WHERE k.tenant_id = ? ORDER BY k.created_at, k.key_id",
            (tenant_id,),
        )
        return [self._key(row) for row in rows]

    def revoke_key(self, tenant_id: int, key_id: str, at: int) -> ApiKey | None:
        def update(conn: sqlite3.Connection) -> None:
            changed = conn.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) "
                "WHERE tenant_id = ? AND key_id = ? AND revoked_at IS NULL",
                (at, tenant_id, key_id),
            ).rowcount
            if changed:
                conn.execute("UPDATE key_revision SET revision = revision + 1")

        self._write(update)
        key = self.find_key(key_id)
        return key if key is not None and key.tenant_id == tenant_id else None

    def key_revision(self) -> int:
        with self._reader() as conn:
            row = conn.execute("SELECT revision FROM key_revision").fetchone()
        return int(row[0])

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
                tree = trees[tid] = _load_frontier(conn, tid)
                decided[tid] = {}
            seen = decided[tid]
            ids = [ev.id for ev in batch.events if ev.id not in seen]
            for start in range(0, len(ids), _MAX_VARS):
                chunk = ids[start : start + _MAX_VARS]
                marks = ",".join("?" * len(chunk))
                for event_id, seq, leaf_data in conn.execute(
                    "SELECT id, seq, leaf_data FROM events"
                    f" WHERE tenant_id = ? AND id IN ({marks})",
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
                conn.executemany(
                    _INSERT_NODES, [(tid, level, idx, h) for level, idx, h in tree.extend(leaves)]
                )
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

    # -- delivery ----------------------------------------------------------------------------

    def destinations(self, tenant_id: int) -> SQLiteTenantDestinations:
        return SQLiteTenantDestinations(self, tenant_id)

    def due_destinations(self, now: int) -> list[Destination]:
        return self._destinations_where(
            "state = 'active' AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
            " ORDER BY coalesce(next_attempt_at, 0), tenant_id, dest_id",
            (now,),
        )

    def release_leases(self, owner: str | None) -> int:
        def txn(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE destinations SET lease_owner = NULL, lease_until = NULL"
                " WHERE lease_owner IS NOT NULL AND (? IS NULL OR lease_owner = ?)",
                (owner, owner),
            ).rowcount

        released: int = self._write(txn)
        return released

    def all_destinations(self) -> list[Destination]:
        return self._destinations_where("1 ORDER BY tenant_id, created_at, dest_id", ())

    def _destinations_where(self, where: str, params: Sequence[Any]) -> list[Destination]:
        try:
            rows = self._fetchall(f"SELECT {DEST_SELECT} FROM destinations WHERE {where}", params)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite read failed: {exc}") from exc
        return [destination(r) for r in rows]

    # -- the verifiable log ----------------------------------------------------------------

    def log(self, tenant_id: int) -> SQLiteTenantLog:
        return SQLiteTenantLog(self, tenant_id)

    def add_checkpoint(
        self, tenant_id: int, sign: CheckpointSigner, *, force: bool = False
    ) -> tuple[StoredCheckpoint, bool]:
        from auditkeep.model import now_micros

        def txn(conn: sqlite3.Connection) -> tuple[StoredCheckpoint, bool]:
            row = conn.execute(
                "SELECT size, root FROM log_heads WHERE tenant_id = ?", (tenant_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"tenant {tenant_id} has no log head")
            size, root = int(row[0]), bytes(row[1])
            key_ids = sign.key_ids()
            latest = _checkpoint_rows(
                conn,
                "WHERE tenant_id = ? ORDER BY size DESC LIMIT 1",
                (tenant_id,),
            )
            if latest and not force:
                last = latest[0]
                if last.size > size:
                    raise StoreError(
                        f"tenant {tenant_id}: the latest checkpoint has size {last.size} but "
                        f"the log head has size {size}; the store was rolled back "
                        "(run `auditkeep verify`)"
                    )
                if last.size == size and last.key_ids == key_ids:
                    return last, False
            note = sign(size, root)
            made = StoredCheckpoint(size, root, now_micros(), key_ids, note)
            conn.execute(
                "INSERT INTO checkpoints (tenant_id, size, root, created_at, key_ids, note)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, size) DO UPDATE SET"
                " root = excluded.root, created_at = excluded.created_at,"
                " key_ids = excluded.key_ids, note = excluded.note",
                (tenant_id, size, root, made.created_at, " ".join(key_ids), note),
            )
            return made, True

        result: tuple[StoredCheckpoint, bool] = self._write(txn)
        return result

    def signing_keys(self) -> list[SigningKeyRecord]:
        rows = self._fetchall(
            "SELECT key_id, name, vkey, state, created_at, retired_at FROM signing_keys"
            " ORDER BY CASE state WHEN 'active' THEN 0 WHEN 'retiring' THEN 1 ELSE 2 END,"
            " created_at DESC, key_id"
        )
        return [SigningKeyRecord(*row) for row in rows]

    def add_signing_key(self, record: SigningKeyRecord, *, rotate: bool) -> bool:
        """Store a new active key. Without ``rotate`` only if there is no active key yet
        (returns False otherwise); with it the active key becomes ``retiring`` (it co-signs)."""

        def txn(conn: sqlite3.Connection) -> bool:
            active = conn.execute("SELECT 1 FROM signing_keys WHERE state = 'active'").fetchone()
            if active is not None and not rotate:
                return False
            conn.execute("UPDATE signing_keys SET state = 'retiring' WHERE state = 'active'")
            conn.execute(
                "INSERT INTO signing_keys (key_id, name, vkey, state, created_at, retired_at)"
                " VALUES (?, ?, ?, 'active', ?, NULL)",
                (record.key_id, record.name, record.vkey, record.created_at),
            )
            return True

        added: bool = self._write(txn)
        return added

    def retire_signing_keys(self, at: int) -> list[SigningKeyRecord]:
        """Mark every ``retiring`` key ``retired`` (it stops co-signing); return those keys."""
        before = [k for k in self.signing_keys() if k.state == "retiring"]

        def txn(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE signing_keys SET state = 'retired', retired_at = ?"
                " WHERE state = 'retiring'",
                (at,),
            )

        self._write(txn)
        return before


class SQLiteTenantEvents:
    """One tenant's events. Every statement here binds ``tenant_id``."""

    def __init__(self, store: SQLiteStore, tenant_id: int) -> None:
        self._store = store
        self.tenant_id = tenant_id

    def _rows(self, sql: str, params: Sequence[Any]) -> list[StoredEvent]:
        try:
            return [stored_event(r) for r in self._store._fetchall(sql, params)]
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite read failed: {exc}") from exc

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
        prefix_range: tuple[str, str] | None = None
        if f.action_prefix is not None:
            # 'user.' <= action < 'user/' : every action starting with 'user.'
            prefix_range = (
                f.action_prefix,
                f.action_prefix[:-1] + chr(ord(f.action_prefix[-1]) + 1),
            )
            range_at = len(where)
            where.append(f"{action_column} >= ? AND {action_column} < ?")
            params += prefix_range
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
            if prefix_range is not None and f.actor_id is None:
                actions = self._actions_in(*prefix_range)
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
        """Drive the query from event_targets; one event may match through several targets,
        and such repeats are adjacent in sort order, so they are dropped while paging."""
        f = page.filters
        twhere = ["t.tenant_id = ?", "e.tenant_id = t.tenant_id", "e.seq = t.seq"]
        tparams: list[Any] = [self.tenant_id]
        if f.target_id is not None:
            twhere.append("t.target_id = ?")
            tparams.append(f.target_id)
        if f.target_type is not None:
            twhere.append("t.target_type = ?")
            tparams.append(f.target_type)
        out: list[StoredEvent] = []
        after = page.after
        while len(out) < page.limit:
            cursor_sql, cursor_params = "", []
            if after is not None:
                cursor_sql = f" AND (t.occurred_at, t.seq) {cmp} (?, ?)"
                cursor_params = [after.occurred_at, after.seq]
            want = page.limit - len(out)
            sql = (
                f"SELECT {EVENT_COLUMNS} FROM event_targets t, events e "
                f"WHERE {' AND '.join(twhere + where)}{cursor_sql} "
                f"ORDER BY t.occurred_at {order}, t.seq {order} LIMIT ?"
            )
            rows = self._rows(sql, [*tparams, *params, *cursor_params, want * 2 + 1])
            for ev in rows:
                if (out and out[-1].seq == ev.seq) or (after is not None and after.seq == ev.seq):
                    continue
                out.append(ev)
                if len(out) == page.limit:
                    break
            if len(rows) < want * 2 + 1:
                break
            last = rows[-1]
            after = Position(last.occurred_at, last.seq)
        return out

    def get(self, event_id: str) -> StoredEvent | None:
        rows = self._rows(
            f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.tenant_id = ? AND e.id = ?",
            (self.tenant_id, event_id),
        )
        return rows[0] if rows else None

    def after_seq(self, seq: int, limit: int) -> list[StoredEvent]:
        return self._rows(
            f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.tenant_id = ? AND e.seq > ? "
            "ORDER BY e.seq LIMIT ?",
            (self.tenant_id, seq, limit),
        )

    def size(self) -> int:
        row = self._store._fetchone(
            "SELECT size FROM log_heads WHERE tenant_id = ?", (self.tenant_id,)
        )
        return int(row[0]) if row else 0

    def stats(self) -> tuple[int, int]:
        """``(number of stored events, highest stored seq)`` (for verification)."""
        row = self._store._fetchone(
            "SELECT count(*), coalesce(max(seq), 0) FROM events WHERE tenant_id = ?",
            (self.tenant_id,),
        )
        return int(row[0]), int(row[1])

    def scan(self, batch: int = 5000) -> Iterator[StoredEvent]:
        return scan_log(self.after_seq, batch)


class SQLiteTenantDestinations:
    """One tenant's delivery destinations. Every statement here binds ``tenant_id``."""

    def __init__(self, store: SQLiteStore, tenant_id: int) -> None:
        self._store = store
        self.tenant_id = tenant_id

    def _select(self, where: str, params: Sequence[Any]) -> list[Destination]:
        try:
            rows = self._store._fetchall(
                f"SELECT {DEST_SELECT} FROM destinations WHERE tenant_id = ? {where}",
                (self.tenant_id, *params),
            )
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite read failed: {exc}") from exc
        return [destination(r) for r in rows]

    def create(self, dest: Destination) -> Destination:
        if dest.tenant_id != self.tenant_id:
            raise StoreError("a destination must be created in its own tenant")
        values = [getattr(dest, c) for c in DESTINATION_COLUMNS]
        values[DESTINATION_COLUMNS.index("config")] = orjson.dumps(dest.config).decode()
        marks = ", ".join("?" * len(values))

        def txn(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(f"INSERT INTO destinations ({DEST_SELECT}) VALUES ({marks})", values)
            except sqlite3.IntegrityError:
                raise Conflict(f"a destination named {dest.name!r} already exists") from None

        self._store._write(txn)
        return dest

    def list(self) -> list[Destination]:
        return self._select("ORDER BY created_at, dest_id", ())

    def get(self, dest_id: str) -> Destination | None:
        found = self._select("AND dest_id = ?", (dest_id,))
        return found[0] if found else None

    def update(
        self, dest_id: str, *, held_by: str | None = None, **changes: Any
    ) -> Destination | None:
        unknown = set(changes) - DEST_UPDATABLE
        if unknown:
            raise StoreError(f"not updatable: {', '.join(sorted(unknown))}")
        if "config" in changes:
            changes["config"] = orjson.dumps(changes["config"]).decode()
        if "updated_at" not in changes:
            from auditkeep.model import now_micros

            changes["updated_at"] = now_micros()
        sets = ", ".join(f"{c} = ?" for c in changes)

        def txn(conn: sqlite3.Connection) -> int:
            try:
                cur = conn.execute(
                    f"UPDATE destinations SET {sets} WHERE tenant_id = ? AND dest_id = ?"
                    " AND (CAST(? AS TEXT) IS NULL OR lease_owner = ?)",
                    (*changes.values(), self.tenant_id, dest_id, held_by, held_by),
                )
            except sqlite3.IntegrityError:
                raise Conflict(
                    f"a destination named {changes.get('name')!r} already exists"
                ) from None
            return cur.rowcount

        if not self._store._write(txn):
            return None
        return self.get(dest_id)

    def advance(
        self,
        dest_id: str,
        from_cursor: int,
        to_cursor: int,
        at: int,
        *,
        held_by: str | None = None,
    ) -> bool:
        def txn(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE destinations SET cursor = ?, batch_end = NULL, attempts = 0,"
                " failing_since = NULL, next_attempt_at = NULL, last_error = NULL,"
                " last_attempt_at = ?, last_success_at = ?, delivered = delivered + ?,"
                " updated_at = ? WHERE tenant_id = ? AND dest_id = ? AND cursor = ?"
                " AND (CAST(? AS TEXT) IS NULL OR lease_owner = ?)",
                (
                    to_cursor,
                    at,
                    at,
                    to_cursor - from_cursor,
                    at,
                    self.tenant_id,
                    dest_id,
                    from_cursor,
                    held_by,
                    held_by,
                ),
            ).rowcount

        return bool(self._store._write(txn))

    def claim(self, dest_id: str, owner: str, now: int, until: int) -> bool:
        def txn(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE destinations SET lease_owner = ?, lease_until = ?"
                " WHERE tenant_id = ? AND dest_id = ? AND (lease_owner IS NULL"
                " OR lease_owner = ? OR lease_until IS NULL OR lease_until < ?)",
                (owner, until, self.tenant_id, dest_id, owner, now),
            ).rowcount

        return bool(self._store._write(txn))

    def delete(self, dest_id: str) -> bool:
        def txn(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM destinations WHERE tenant_id = ? AND dest_id = ?",
                (self.tenant_id, dest_id),
            ).rowcount

        return bool(self._store._write(txn))


def _load_frontier(conn: sqlite3.Connection, tenant_id: int) -> CompactRange:
    """The tenant's Merkle frontier from log_heads, checked against the head's size."""
    row = conn.execute(
        "SELECT size, frontier FROM log_heads WHERE tenant_id = ?", (tenant_id,)
    ).fetchone()
    if row is None:
        raise StoreError(f"tenant {tenant_id} has no log head")
    if row[1] is None:
        raise StoreError(f"tenant {tenant_id}'s Merkle tree is not built; run `auditkeep migrate`")
    try:
        tree = CompactRange.from_bytes(bytes(row[1]))
    except ValueError as exc:
        raise StoreError(
            f"tenant {tenant_id}: the stored Merkle frontier is corrupt: {exc}"
        ) from None
    if tree.size != row[0]:
        raise StoreError(
            f"tenant {tenant_id}: the log head has size {row[0]} but its Merkle frontier has "
            f"size {tree.size}; the store is inconsistent (run `auditkeep verify`)"
        )
    return tree


def _build_missing_trees(conn: sqlite3.Connection) -> None:
    """Build the Merkle tree of every log that has none (stores from before schema 2).

    A one-time migration step: the stored leaf hashes are appended in seq order and every
    perfect subtree is inserted, exactly as the writer would have done.
    """
    pending = conn.execute(
        "SELECT tenant_id, size FROM log_heads WHERE frontier IS NULL ORDER BY tenant_id"
    ).fetchall()
    for tenant_id, size in pending:
        tree = CompactRange()
        while True:
            rows = conn.execute(
                "SELECT seq, leaf_hash FROM events WHERE tenant_id = ? AND seq > ?"
                " ORDER BY seq LIMIT 20000",
                (tenant_id, tree.size),
            ).fetchall()
            if not rows:
                break
            nodes = []
            for seq, leaf in rows:
                if seq != tree.size + 1:
                    raise StoreError(
                        f"cannot build tenant {tenant_id}'s Merkle tree: seq {tree.size + 1} is "
                        f"missing (the next stored event is seq {seq}); run `auditkeep verify`"
                    )
                for level, idx, node in tree.append(bytes(leaf)):
                    nodes.append((tenant_id, level, idx, node))
            conn.executemany(_INSERT_NODES, nodes)
        if tree.size != size:
            raise StoreError(
                f"cannot build tenant {tenant_id}'s Merkle tree: the log head says {size} events "
                f"but {tree.size} are stored; run `auditkeep verify`"
            )
        conn.execute(
            "UPDATE log_heads SET frontier = ?, root = ? WHERE tenant_id = ?",
            (tree.to_bytes(), tree.root(), tenant_id),
        )


def _checkpoint_rows(
    conn: sqlite3.Connection, where: str, params: Sequence[Any]
) -> list[StoredCheckpoint]:
    rows = conn.execute(
        f"SELECT size, root, created_at, key_ids, note FROM checkpoints {where}", params
    ).fetchall()
    return [
        StoredCheckpoint(int(r[0]), bytes(r[1]), int(r[2]), tuple(r[3].split()), bytes(r[4]))
        for r in rows
    ]


class SQLiteTenantLog:
    """One tenant's Merkle tree and checkpoints. Every statement here binds ``tenant_id``."""

    def __init__(self, store: SQLiteStore, tenant_id: int) -> None:
        self._store = store
        self.tenant_id = tenant_id

    def head(self) -> LogHead:
        try:
            row = self._store._fetchone(
                "SELECT size, root, frontier FROM log_heads WHERE tenant_id = ?",
                (self.tenant_id,),
            )
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite read failed: {exc}") from exc
        if row is None:
            raise StoreError(f"tenant {self.tenant_id} has no log head")
        if row[2] is None:
            raise StoreError(
                f"tenant {self.tenant_id}'s Merkle tree is not built; run `auditkeep migrate`"
            )
        return LogHead(int(row[0]), bytes(row[1]), bytes(row[2]))

    def get_nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        """NodeReader: every requested node in one query (a primary-key lookup per node).

        The ids are joined as a VALUES table; the planner then searches the primary key with
        all three columns. (``(level, idx) IN (VALUES ...)`` would scan the tenant's nodes.)
        """
        if not ids:
            return []
        found: dict[tuple[int, int], bytes] = {}
        for start in range(0, len(ids), _MAX_VARS):
            chunk = ids[start : start + _MAX_VARS]
            values = ",".join("(?, ?)" for _ in chunk)
            params: list[int] = []
            for level, idx in chunk:
                params += (level, idx)
            params.append(self.tenant_id)
            try:
                rows = self._store._fetchall(
                    f"SELECT n.level, n.idx, n.hash FROM (VALUES {values}) v"
                    " JOIN merkle_nodes n ON n.tenant_id = ? AND n.level = v.column1"
                    " AND n.idx = v.column2",
                    params,
                )
                for level, idx, h in rows:
                    found[(level, idx)] = bytes(h)
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(f"SQLite read failed: {exc}") from exc
        try:
            return [found[(level, idx)] for level, idx in ids]
        except KeyError as e:
            level, idx = e.args[0]
            raise KeyError(f"node (level={level}, index={idx}) is not stored") from None

    def nodes_in_range(self, level: int, lo: int, hi: int) -> dict[int, bytes]:
        """Stored nodes ``(level, idx)`` with ``lo <= idx < hi``, by idx (for verification)."""
        rows = self._store._fetchall(
            "SELECT idx, hash FROM merkle_nodes WHERE tenant_id = ? AND level = ?"
            " AND idx >= ? AND idx < ?",
            (self.tenant_id, level, lo, hi),
        )
        return {int(idx): bytes(h) for idx, h in rows}

    def node_count(self) -> int:
        row = self._store._fetchone(
            "SELECT count(*) FROM merkle_nodes WHERE tenant_id = ?", (self.tenant_id,)
        )
        return int(row[0])

    def _checkpoints(self, where: str, params: Sequence[Any]) -> list[StoredCheckpoint]:
        try:
            with self._store._reader() as conn:
                return _checkpoint_rows(conn, where, params)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite read failed: {exc}") from exc

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        rows = self._checkpoints(
            "WHERE tenant_id = ? ORDER BY size DESC LIMIT 1", (self.tenant_id,)
        )
        return rows[0] if rows else None

    def checkpoint(self, size: int) -> StoredCheckpoint | None:
        rows = self._checkpoints("WHERE tenant_id = ? AND size = ?", (self.tenant_id, size))
        return rows[0] if rows else None

    def checkpoints(self, after_size: int = -1, limit: int = 100) -> list[StoredCheckpoint]:
        return self._checkpoints(
            "WHERE tenant_id = ? AND size > ? ORDER BY size LIMIT ?",
            (self.tenant_id, after_size, limit),
        )
