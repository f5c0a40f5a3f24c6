"""The verifiable log, server side: signing keys, signed checkpoints, proofs.

* :class:`KeyRing`: the checkpoint signing keys of one data directory. The private keys are
  files ``<data_dir>/keys/<key id>.key`` (mode 0600) holding the C2SP signer key string; the
  public halves and their history are rows of ``signing_keys``. One key signs (``active``);
  after a rotation the previous key keeps co-signing (``retiring``) until it is retired, so
  that verifiers pinned to it see the new key vouched for by the old one.
* :class:`TransparencyLog`: signs checkpoints (C2SP tlog-checkpoint, origin
  ``<log_origin>/<tenant slug>``, one ``timestamp`` extension line), and builds inclusion and
  consistency proofs from the stored tree with one batched node read each.
* :class:`Checkpointer`: a thread that signs every tenant's checkpoint on an interval when
  its log grew.

Formats: docs/verification.md.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditkeep.errors import BadRequest, ConfigError, Conflict, NotFound
from auditkeep.integrity.checkpoint import (
    Checkpoint,
    KeyFormatError,
    Signer,
    Verifier,
    parse_signer,
    parse_verifier,
    sign_checkpoint,
)
from auditkeep.integrity.merkle import (
    CompactRange,
    consistency_proof,
    inclusion_proof,
    root_hash,
)
from auditkeep.model import format_timestamp, now_micros
from auditkeep.store.base import SigningKeyRecord, StoredCheckpoint, Tenant

if TYPE_CHECKING:
    from auditkeep.store import AnyStore

log = logging.getLogger("auditkeep.tlog")

KEYS_DIR = "keys"


def check_key_name(name: str) -> str:
    """``log_origin`` doubles as the signing key name: no whitespace, '+' or control chars."""
    try:
        Signer(name, bytes(32))
    except KeyFormatError:
        raise ConfigError(
            f"log_origin {name!r} is not usable as a checkpoint key name: use a non-empty "
            "name without spaces or '+', such as audit.example.com"
        ) from None
    return name


def key_id_hex(key_id: int) -> str:
    return f"{key_id:08x}"


class KeyRing:
    """The checkpoint signing keys of a data directory (see the module docstring)."""

    def __init__(self, store: AnyStore, data_dir: Path, key_name: str) -> None:
        self._store = store
        self.dir = Path(data_dir) / KEYS_DIR
        self.configured_name = key_name
        self._loaded: dict[str, Signer] = {}
        self._lock = threading.Lock()

    @property
    def key_name(self) -> str:
        """The log's identity: the name of the newest key, or the configured ``log_origin``
        before the first key exists. It never changes once a key was made (rotation keeps it):
        changing it would make every witness see a different log."""
        records = self.records()
        signing = [r for r in records if r.state != "retired"] or records
        return signing[0].name if signing else self.configured_name

    def records(self) -> list[SigningKeyRecord]:
        """Every key, signing ones first: active, retiring, then retired (newest first)."""
        return self._store.signing_keys()

    def _write_key_file(self, signer: Signer) -> Path:
        self.dir.mkdir(mode=0o700, exist_ok=True)
        path = self.dir / f"{key_id_hex(signer.key_id)}.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (signer.skey + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        return path

    def _new_key(self, *, rotate: bool) -> SigningKeyRecord | None:
        while True:
            signer = Signer(self.key_name, os.urandom(32))
            key_id = key_id_hex(signer.key_id)
            if not (self.dir / f"{key_id}.key").exists() and not any(
                r.key_id == key_id for r in self.records()
            ):
                break
        path = self._write_key_file(signer)
        record = SigningKeyRecord(
            key_id=key_id,
            name=signer.name,
            vkey=signer.verifier.vkey,
            state="active",
            created_at=now_micros(),
            retired_at=None,
        )
        try:
            added = self._store.add_signing_key(record, rotate=rotate)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if not added:  # another process made the first key meanwhile
            path.unlink(missing_ok=True)
            return None
        with self._lock:
            self._loaded[key_id] = signer
        log.info("created checkpoint signing key %s (%s)", key_id, record.vkey)
        return record

    def ensure_key(self) -> SigningKeyRecord | None:
        """Create the first signing key if there is none; return it if one was made."""
        if any(r.state == "active" for r in self.records()):
            return None
        return self._new_key(rotate=False)

    def rotate(self) -> SigningKeyRecord:
        """Make a new active key; the previous active key becomes ``retiring`` (co-signs)."""
        record = self._new_key(rotate=True)
        assert record is not None
        return record

    def retire(self) -> list[SigningKeyRecord]:
        """Retire every ``retiring`` key: it stops signing and its private key file is deleted."""
        retired = self._store.retire_signing_keys(now_micros())
        for record in retired:
            (self.dir / f"{record.key_id}.key").unlink(missing_ok=True)
            with self._lock:
                self._loaded.pop(record.key_id, None)
            log.info("retired checkpoint signing key %s", record.key_id)
        return retired

    def _load(self, record: SigningKeyRecord) -> Signer:
        with self._lock:
            cached = self._loaded.get(record.key_id)
        if cached is not None:
            return cached
        path = self.dir / f"{record.key_id}.key"
        try:
            mode = path.stat().st_mode
            text = path.read_text("ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read checkpoint signing key {record.key_id} from {path}: {exc}. Restore "
                "the file from a backup, or make a new key with `auditkeep log rotate-key`"
            ) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("signing key file %s is accessible by other users; chmod 600 it", path)
        try:
            signer = parse_signer(text)
        except KeyFormatError as exc:
            raise ConfigError(f"{path} does not hold a valid signer key: {exc}") from None
        if signer.verifier.vkey != record.vkey:
            raise ConfigError(
                f"{path} holds key {signer.verifier.vkey}, but the store lists {record.vkey}"
            )
        with self._lock:
            self._loaded[record.key_id] = signer
        return signer

    def signers(self) -> list[Signer]:
        """The keys that sign checkpoints now (active first), creating the first if needed."""
        records = [r for r in self.records() if r.state in ("active", "retiring")]
        if not any(r.state == "active" for r in records):
            self.ensure_key()
            records = [r for r in self.records() if r.state in ("active", "retiring")]
        return [self._load(r) for r in records]

    def verifiers(self, *, include_retired: bool = True) -> list[Verifier]:
        """Public keys from the store (by default also retired ones, for old checkpoints)."""
        return [
            parse_verifier(r.vkey)
            for r in self.records()
            if include_retired or r.state != "retired"
        ]


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
    ) -> dict[str, Any]:
        """RFC 9162 inclusion proof of one event (by id or seq) in the tree of ``tree_size``."""
        if (event_id is None) == (seq is None):
            raise BadRequest("give exactly one of id (an event id) or seq")
        tenant_log = self.store.log(tenant.tenant_id)
        if event_id is not None:
            found = self.store.events(tenant.tenant_id).get(event_id)
            if found is None:
                raise NotFound(f"no event with id {event_id[:128]!r} in tenant {tenant.slug!r}")
            seq, leaf = found.seq, found.leaf_hash
        else:
            assert seq is not None
            if seq < 1:
                raise BadRequest(f"seq must be at least 1, got {seq}")
            rows = self.store.events(tenant.tenant_id).after_seq(seq - 1, 1)
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
