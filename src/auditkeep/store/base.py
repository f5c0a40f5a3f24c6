"""The storage contract: what every store (SQLite, and later PostgreSQL) provides.

Tenant scoping lives here, not in the HTTP handlers: event reads are only reachable through
:meth:`Store.events`, which returns a :class:`TenantEvents` bound to one tenant id, and every
statement it runs carries that id. A handler cannot forget the tenant because it has no way to
ask for events without one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

from auditkeep.model import PreparedEvent

SYSTEM_TENANT_ID = 0  # owns operator keys; never holds events
SYSTEM_TENANT_SLUG = "_system"


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant_id: int
    slug: str
    name: str
    created_at: int


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's stored record. Only the SHA-256 of the key is kept, never the key."""

    tenant_id: int
    tenant_slug: str
    key_id: str
    secret_hash: bytes
    scopes: frozenset[str]
    name: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    rate_limit_rps: float | None

    def public(self) -> dict[str, Any]:
        """What a key listing shows: never the hash."""
        from auditkeep_client.schema import format_timestamp

        return {
            "key_id": self.key_id,
            "tenant": self.tenant_slug,
            "name": self.name,
            "scopes": sorted(self.scopes),
            "created_at": format_timestamp(self.created_at),
            "expires_at": format_timestamp(self.expires_at) if self.expires_at else None,
            "revoked_at": format_timestamp(self.revoked_at) if self.revoked_at else None,
            "rate_limit_rps": self.rate_limit_rps,
        }


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One stored event: its position in the tenant's log, leaf hash and leaf data."""

    seq: int
    occurred_at: int
    leaf_hash: bytes
    leaf_data: bytes
    redacted: tuple[str, ...] = ()
    """Fields removed from ``leaf_data`` for a scoped reader (``store.scope``): the content
    no longer hashes to ``leaf_hash``, which still proves the event's inclusion."""

    def to_json(self) -> dict[str, Any]:
        event: dict[str, Any] = orjson.loads(self.leaf_data)
        event["seq"] = self.seq
        event["hash"] = self.leaf_hash.hex()
        if self.redacted:
            event["redacted"] = list(self.redacted)
        return event


AppendStatus = Literal["accepted", "duplicate", "conflict"]


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What happened to one event handed to :meth:`Store.append`."""

    status: AppendStatus
    seq: int


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Filters of the query API. Times are UTC microseconds; ``until`` is exclusive."""

    actor_id: str | None = None
    action: str | None = None
    action_prefix: str | None = None
    target_id: str | None = None
    target_type: str | None = None
    outcome: str | None = None
    category: str | None = None
    since: int | None = None
    until: int | None = None


@dataclass(frozen=True, slots=True)
class Position:
    """A keyset cursor position: the sort key of the last row of the previous page."""

    occurred_at: int
    seq: int


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int = 50
    after: Position | None = None
    descending: bool = True
    filters: EventFilter = field(default_factory=EventFilter)


@dataclass(frozen=True, slots=True)
class TenantAppend:
    """A batch of prepared events for one tenant."""

    tenant_id: int
    events: Sequence[PreparedEvent]


@dataclass(frozen=True, slots=True)
class LogHead:
    """The head of a tenant's log: its size, Merkle root and frontier (the writer's state)."""

    size: int
    root: bytes
    frontier: bytes  # CompactRange.to_bytes() of the tree of ``size`` leaves


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed checkpoint as kept in the store."""

    size: int
    root: bytes
    created_at: int
    key_ids: tuple[str, ...]
    note: bytes


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    """A checkpoint signing key's public record (the private half is a file, never stored)."""

    key_id: str
    name: str
    vkey: str
    state: Literal["active", "retiring", "retired"]
    created_at: int
    retired_at: int | None


@dataclass(frozen=True, slots=True)
class Destination:
    """A delivery destination and its progress over its tenant's log (seq order)."""

    tenant_id: int
    dest_id: str
    name: str
    kind: str
    config: dict[str, Any]
    secret: bytes | None  # sealed (delivery/secretbox.py); never served
    state: Literal["active", "paused"]
    paused_reason: str | None
    cursor: int  # highest seq delivered
    batch_end: int | None  # last seq of the batch in flight, fixed after its first attempt
    attempts: int  # failed attempts of the batch in flight
    failing_since: int | None
    next_attempt_at: int | None
    last_error: str | None
    last_attempt_at: int | None
    last_success_at: int | None
    delivered: int
    created_at: int
    updated_at: int


DESTINATION_COLUMNS: tuple[str, ...] = tuple(Destination.__dataclass_fields__)


class TenantDestinations(Protocol):
    """One tenant's destinations. Every method is scoped to that tenant."""

    tenant_id: int

    def create(self, dest: Destination) -> Destination:
        """Store a new destination (Conflict if the name is taken)."""

    def list(self) -> list[Destination]: ...

    def get(self, dest_id: str) -> Destination | None: ...

    def update(
        self, dest_id: str, *, held_by: str | None = None, **changes: Any
    ) -> Destination | None:
        """Set the given columns (and updated_at); None if there is no such destination (or,
        with ``held_by``, if that owner no longer holds its delivery lease)."""

    def advance(
        self,
        dest_id: str,
        from_cursor: int,
        to_cursor: int,
        at: int,
        *,
        held_by: str | None = None,
    ) -> bool:
        """Record a delivered batch: cursor ``from_cursor`` -> ``to_cursor``, failures cleared.
        False (nothing changed) if the cursor is no longer ``from_cursor`` (or, with
        ``held_by``, that owner no longer holds the lease)."""

    def delete(self, dest_id: str) -> bool: ...

    def claim(self, dest_id: str, owner: str, now: int, until: int) -> bool:
        """Take or renew the delivery lease of a destination for ``owner`` (a dispatcher of one
        node) until ``until``; False if another owner holds an unexpired lease. With several
        API nodes, only the holder delivers, so batches are not sent twice in parallel."""


class TenantEvents(Protocol):
    """Read access to one tenant's events. Every method is scoped to that tenant."""

    tenant_id: int

    def query(self, page: PageRequest) -> list[StoredEvent]:
        """One page in (occurred_at, seq) order, newest first unless ``descending`` is False."""

    def get(self, event_id: str) -> StoredEvent | None: ...

    def after_seq(self, seq: int, limit: int) -> list[StoredEvent]:
        """Events with seq > ``seq`` in ascending seq order (tail and feeds)."""

    def size(self) -> int:
        """Number of events in the tenant's log (its highest seq)."""

    def scan(self, batch: int = 5000) -> Iterator[StoredEvent]:
        """Every event in seq order, for verification and export."""


class TenantLog(Protocol):
    """Read access to one tenant's Merkle tree and checkpoints. Every method is scoped to it.

    It is a :class:`~auditkeep.integrity.merkle.NodeReader`: ``get_nodes`` reads the tiles
    holding the requested perfect subtrees in one query and recomputes the nodes inside them
    (:mod:`auditkeep.integrity.tiles`).
    """

    tenant_id: int

    def head(self) -> LogHead: ...

    def get_nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        """Hashes of the nodes ``(level, index)``, in order; KeyError if one is not stored."""

    def latest_checkpoint(self) -> StoredCheckpoint | None: ...

    def checkpoint(self, size: int) -> StoredCheckpoint | None: ...

    def checkpoints(self, after_size: int = -1, limit: int = 100) -> list[StoredCheckpoint]:
        """Checkpoints with size > ``after_size``, smallest first."""


class Store(Protocol):
    """A durable store. ``append`` is called by one writer thread per process."""

    def migrate(self) -> int:
        """Apply pending schema migrations; return the schema version."""

    def check_ready(self) -> None:
        """Raise StoreUnavailable if the store cannot serve requests now."""

    def close(self) -> None: ...

    # tenants and keys
    def create_tenant(self, slug: str, name: str) -> Tenant: ...

    def get_tenant(self, slug: str) -> Tenant | None: ...

    def list_tenants(self) -> list[Tenant]: ...

    def create_key(self, key: ApiKey) -> None: ...

    def find_key(self, key_id: str) -> ApiKey | None:
        """Look a key up by its public id, for authentication (the only unscoped read)."""

    def list_keys(self, tenant_id: int) -> list[ApiKey]: ...

    def revoke_key(self, tenant_id: int, key_id: str, at: int) -> ApiKey | None: ...

    def key_revision(self) -> int:
        """A counter that moves with every key revocation (in the same transaction): a process
        caching keys drops its cache when it sees it move, so a key revoked by another
        process or node stops working there too."""
        ...

    # events
    def append(self, batches: Sequence[TenantAppend]) -> list[list[AppendResult]]:
        """Write every batch in ONE durable transaction; results per event, in order.

        Each new event gets the tenant's next seq (gap-free). An event whose id is already
        stored with the same content is a ``duplicate`` (nothing written); with different
        content a ``conflict`` (nothing written). Either every accepted event is durable when
        this returns, or it raises and nothing was written.
        """

    def events(self, tenant_id: int) -> TenantEvents: ...

    # delivery
    def destinations(self, tenant_id: int) -> TenantDestinations: ...

    def due_destinations(self, now: int) -> list[Destination]:
        """Active destinations of every tenant whose next attempt is due (for the dispatcher,
        which then works through each one's tenant-scoped :meth:`destinations`)."""

    def all_destinations(self) -> list[Destination]:
        """Every destination of every tenant (for the delivery metrics)."""

    def release_leases(self, owner: str | None) -> int:
        """Drop the delivery leases ``owner`` holds (every lease with None: a store only one
        process can serve). Returns how many were dropped."""

    # the verifiable log
    def log(self, tenant_id: int) -> TenantLog: ...

    def add_checkpoint(
        self, tenant_id: int, sign: CheckpointSigner, *, force: bool = False
    ) -> tuple[StoredCheckpoint, bool]:
        """Sign the tenant's current head in one transaction unless the latest checkpoint
        already covers it (same size, same signing keys) and ``force`` is false.

        Returns the latest checkpoint and whether it was made now.
        """

    def signing_keys(self) -> list[SigningKeyRecord]: ...


class CheckpointSigner(Protocol):
    """Makes the signed note for a head: ``(size, root) -> (note, key ids)``.

    ``key_ids`` lists the signing keys' ids; when the latest checkpoint has the same size and
    the same key ids, nothing new is signed.
    """

    def key_ids(self) -> tuple[str, ...]: ...

    def __call__(self, size: int, root: bytes) -> bytes: ...
