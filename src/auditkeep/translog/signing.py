"""Signed checkpoints and proofs: the log as a service, over the store's Merkle trees.

* :class:`TransparencyLog`: signs checkpoints (C2SP tlog-checkpoint, origin
  ``<log_origin>/<tenant slug>``, one ``timestamp`` extension line) with the keys of a
  :class:`~auditkeep.translog.keys.KeyRing`, and builds inclusion and consistency proofs from
  the stored tree with one batched node read each.
* :class:`Checkpointer`: a thread that signs every tenant's checkpoint on an interval when
  its log grew.

Formats: docs/verification.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from auditkeep.errors import BadRequest, Conflict, NotFound
from auditkeep.integrity.checkpoint import Checkpoint, Signer, sign_checkpoint
from auditkeep.integrity.merkle import (
    CompactRange,
    consistency_proof,
    inclusion_proof,
    root_hash,
)
from auditkeep.model import format_timestamp
from auditkeep.store.base import StoredCheckpoint, Tenant, TenantEvents
from auditkeep.translog.keys import KeyRing, key_id_hex

if TYPE_CHECKING:
    from auditkeep.store import AnyStore

log = logging.getLogger("auditkeep.tlog")  # the name operators' log filters already know


@dataclass(frozen=True)
class _TenantSigner:
    """The CheckpointSigner handed to the store: signs ``origin``'s checkpoints."""

    origin: str
    signers: Sequence[Signer]

    def key_ids(self) -> tuple[str, ...]:
        return tuple(key_id_hex(s.key_id) for s in self.signers)

    def __call__(self, size: int, root: bytes) -> bytes:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        checkpoint = Checkpoint(self.origin, size, root, [f"timestamp {stamp}"])
        return sign_checkpoint(checkpoint, list(self.signers))


def split_note(note: bytes) -> tuple[str, str]:
    """A signed note's text (with its final newline) and signature block, unverified."""
    text = note.decode("utf-8")
    cut = text.rfind("\n\n")
    return text[: cut + 1], text[cut + 2 :]


def checkpoint_json(cp: StoredCheckpoint) -> dict[str, Any]:
    """The JSON form of a stored checkpoint (the note is what a verifier checks)."""
    body = Checkpoint.from_text(split_note(cp.note)[0])
    timestamp = next(
        (e.split(" ", 1)[1] for e in body.extensions if e.startswith("timestamp ")), None
    )
    return {
        "origin": body.origin,
        "size": cp.size,
        "root": cp.root.hex(),
        "timestamp": timestamp,
        "key_ids": list(cp.key_ids),
        "created_at": format_timestamp(cp.created_at),
        "note": cp.note.decode("utf-8"),
    }


class TransparencyLog:
    """Checkpoints and proofs over the store's per-tenant Merkle trees."""

    def __init__(self, store: AnyStore, keys: KeyRing) -> None:
        self.store = store
        self.keys = keys

    def origin(self, tenant_slug: str) -> str:
        """``<log name>/<tenant>``: the log name is the signing key's (see KeyRing.key_name)."""
        return f"{self.keys.key_name}/{tenant_slug}"

    def sign(self, tenant: Tenant, *, force: bool = False) -> tuple[StoredCheckpoint, bool]:
        """Sign the tenant's head unless the latest checkpoint already covers it."""
        signers = self.keys.signers()
        signer = _TenantSigner(f"{signers[0].name}/{tenant.slug}", signers)
        return self.store.add_checkpoint(tenant.tenant_id, signer, force=force)

    def sign_all(self) -> int:
        """Sign every tenant whose log grew (or whose signing keys changed); return how many."""
        made = 0
        for tenant in self.store.list_tenants():
            cp, new = self.sign(tenant)
            if new:
                made += 1
                log.debug("signed checkpoint %s size %d", self.origin(tenant.slug), cp.size)
        return made

    # -- reads -------------------------------------------------------------------------------

    def latest(self, tenant: Tenant) -> StoredCheckpoint:
        cp = self.store.log(tenant.tenant_id).latest_checkpoint()
        if cp is None:
            raise NotFound(
                f"tenant {tenant.slug!r} has no signed checkpoint yet; one is signed every "
                "checkpoint_interval seconds, or now with POST /v1/log/checkpoints"
            )
        return cp

    def _tree_size(self, tenant: Tenant, tree_size: int | None) -> tuple[int, int]:
        """(requested or latest-checkpoint tree size, current log size), checked."""
        size = self.store.log(tenant.tenant_id).head().size
        if tree_size is None:
            return self.latest(tenant).size, size
        if tree_size < 0:
            raise BadRequest(f"tree_size must not be negative, got {tree_size}")
        if tree_size > size:
            raise BadRequest(f"tree_size {tree_size} is larger than the log ({size} events)")
        return tree_size, size

    def inclusion(
        self,
        tenant: Tenant,
        *,
        event_id: str | None = None,
        seq: int | None = None,
        tree_size: int | None = None,
        events: TenantEvents | None = None,
    ) -> dict[str, Any]:
        """RFC 9162 inclusion proof of one event (by id or seq) in the tree of ``tree_size``.
        ``events``: the reader the event is looked up with (a viewer's scoped one: an event
        outside its scope is not found); by default the tenant's."""
        if (event_id is None) == (seq is None):
            raise BadRequest("give exactly one of id (an event id) or seq")
        tenant_log = self.store.log(tenant.tenant_id)
        if events is None:
            events = self.store.events(tenant.tenant_id)
        if event_id is not None:
            found = events.get(event_id)
            if found is None:
                raise NotFound(f"no event with id {event_id[:128]!r} in tenant {tenant.slug!r}")
            seq, leaf = found.seq, found.leaf_hash
        else:
            assert seq is not None
            if seq < 1:
                raise BadRequest(f"seq must be at least 1, got {seq}")
            rows = events.after_seq(seq - 1, 1)
            if not rows or rows[0].seq != seq:
                raise NotFound(f"tenant {tenant.slug!r} has no event with seq {seq}")
            leaf = rows[0].leaf_hash
            event_id = rows[0].to_json()["id"]
        size, _ = self._tree_size(tenant, tree_size)
        if seq > size:
            if tree_size is None:
                raise Conflict(
                    f"event seq {seq} is not covered by the latest checkpoint (size {size}) "
                    "yet; wait for the next checkpoint or POST /v1/log/checkpoints"
                )
            raise BadRequest(f"event seq {seq} is not in the tree of size {size}")
        proof = inclusion_proof(seq - 1, size, tenant_log)
        checkpoint = tenant_log.checkpoint(size)
        return {
            "id": event_id,
            "seq": seq,
            "leaf_index": seq - 1,
            "tree_size": size,
            "leaf_hash": leaf.hex(),
            "hashes": [h.hex() for h in proof],
            "root": root_hash(size, tenant_log).hex(),
            "checkpoint": checkpoint.note.decode("utf-8") if checkpoint else None,
        }

    def checkpoint_at(self, tenant: Tenant, size: int) -> StoredCheckpoint:
        """The signed checkpoint of exactly ``size`` events; NotFound (naming the nearest
        signed sizes) if none was signed at that size."""
        tenant_log = self.store.log(tenant.tenant_id)
        cp = tenant_log.checkpoint(size)
        if cp is not None:
            return cp
        latest = tenant_log.latest_checkpoint()
        if latest is None:
            raise NotFound(
                f"tenant {tenant.slug!r} has no signed checkpoint yet; one is signed every "
                "checkpoint_interval seconds, or now with POST /v1/log/checkpoints"
            )
        later = tenant_log.checkpoints(size, 1)
        hint = (
            f"the next one signed is at size {later[0].size}"
            if later
            else f"the latest is at size {latest.size}"
        )
        raise NotFound(
            f"no checkpoint of tenant {tenant.slug!r} was signed at size {size} ({hint}); "
            "checkpoints are signed only at some sizes: list them with GET /v1/log/checkpoints, "
            "and prove a size against a signed one with GET /v1/log/proof/consistency"
        )

    def consistency(self, tenant: Tenant, first: int, second: int | None) -> dict[str, Any]:
        """RFC 9162 consistency proof between tree sizes ``first`` <= ``second``."""
        second, _ = self._tree_size(tenant, second)
        if first < 0 or first > second:
            raise BadRequest(f"first must be between 0 and second ({second}), got {first}")
        proof = consistency_proof(first, second, self.store.log(tenant.tenant_id))
        return {"first": first, "second": second, "hashes": [h.hex() for h in proof]}

    def frontier(self, tenant: Tenant, tree_size: int | None) -> dict[str, Any]:
        """The perfect-subtree roots of the tree of ``tree_size`` (a compact range [0, size))."""
        size, _ = self._tree_size(tenant, tree_size)
        tree = CompactRange.from_reader(size, self.store.log(tenant.tenant_id))
        return {"tree_size": size, "hashes": [h.hex() for h in tree.hashes]}

    def public_keys(self, tenant: Tenant | None = None) -> dict[str, Any]:
        """The verifier keys; with ``tenant`` also that tenant's log origin."""
        origin = {"origin": self.origin(tenant.slug)} if tenant is not None else {}
        return {
            "key_name": self.keys.key_name,
            **origin,
            "keys": [
                {
                    "vkey": r.vkey,
                    "key_id": r.key_id,
                    "name": r.name,
                    "state": r.state,
                    "created_at": format_timestamp(r.created_at),
                    "retired_at": format_timestamp(r.retired_at) if r.retired_at else None,
                }
                for r in self.keys.records()
            ],
        }


class Checkpointer:
    """Signs every tenant's checkpoint every ``interval`` seconds when its log grew."""

    def __init__(self, tlog: TransparencyLog, interval: float) -> None:
        self._tlog = tlog
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name="auditkeep-checkpointer", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self._tlog.sign_all()
            except Exception:
                log.exception("signing checkpoints failed; retrying in %ss", self._interval)
            if self._stop.wait(self._interval):
                return

    def stop(self) -> None:
        """Stop the thread (it finishes a signing round in progress)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
