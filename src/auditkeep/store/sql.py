"""What both SQL stores share: the statements that are the same in both dialects, written once,
how rows become records, and the method bodies around them.

Shared statements are written with ``?`` placeholders (qmark, SQLite's style); a store
translates them with its :meth:`SQLStore._q` (PostgreSQL: ``%s``, cached per statement). Each
store keeps only what truly differs: connections and transactions (the SQLite writer connection
and reader pool; the PostgreSQL pool, watchdog and fence), migrations, ``append`` (executemany
vs COPY, ``FOR UPDATE``, ``event_ids``), the event queries the planners need written
differently, partitions and PRAGMAs. The hooks a store provides are the abstract methods and the
class attributes of :class:`SQLStore`.

Tenant scoping stays here: every method of :class:`SQLTenantEvents`,
:class:`SQLTenantDestinations` and :class:`SQLTenantLog` binds the tenant id it was made with.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import orjson

from auditkeep.errors import Conflict, StoreError
from auditkeep.integrity.merkle import EMPTY_ROOT, CompactRange, Node
from auditkeep.integrity.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    TileId,
    TileNodeReader,
    node_count,
    nodes_in_tiles,
    partial_tiles,
    tile_ranges,
    tiles_after_append,
)
from auditkeep.model import now_micros
from auditkeep.store.base import (
    DESTINATION_COLUMNS,
    SYSTEM_TENANT_ID,
    ApiKey,
    CheckpointSigner,
    Destination,
    LogHead,
    PageRequest,
    Position,
    SigningKeyRecord,
    StoredCheckpoint,
    StoredEvent,
    Tenant,
)

#: an event row as the stores select it (alias ``e`` for events)
EVENT_COLUMNS = "e.seq, e.occurred_at, e.leaf_hash, e.leaf_data"
#: an action prefix with more distinct actions than this under it is read as one range instead
PREFIX_MERGE_MAX_ACTIONS = 64

DEST_SELECT = ", ".join(DESTINATION_COLUMNS)
DEST_UPDATABLE = frozenset(DESTINATION_COLUMNS) - {"tenant_id", "dest_id", "created_at"}

KEY_COLUMNS = (
    "k.tenant_id, t.slug, k.key_id, k.secret_hash, k.scopes, k.name, k.created_at,"
    " k.expires_at, k.revoked_at, k.rate_limit_rps"
)
CHECKPOINT_SELECT = "SELECT size, root, created_at, key_ids, note FROM checkpoints"
EMPTY_FRONTIER = CompactRange().to_bytes()
#: leaf hashes read per query while building a missing Merkle tree
_BUILD_BATCH = 20000
#: a tile of the Merkle tree, written whole (a partial tile is rewritten as it grows)
TILE_UPSERT = (
    "INSERT INTO merkle_tiles (tenant_id, level, idx, width, hashes) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (tenant_id, level, idx)"
    " DO UPDATE SET width = excluded.width, hashes = excluded.hashes"
)
TILE_SELECT = "SELECT hashes FROM merkle_tiles WHERE tenant_id = ? AND level = ? AND idx = ?"


# -- placeholders ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def pyformat(query: str) -> str:
    """``query`` with its ``?`` placeholders as ``%s`` (psycopg). Shared statements hold no
    ``%`` and no ``?`` other than placeholders (checked: a literal one would be mistranslated)."""
    if "%" in query:
        raise ValueError(f"a shared statement must not contain '%': {query!r}")
    return query.replace("?", "%s")


def marks(count: int) -> str:
    """``?, ?, ...`` for ``count`` values."""
    return ", ".join("?" * count)


# -- rows ------------------------------------------------------------------------------------


def stored_event(row: Sequence[Any]) -> StoredEvent:
    """A row of EVENT_COLUMNS."""
    return StoredEvent(int(row[0]), int(row[1]), bytes(row[2]), bytes(row[3]))


def destination(row: Sequence[Any]) -> Destination:
    """A row of DEST_SELECT (config is JSON text)."""
    values = dict(zip(DESTINATION_COLUMNS, row, strict=True))
    values["config"] = orjson.loads(values["config"])
    if values["secret"] is not None:
        values["secret"] = bytes(values["secret"])
    return Destination(**values)


def api_key(row: Sequence[Any]) -> ApiKey:
    """A row of KEY_COLUMNS."""
    return ApiKey(
        tenant_id=int(row[0]),
        tenant_slug=row[1],
        key_id=row[2],
        secret_hash=bytes(row[3]),
        scopes=frozenset(row[4].split()),
        name=row[5],
        created_at=int(row[6]),
        expires_at=row[7],
        revoked_at=row[8],
        rate_limit_rps=row[9],
    )


def checkpoint(row: Sequence[Any]) -> StoredCheckpoint:
    """A row of CHECKPOINT_SELECT."""
    return StoredCheckpoint(
        int(row[0]), bytes(row[1]), int(row[2]), tuple(row[3].split()), bytes(row[4])
    )


def frontier(tenant_id: int, head: Sequence[Any] | None) -> CompactRange:
    """The tenant's Merkle frontier from its log_heads row ``(size, frontier)``, checked
    against the head's size."""
    if head is None:
        raise StoreError(f"tenant {tenant_id} has no log head")
    size, stored = head[0], head[1]
    if stored is None:
        raise StoreError(f"tenant {tenant_id}'s Merkle tree is not built; run `auditkeep migrate`")
    try:
        tree = CompactRange.from_bytes(bytes(stored))
    except ValueError as exc:
        raise StoreError(
            f"tenant {tenant_id}: the stored Merkle frontier is corrupt: {exc}"
        ) from None
    if tree.size != size:
        raise StoreError(
            f"tenant {tenant_id}: the log head has size {size} but its Merkle frontier has "
            f"size {tree.size}; the store is inconsistent (run `auditkeep verify`)"
        )
    return tree


def append_tiles(
    conn: Connection,
    q: Callable[[str], str],
    tenant_id: int,
    old_size: int,
    new_size: int,
    created: Sequence[Node],
) -> None:
    """Write the tiles of the tenant's tree grown from ``old_size`` to ``new_size`` leaves
    (``created``: the nodes :meth:`CompactRange.extend` returned): each new full tile once, and
    the partial tile of each level, which starts with what is stored (read here, in the same
    transaction: a few rows, so no cache can drift from what another node wrote)."""
    partial: dict[TileId, bytes] = {}
    for level, idx in partial_tiles(old_size, new_size):
        row = conn.execute(q(TILE_SELECT), (tenant_id, level, idx)).fetchone()
        if row is None:
            raise StoreError(
                f"tenant {tenant_id}'s Merkle tile (level {level}, index {idx}) is missing; "
                "run `auditkeep verify`"
            )
        partial[(level, idx)] = bytes(row[0])
    try:
        tiles = tiles_after_append(old_size, new_size, created, partial)
    except ValueError as exc:
        raise StoreError(
            f"tenant {tenant_id}'s Merkle tiles: {exc}; run `auditkeep verify`"
        ) from None
    upsert = q(TILE_UPSERT)
    for level, idx, hashes in tiles:
        conn.execute(upsert, (tenant_id, level, idx, len(hashes) // 32, hashes))


def migrations(dialect: str) -> list[tuple[int, str]]:
    """``(number, script)`` of every migration of ``dialect`` (``sqlite``, ``postgres``)."""
    folder = resources.files("auditkeep.store") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text("utf-8")))
    return sorted(found)


def prefix_range(prefix: str) -> tuple[str, str]:
    """``[low, high)`` of the actions starting with ``prefix``: 'user.' <= action < 'user/'."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def scan_log(
    after_seq: Callable[[int, int], list[StoredEvent]], batch: int
) -> Iterator[StoredEvent]:
    """Every event of a log in seq order, ``batch`` rows per read."""
    last = 0
    while True:
        rows = after_seq(last, batch)
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def page_by_target(
    page: PageRequest, fetch: Callable[[Position | None, int], list[StoredEvent]]
) -> list[StoredEvent]:
    """One page of a query driven from event_targets. ``fetch(after, n)`` reads up to ``n``
    rows in page order after the position ``after``. One event may match through several
    targets: such repeats are adjacent in sort order, so they are dropped while paging (and
    twice the rows still wanted are read, so a page is rarely a second read)."""
    out: list[StoredEvent] = []
    after = page.after
    while len(out) < page.limit:
        want = (page.limit - len(out)) * 2 + 1
        rows = fetch(after, want)
        for ev in rows:
            if (out and out[-1].seq == ev.seq) or (after is not None and after.seq == ev.seq):
                continue
            out.append(ev)
            if len(out) == page.limit:
                break
        if len(rows) < want:
            break
        last = rows[-1]
        after = Position(last.occurred_at, last.seq)
    return out


# -- the connection both drivers offer -------------------------------------------------------


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What shared code uses of a connection (``sqlite3`` and ``psycopg`` both offer it)."""

    def execute(self, query: str, params: Sequence[Any] = ..., /) -> Cursor: ...


# -- the store -------------------------------------------------------------------------------


class SQLStore:
    """The part of the Store contract that both SQL stores implement the same way.

    A subclass provides the hooks: :meth:`_fetch` (one read, in the store's placeholder
    style, driver errors mapped), :meth:`_transaction` (one write transaction, committed on
    success), :meth:`_insert_tenant`, :meth:`_has_table`, and the class attributes below.
    """

    #: the driver's exception for a unique violation (a name taken: Conflict)
    _UNIQUE: ClassVar[type[Exception]]
    #: appended to a read of log_heads in a write transaction (PostgreSQL: " FOR UPDATE")
    _LOCK_ROWS: ClassVar[str] = ""
    #: the condition naming the operator's rows of tables kept for tenant 0 only
    #: (signing_keys: PostgreSQL leads every key by tenant_id, SQLite has no such column)
    _SYSTEM_ROWS: ClassVar[str] = "1 = 1"

    # -- hooks -----------------------------------------------------------------------------

    def _q(self, query: str) -> str:
        """A shared statement (``?`` placeholders) in the store's placeholder style."""
        return query

    def _fetch(self, query: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def _transaction(self) -> contextlib.AbstractContextManager[Connection]:
        raise NotImplementedError

    def _insert_tenant(self, conn: Connection, slug: str, name: str, now: int) -> int:
        """Insert the tenant row; its new tenant_id (Conflict if the slug is taken)."""
        raise NotImplementedError

    def _has_table(self, conn: Connection, name: str) -> bool:
        """Whether the table ``name`` exists (in a migration)."""
        raise NotImplementedError

    def _bindable(self, *values: str | None) -> bool:
        """Whether every value can be bound as text (PostgreSQL refuses U+0000 and lone
        surrogates: such a value matches nothing, and the lookup is skipped)."""
        return True

    def _lock_signing_keys(self, conn: Connection) -> None:
        """Serialize makers of a first signing key (SQLite: BEGIN IMMEDIATE already does)."""

    def _checkpointed(self, tenant_id: int, size: int) -> None:
        """Called after a new checkpoint of ``size`` committed."""

    # -- reads in the shared style -----------------------------------------------------------

    def _select(self, query: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of a shared statement (``?`` placeholders)."""
        return self._fetch(self._q(query), params)

    def _select_one(self, query: str, params: Sequence[Any] = ()) -> Any:
        rows = self._fetch(self._q(query), params)
        return rows[0] if rows else None

    # -- tenants and keys ------------------------------------------------------------------

    def create_tenant(self, slug: str, name: str) -> Tenant:
        now = now_micros()
        with self._transaction() as conn:
            tenant_id = self._insert_tenant(conn, slug, name, now)
            conn.execute(
                self._q(
                    "INSERT INTO log_heads (tenant_id, size, frontier, root) VALUES (?, 0, ?, ?)"
                ),
                (tenant_id, EMPTY_FRONTIER, EMPTY_ROOT),
            )
        return Tenant(tenant_id, slug, name, now)

    def get_tenant(self, slug: str) -> Tenant | None:
        if not self._bindable(slug):
            return None
        row = self._select_one(
            "SELECT tenant_id, slug, name, created_at FROM tenants WHERE slug = ?", (slug,)
        )
        return Tenant(*row) if row else None

    def list_tenants(self) -> list[Tenant]:
        rows = self._select(
            "SELECT tenant_id, slug, name, created_at FROM tenants WHERE tenant_id <> ?"
            " ORDER BY slug",
            (SYSTEM_TENANT_ID,),
        )
        return [Tenant(*row) for row in rows]

    def create_key(self, key: ApiKey) -> None:
        with self._transaction() as conn:
            conn.execute(
                self._q(
                    "INSERT INTO api_keys (tenant_id, key_id, secret_hash, scopes, name,"
                    " created_at, expires_at, revoked_at, rate_limit_rps)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
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

    def find_key(self, key_id: str) -> ApiKey | None:
        if not self._bindable(key_id):
            return None
        row = self._select_one(
            f"SELECT {KEY_COLUMNS} FROM api_keys k JOIN tenants t USING (tenant_id)"
            " WHERE k.key_id = ?",
            (key_id,),
        )
        return api_key(row) if row else None

    def list_keys(self, tenant_id: int) -> list[ApiKey]:
        rows = self._select(
            f"SELECT {KEY_COLUMNS} FROM api_keys k JOIN tenants t USING (tenant_id)"
            " WHERE k.tenant_id = ? ORDER BY k.created_at, k.key_id",
            (tenant_id,),
        )
        return [api_key(row) for row in rows]

    def revoke_key(self, tenant_id: int, key_id: str, at: int) -> ApiKey | None:
        if not self._bindable(key_id):
            return None
        with self._transaction() as conn:
            changed = conn.execute(
                self._q(
                    "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?)"
                    " WHERE tenant_id = ? AND key_id = ? AND revoked_at IS NULL"
                ),
                (at, tenant_id, key_id),
            ).rowcount
            if changed:
                conn.execute("UPDATE key_revision SET revision = revision + 1")
        key = self.find_key(key_id)
        return key if key is not None and key.tenant_id == tenant_id else None

    def key_revision(self) -> int:
        row = self._select_one("SELECT revision FROM key_revision")
        return int(row[0]) if row else 0

    # -- delivery --------------------------------------------------------------------------

    def destinations(self, tenant_id: int) -> SQLTenantDestinations:
        return SQLTenantDestinations(self, tenant_id)

    def due_destinations(self, now: int) -> list[Destination]:
        return self._destinations_where(
            "state = 'active' AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
            " ORDER BY coalesce(next_attempt_at, 0), tenant_id, dest_id",
            (now,),
        )

    def all_destinations(self) -> list[Destination]:
        return self._destinations_where("1 = 1 ORDER BY tenant_id, created_at, dest_id", ())

    def _destinations_where(self, where: str, params: Sequence[Any]) -> list[Destination]:
        rows = self._select(f"SELECT {DEST_SELECT} FROM destinations WHERE {where}", params)
        return [destination(r) for r in rows]

    def release_leases(self, owner: str | None) -> int:
        with self._transaction() as conn:
            return conn.execute(
                self._q(
                    "UPDATE destinations SET lease_owner = NULL, lease_until = NULL"
                    " WHERE lease_owner IS NOT NULL AND (CAST(? AS TEXT) IS NULL"
                    " OR lease_owner = ?)"
                ),
                (owner, owner),
            ).rowcount

    # -- the verifiable log ----------------------------------------------------------------

    def add_checkpoint(
        self, tenant_id: int, sign: CheckpointSigner, *, force: bool = False
    ) -> tuple[StoredCheckpoint, bool]:
        # The head row is read in the write transaction (on PostgreSQL locked like a writer's):
        # the head and the latest checkpoint are read together, and two signers take turns.
        with self._transaction() as conn:
            row = conn.execute(
                self._q(f"SELECT size, root FROM log_heads WHERE tenant_id = ?{self._LOCK_ROWS}"),
                (tenant_id,),
            ).fetchone()
            if row is None:
                raise StoreError(f"tenant {tenant_id} has no log head")
            size, root = int(row[0]), bytes(row[1])
            key_ids = sign.key_ids()
            latest = conn.execute(
                self._q(f"{CHECKPOINT_SELECT} WHERE tenant_id = ? ORDER BY size DESC LIMIT 1"),
                (tenant_id,),
            ).fetchone()
            if latest is not None and not force:
                last = checkpoint(latest)
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
                self._q(
                    "INSERT INTO checkpoints (tenant_id, size, root, created_at, key_ids, note)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, size) DO UPDATE SET"
                    " root = excluded.root, created_at = excluded.created_at,"
                    " key_ids = excluded.key_ids, note = excluded.note"
                ),
                (tenant_id, size, root, made.created_at, " ".join(key_ids), note),
            )
        self._checkpointed(tenant_id, size)
        return made, True

    def signing_keys(self) -> list[SigningKeyRecord]:
        rows = self._select(
            "SELECT key_id, name, vkey, state, created_at, retired_at FROM signing_keys"
            f" WHERE {self._SYSTEM_ROWS}"
            " ORDER BY CASE state WHEN 'active' THEN 0 WHEN 'retiring' THEN 1 ELSE 2 END,"
            " created_at DESC, key_id"
        )
        return [SigningKeyRecord(*row) for row in rows]

    def add_signing_key(self, record: SigningKeyRecord, *, rotate: bool) -> bool:
        """Store a new active key. Without ``rotate`` only if there is no active key yet
        (returns False otherwise); with it the active key becomes ``retiring`` (it co-signs).
        Nodes starting together take turns (:meth:`_lock_signing_keys`), so only one first
        key is made."""
        with self._transaction() as conn:
            self._lock_signing_keys(conn)
            active = conn.execute(
                f"SELECT 1 FROM signing_keys WHERE {self._SYSTEM_ROWS} AND state = 'active'"
            ).fetchone()
            if active is not None and not rotate:
                return False
            conn.execute(
                f"UPDATE signing_keys SET state = 'retiring' WHERE {self._SYSTEM_ROWS}"
                " AND state = 'active'"
            )
            conn.execute(  # on PostgreSQL, tenant_id takes its default: the operator's
                self._q(
                    "INSERT INTO signing_keys (key_id, name, vkey, state, created_at, retired_at)"
                    " VALUES (?, ?, ?, 'active', ?, NULL)"
                ),
                (record.key_id, record.name, record.vkey, record.created_at),
            )
        return True

    def retire_signing_keys(self, at: int) -> list[SigningKeyRecord]:
        """Mark every ``retiring`` key ``retired`` (it stops co-signing); return those keys."""
        before = [k for k in self.signing_keys() if k.state == "retiring"]
        with self._transaction() as conn:
            conn.execute(
                self._q(
                    "UPDATE signing_keys SET state = 'retired', retired_at = ?"
                    f" WHERE {self._SYSTEM_ROWS} AND state = 'retiring'"
                ),
                (at,),
            )
        return before

    # -- schema ----------------------------------------------------------------------------

    def _build_missing_trees(self, conn: Connection) -> None:
        """Build the Merkle tree of every log that has none (stores from before schema 2).

        A one-time migration step: the stored leaf hashes are appended in seq order and the
        tiles written, exactly as the writer would have done.
        """
        pending = conn.execute(
            "SELECT tenant_id, size FROM log_heads WHERE frontier IS NULL ORDER BY tenant_id"
            + self._LOCK_ROWS
        ).fetchall()
        for tenant_id, size in pending:
            tree = CompactRange()
            while True:
                rows = conn.execute(
                    self._q(
                        "SELECT seq, leaf_hash FROM events WHERE tenant_id = ? AND seq > ?"
                        f" ORDER BY seq LIMIT {_BUILD_BATCH}"
                    ),
                    (tenant_id, tree.size),
                ).fetchall()
                if not rows:
                    break
                for n, (seq, _) in enumerate(rows, tree.size + 1):
                    if seq != n:
                        raise StoreError(
                            f"cannot build tenant {tenant_id}'s Merkle tree: seq "
                            f"{n} is missing (the next stored event is seq {seq}); "
                            "run `auditkeep verify`"
                        )
                old = tree.size
                created = tree.extend([bytes(leaf) for _, leaf in rows])
                append_tiles(conn, self._q, tenant_id, old, tree.size, created)
            if tree.size != size:
                raise StoreError(
                    f"cannot build tenant {tenant_id}'s Merkle tree: the log head says {size} "
                    f"events but {tree.size} are stored; run `auditkeep verify`"
                )
            conn.execute(
                self._q("UPDATE log_heads SET frontier = ?, root = ? WHERE tenant_id = ?"),
                (tree.to_bytes(), tree.root(), tenant_id),
            )

    def _tiles_from_nodes(self, conn: Connection) -> None:
        """Move the trees of a schema-4 store from merkle_nodes into merkle_tiles, then drop
        merkle_nodes (a one-time migration step, after migration 0005).

        The tiles are the stored nodes of levels 0, 8, 16, ... (every other node is recomputed
        from them); each level must be the nodes 0 .. (size >> level) - 1 without a gap, or the
        migration stops and names what is missing.
        """
        if not self._has_table(conn, "merkle_nodes"):
            return
        heads = conn.execute(
            "SELECT tenant_id, size FROM log_heads WHERE frontier IS NOT NULL ORDER BY tenant_id"
            + self._LOCK_ROWS
        ).fetchall()
        read = self._q(
            "SELECT idx, hash FROM merkle_nodes WHERE tenant_id = ? AND level = ? AND idx >= ?"
            f" ORDER BY idx LIMIT {TILE_WIDTH * 64}"
        )
        upsert = self._q(TILE_UPSERT)
        for tenant_id, size in heads:
            tile_level = 0
            while count := int(size) >> (TILE_HEIGHT * tile_level):
                level = TILE_HEIGHT * tile_level
                done = 0
                while done < count:
                    rows = conn.execute(read, (tenant_id, level, done)).fetchall()
                    rows = [r for r in rows if r[0] < count]
                    if not rows or any(int(idx) != i for i, (idx, _) in enumerate(rows, done)):
                        raise StoreError(
                            f"cannot move tenant {tenant_id}'s Merkle tree to tiles: node "
                            f"(level {level}, index {done + len(rows)}) is missing; run "
                            "`auditkeep verify` on the previous version"
                        )
                    joined = b"".join(bytes(h) for _, h in rows)
                    for start in range(0, len(joined), TILE_WIDTH * 32):
                        hashes = joined[start : start + TILE_WIDTH * 32]
                        conn.execute(
                            upsert,
                            (
                                tenant_id,
                                tile_level,
                                (done + start // 32) // TILE_WIDTH,
                                len(hashes) // 32,
                                hashes,
                            ),
                        )
                    done += len(rows)
                tile_level += 1
        conn.execute("DROP TABLE merkle_nodes")


S = TypeVar("S", bound=SQLStore)


class SQLTenantEvents(Generic[S]):
    """One tenant's events. Every statement here binds ``tenant_id``. A store adds ``query``
    and ``get`` (written for its planner and schema)."""

    def __init__(self, store: S, tenant_id: int) -> None:
        self._store = store
        self.tenant_id = tenant_id

    def _rows(self, query: str, params: Sequence[Any]) -> list[StoredEvent]:
        """Events selected by ``query`` (in the store's own placeholder style)."""
        return [stored_event(r) for r in self._store._fetch(query, params)]

    def after_seq(self, seq: int, limit: int) -> list[StoredEvent]:
        return self._rows(
            self._store._q(
                f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.tenant_id = ? AND e.seq > ?"
                " ORDER BY e.seq LIMIT ?"
            ),
            (self.tenant_id, seq, limit),
        )

    def size(self) -> int:
        row = self._store._select_one(
            "SELECT size FROM log_heads WHERE tenant_id = ?", (self.tenant_id,)
        )
        return int(row[0]) if row else 0

    def stats(self) -> tuple[int, int]:
        """``(number of stored events, highest stored seq)`` (for verification)."""
        row = self._store._select_one(
            "SELECT count(*), coalesce(max(seq), 0) FROM events WHERE tenant_id = ?",
            (self.tenant_id,),
        )
        return int(row[0]), int(row[1])

    def scan(self, batch: int = 5000) -> Iterator[StoredEvent]:
        return scan_log(self.after_seq, batch)


class SQLTenantDestinations:
    """One tenant's delivery destinations. Every statement here binds ``tenant_id``."""

    def __init__(self, store: SQLStore, tenant_id: int) -> None:
        self._store = store
        self.tenant_id = tenant_id

    def _select(self, where: str, params: Sequence[Any]) -> list[Destination]:
        rows = self._store._select(
            f"SELECT {DEST_SELECT} FROM destinations WHERE tenant_id = ? {where}",
            (self.tenant_id, *params),
        )
        return [destination(r) for r in rows]

    def _update(self, sets: str, where: str, params: Sequence[Any], name: Any = None) -> int:
        """``UPDATE destinations SET {sets}`` of this tenant's rows matching ``where`` (in one
        write transaction); how many changed. When it renames the destination to ``name``, a
        name taken is a Conflict."""
        with self._store._transaction() as conn:
            try:
                return conn.execute(
                    self._store._q(
                        f"UPDATE destinations SET {sets} WHERE tenant_id = ? AND {where}"
                    ),
                    params,
                ).rowcount
            except self._store._UNIQUE:
                if name is None:  # not a rename: not the user's doing
                    raise
                raise Conflict(f"a destination named {name!r} already exists") from None

    def create(self, dest: Destination) -> Destination:
        if dest.tenant_id != self.tenant_id:
            raise StoreError("a destination must be created in its own tenant")
        values = [getattr(dest, c) for c in DESTINATION_COLUMNS]
        values[DESTINATION_COLUMNS.index("config")] = orjson.dumps(dest.config).decode()
        query = self._store._q(
            f"INSERT INTO destinations ({DEST_SELECT}) VALUES ({marks(len(values))})"
        )
        with self._store._transaction() as conn:
            try:
                conn.execute(query, values)
            except self._store._UNIQUE:
                raise Conflict(f"a destination named {dest.name!r} already exists") from None
        return dest

    def list(self) -> list[Destination]:
        return self._select("ORDER BY created_at, dest_id", ())

    def get(self, dest_id: str) -> Destination | None:
        if not self._store._bindable(dest_id):
            return None
        found = self._select("AND dest_id = ?", (dest_id,))
        return found[0] if found else None

    def update(
        self, dest_id: str, *, held_by: str | None = None, **changes: Any
    ) -> Destination | None:
        unknown = set(changes) - DEST_UPDATABLE
        if unknown:
            raise StoreError(f"not updatable: {', '.join(sorted(unknown))}")
        if not self._store._bindable(dest_id):
            return None
        if "config" in changes:
            changes["config"] = orjson.dumps(changes["config"]).decode()
        if "updated_at" not in changes:
            changes["updated_at"] = now_micros()
        sets = ", ".join(f"{c} = ?" for c in changes)
        updated = self._update(
            sets,
            "dest_id = ? AND (CAST(? AS TEXT) IS NULL OR lease_owner = ?)",
            (*changes.values(), self.tenant_id, dest_id, held_by, held_by),
            changes.get("name"),
        )
        if not updated:
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
        if not self._store._bindable(dest_id):
            return False
        return (
            self._update(
                "cursor = ?, batch_end = NULL, attempts = 0, failing_since = NULL,"
                " next_attempt_at = NULL, last_error = NULL, last_attempt_at = ?,"
                " last_success_at = ?, delivered = delivered + ?, updated_at = ?",
                "dest_id = ? AND cursor = ? AND (CAST(? AS TEXT) IS NULL OR lease_owner = ?)",
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
            )
            > 0
        )

    def claim(self, dest_id: str, owner: str, now: int, until: int) -> bool:
        if not self._store._bindable(dest_id, owner):
            return False
        return (
            self._update(
                "lease_owner = ?, lease_until = ?",
                "dest_id = ? AND (lease_owner IS NULL OR lease_owner = ? OR lease_until IS NULL"
                " OR lease_until < ?)",
                (owner, until, self.tenant_id, dest_id, owner, now),
            )
            > 0
        )

    def delete(self, dest_id: str) -> bool:
        if not self._store._bindable(dest_id):
            return False
        with self._store._transaction() as conn:
            return (
                conn.execute(
                    self._store._q("DELETE FROM destinations WHERE tenant_id = ? AND dest_id = ?"),
                    (self.tenant_id, dest_id),
                ).rowcount
                > 0
            )


class SQLTenantLog(Generic[S]):
    """One tenant's Merkle tree (as tiles: :mod:`auditkeep.integrity.tiles`) and checkpoints.
    Every statement here binds ``tenant_id``."""

    def __init__(self, store: S, tenant_id: int) -> None:
        self._store = store
        self.tenant_id = tenant_id

    def head(self) -> LogHead:
        row = self._store._select_one(
            "SELECT size, root, frontier FROM log_heads WHERE tenant_id = ?", (self.tenant_id,)
        )
        if row is None:
            raise StoreError(f"tenant {self.tenant_id} has no log head")
        if row[2] is None:
            raise StoreError(
                f"tenant {self.tenant_id}'s Merkle tree is not built; run `auditkeep migrate`"
            )
        return LogHead(int(row[0]), bytes(row[1]), bytes(row[2]))

    def get_tiles(self, ids: Sequence[TileId]) -> dict[TileId, bytes]:
        """TileReader: the stored tiles among ``ids``, in one query (per tile level, an
        ``idx IN (...)`` on the primary key)."""
        by_level: dict[int, list[int]] = {}
        for level, idx in ids:
            by_level.setdefault(level, []).append(idx)
        parts = []
        params: list[int] = []
        for level, idxs in sorted(by_level.items()):
            parts.append(
                "SELECT level, idx, hashes FROM merkle_tiles WHERE tenant_id = ? AND level = ?"
                f" AND idx IN ({marks(len(idxs))})"
            )
            params += (self.tenant_id, level, *idxs)
        if not parts:
            return {}
        rows = self._store._select(" UNION ALL ".join(parts), params)
        return {(int(level), int(idx)): bytes(h) for level, idx, h in rows}

    def get_nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        """NodeReader: every requested node, recomputed from the tiles that hold it (one
        query)."""
        return TileNodeReader(self).get_nodes(ids)

    def nodes_in_range(self, level: int, lo: int, hi: int) -> dict[int, bytes]:
        """Stored nodes ``(level, idx)`` with ``lo <= idx < hi``, by idx (for verification)."""
        hi = min(hi, 1 << (63 - level))  # no tree is larger: keeps the bounds in int64
        if lo >= hi:
            return {}
        tile_level, first, last = tile_ranges(level, lo, hi)
        rows = self._store._select(
            "SELECT idx, hashes FROM merkle_tiles WHERE tenant_id = ? AND level = ?"
            " AND idx >= ? AND idx <= ?",
            (self.tenant_id, tile_level, first, last),
        )
        tiles = {(tile_level, int(idx)): bytes(h) for idx, h in rows}
        return nodes_in_tiles(tiles, level, lo, hi)

    def node_count(self) -> int:
        """Perfect subtrees the stored tiles hold (a tree of n leaves has 2n - popcount(n))."""
        rows = self._store._select(
            "SELECT width, count(*) FROM merkle_tiles WHERE tenant_id = ? GROUP BY width",
            (self.tenant_id,),
        )
        return sum(node_count(int(width)) * int(n) for width, n in rows)

    def _checkpoints(self, where: str, params: Sequence[Any]) -> list[StoredCheckpoint]:
        rows = self._store._select(f"{CHECKPOINT_SELECT} WHERE tenant_id = ? {where}", params)
        return [checkpoint(r) for r in rows]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        rows = self._checkpoints("ORDER BY size DESC LIMIT 1", (self.tenant_id,))
        return rows[0] if rows else None

    def checkpoint(self, size: int) -> StoredCheckpoint | None:
        rows = self._checkpoints("AND size = ?", (self.tenant_id, size))
        return rows[0] if rows else None

    def checkpoints(self, after_size: int = -1, limit: int = 100) -> list[StoredCheckpoint]:
        return self._checkpoints(
            "AND size > ? ORDER BY size LIMIT ?", (self.tenant_id, after_size, limit)
        )
