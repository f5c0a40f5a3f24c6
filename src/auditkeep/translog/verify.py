"""Check a tenant's log: every leaf hash recomputed, seqs gap-free, columns matching, and the
Merkle tree recomputed from the events and compared with the stored tree, the stored head and
every signed checkpoint.

The per-event checks (leaf hash, canonical form, tenant, occurred_at) are those of the
original hash-per-event verifier, with the same messages. The Merkle part is what proves that
nothing was removed, inserted, reordered or rewritten wholesale: docs/verification.md.

Speed: events are checked in chunks of :data:`CHUNK` consecutive seqs, in worker processes
when there are several chunks and ``jobs > 1``. A chunk's leaf hashes are reduced level by
level to the perfect subtrees it contains (:func:`subtree_levels`), the parent merges those
into the frontier of the whole tree (:class:`Frontier`), so the result is the same as
appending every leaf to one CompactRange.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import multiprocessing
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
import orjson

from auditkeep.integrity.checkpoint import (
    CheckpointError,
    NoteError,
    Verifier,
    verify_checkpoint,
)
from auditkeep.integrity.merkle import EMPTY_ROOT, CompactRange, NodeReader
from auditkeep.integrity.tiles import TILE_HEIGHT, TILE_WIDTH, nodes_in_tiles, tile_ranges
from auditkeep.model import (
    SERVER_FIELDS,
    canonical_json,
    format_timestamp,
    indexed_columns,
    leaf_hash,
    parse_timestamp,
)
from auditkeep.store.base import StoredEvent, Tenant
from auditkeep.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from auditkeep.store import AnyStore

CHUNK = 1 << 16
"""Seqs per work unit: a multiple of a large power of two, so chunks of a whole log are
aligned and every node up to level 16 lies inside one chunk."""

MAX_REPEATS = 20
"""Problems of one kind listed per tenant before they are summarised."""

_sha256 = hashlib.sha256


@dataclass
class VerifyReport:
    tenant: str
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was checked, for the human output
    root: bytes | None = None
    checkpoints_checked: int = 0
    latest_checkpoint: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


# -- per-event content checks ------------------------------------------------------------------

_MAX_SAFE_INT = 2**53 - 1


def _plain(value: Any) -> bool:
    """No float and no integer beyond 2^53 anywhere in ``value`` (strings are skipped fast)."""
    kind = type(value)
    if kind is dict:
        return all(type(v) is str or _plain(v) for v in value.values())
    if kind is list:
        return all(type(v) is str or _plain(v) for v in value)
    if kind is float:
        return False
    if kind is int:
        return bool(-_MAX_SAFE_INT <= value <= _MAX_SAFE_INT)
    return True


def _bmp_keys(value: Any) -> bool:
    """No object key outside the Basic Multilingual Plane (their order differs in UTF-16)."""
    if type(value) is dict:
        return all(all(ord(c) <= 0xFFFF for c in k) and _bmp_keys(v) for k, v in value.items())
    if type(value) is list:
        return all(_bmp_keys(v) for v in value)
    return True


def is_canonical(value: Any, raw: bytes) -> bool:
    """Whether ``raw`` is exactly the RFC 8785 canonical JSON of ``value`` (parsed from it).

    Fast and exact: orjson's sorted compact output equals RFC 8785 unless the value holds a
    float, an integer beyond 2^53 or a key outside the BMP. So when ``raw`` equals orjson's
    output, only those need ruling out (ASCII bytes cannot hold such a key); otherwise, or
    when one is present, the pure RFC 8785 encoder decides.
    """
    try:
        fast = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        fast = b""
    if fast == raw and _plain(value) and (raw.isascii() or _bmp_keys(value)):
        return True
    return canonical_json(value) == raw


class _FloatSeen(Exception):
    pass


def _no_float(text: str) -> Any:
    raise _FloatSeen


_DECODE = msgspec.json.Decoder(float_hook=_no_float).decode
_ENCODE_SORTED = msgspec.json.Encoder(order="sorted").encode
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else b for b in range(256))
_SIXTEEN_DIGITS = b"0" * 16  # 2^53 - 1 has 16 digits: every shorter integer is in range
_BELOW_ASTRAL = bytes(range(0xF0))  # UTF-8 lead bytes of characters above U+FFFF are >= F0
_MAX_NESTING = 1024  # orjson rejects deeper documents as invalid JSON


def canonical_object(raw: bytes) -> dict[str, Any] | None:
    """The JSON object in ``raw`` when ``raw`` is certainly its RFC 8785 canonical form;
    None when the exact check must decide (:func:`check_content` then says what is wrong).

    The fast path of the content checks, built on the same fact as
    ``auditkeep_client.schema.canonical_json``: a compiled sorted-key encoder writes RFC 8785
    exactly unless the value holds a float, an integer beyond 2^53 or a key above U+FFFF. The
    parser rejects floats as it meets them; the bytes rule out 16-digit runs, characters above
    U+FFFF and documents that might nest deeper than orjson parses; what is left must
    re-encode to ``raw`` byte for byte, which also rules out whitespace, duplicate keys,
    unsorted keys and any other spelling. It never accepts what the exact path (orjson parse,
    then :func:`is_canonical`, whose fallback is ``model.canonical_json``) rejects: the tests
    hold the two to the same verdicts.
    """
    if _SIXTEEN_DIGITS in raw.translate(_DIGITS_AS_ZERO):
        return None
    if not raw.isascii() and raw.translate(None, _BELOW_ASTRAL):
        return None
    if raw.count(b"[") + raw.count(b"{") > _MAX_NESTING:  # orjson's limit, not Python's
        return None
    try:
        value = _DECODE(raw)
    except Exception:  # malformed, a float, nesting beyond Python's recursion limit
        return None
    if type(value) is not dict or _ENCODE_SORTED(value) != raw:
        return None
    return value


def check_leaves(tenant: str, seqs: Iterable[int], leaves: Iterable[bytes]) -> list[str]:
    """:func:`check_content` (without the occurred_at column) of many events."""
    problems: list[str] = []
    for seq, raw in zip(seqs, leaves, strict=True):
        leaf = canonical_object(raw)
        if leaf is None or leaf.get("tenant") != tenant:
            problems += _check_leaf(tenant, seq, None, raw)[0]
    return problems


def check_content(tenant: str, seq: int, occurred_at: int | None, data_bytes: bytes) -> list[str]:
    """Content checks of one event's leaf data: valid JSON, canonical form, the tenant, and
    (when given) the indexed ``occurred_at`` column."""
    return _check_leaf(tenant, seq, occurred_at, data_bytes)[0]


def _check_leaf(
    tenant: str, seq: int, occurred_at: int | None, data_bytes: bytes
) -> tuple[list[str], dict[str, Any] | None]:
    """:func:`check_content`, and the parsed leaf data when it is a JSON object."""
    try:
        data: Any = orjson.loads(data_bytes)
    except orjson.JSONDecodeError:
        return [f"seq {seq}: leaf data is not valid JSON"], None
    problems = []
    if not is_canonical(data, data_bytes):
        problems.append(f"seq {seq}: leaf data is not in canonical form")
    if not isinstance(data, dict):
        return [*problems, f"seq {seq}: leaf data is not a JSON object"], None
    if data.get("tenant") != tenant:
        problems.append(
            f"seq {seq}: event belongs to tenant {data.get('tenant')!r}, found in {tenant!r}"
        )
    if occurred_at is not None:
        text = data.get("occurred_at")
        try:
            if not isinstance(text, str):
                raise TypeError
            if text != format_timestamp(occurred_at) and parse_timestamp(text) != occurred_at:
                problems.append(f"seq {seq}: the indexed occurred_at differs from the event's")
        except (TypeError, ValueError, OverflowError):
            problems.append(f"seq {seq}: occurred_at is missing or malformed")
    return problems, data


# -- the indexed columns and rows beside the leaf data ---------------------------------------------

EVENT_COLUMNS = ("id", "action", "category", "outcome", "actor_id", "occurred_at", "received_at")
"""The columns of ``events`` derived from the leaf data (selected in this order). With the
``event_targets`` rows (and on PostgreSQL ``event_ids``) they are what searches, lookups by id
and idempotency read instead of the leaf data, so an edit there changes answers while every
hash still verifies: each is recomputed from the leaf data and compared."""

_BYTEA = frozenset({"actor_id", "target_id"})  # UTF-8 in bytea on PostgreSQL (NUL allowed)

_EFFECT = {
    "id": "lookups by id and retries with this id go wrong",
    "occurred_at": "time-window searches and their order go wrong",
    "received_at": "the row is filed under the wrong receive time",
}


def _as_stored(value: Any, column: str, postgres: bool) -> Any:
    if postgres and column in _BYTEA and isinstance(value, str):
        return value.encode("utf-8")
    return value


def _same(stored: Any, expected: Any) -> bool:
    """Equal in value and type: SQLite compares a TEXT search term with a BLOB as different,
    so an edit that stored the right characters as the wrong type still changes answers."""
    if isinstance(stored, memoryview):
        stored = bytes(stored)
    return type(stored) is type(expected) and bool(stored == expected)


def _show(value: Any, column: str = "") -> str:
    if isinstance(value, memoryview):
        value = bytes(value)
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return f"bytes {value.hex()[:32]}"
    if column.endswith("_at") and type(value) is int:
        try:
            return format_timestamp(value)
        except (ValueError, OverflowError):
            pass
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"


def expected_rows(
    seq: int, leaf: dict[str, Any], postgres: bool
) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """The ``events`` columns (:data:`EVENT_COLUMNS`) and the ``event_targets`` rows
    ``(seq, type, id, occurred_at[, received_at])``, in primary key order, that a store writes
    for an event with this leaf data, as the store returns them (PostgreSQL keeps actor and
    target ids as UTF-8 bytea, and gives target rows the event's received_at, its partition
    key). Raises KeyError, TypeError, ValueError or AttributeError for leaf data that lacks a
    field."""
    want = indexed_columns(leaf)
    columns: tuple[Any, ...]
    pairs: list[tuple[str, Any]]
    if postgres:
        columns = (*want[:4], want.actor_id.encode("utf-8"), *want[5:7])
        times: tuple[int, ...] = (want.occurred_at, want.received_at)
        pairs = sorted((t, i.encode("utf-8")) for t, i in want.targets)
    else:
        columns, times, pairs = want[:7], (want.occurred_at,), sorted(want.targets)
    # (str and UTF-8 bytes sort alike: by code point, as SQLite's BINARY and PostgreSQL's
    # "C" collation and bytea order them)
    return columns, [(seq, t, i, *times) for t, i in pairs]


def check_columns(
    seq: int,
    leaf: dict[str, Any],
    stored: Sequence[Any],
    targets: Sequence[Sequence[Any]],
    *,
    postgres: bool = False,
) -> list[str]:
    """Compare an event's stored :data:`EVENT_COLUMNS` and its ``event_targets`` rows
    ``(type, id, occurred_at[, received_at])`` with those derived from its leaf data."""
    try:
        want = indexed_columns(leaf)
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
        return [
            f"seq {seq}: the leaf data lacks a field the indexed columns are made from, so "
            "they cannot be checked"
        ]
    times = (want.occurred_at, want.received_at) if postgres else (want.occurred_at,)
    problems = []
    for column, got in zip(EVENT_COLUMNS, stored, strict=True):
        expected = _as_stored(getattr(want, column), column, postgres)
        if not _same(got, expected):
            effect = _EFFECT.get(column, f"searches by {column} miss it or find it wrongly")
            problems.append(
                f"seq {seq}: the indexed {column} differs from the event's: the column holds "
                f"{_show(got, column)}, the event says {_show(expected, column)} ({effect})"
            )
    wanted_rows: dict[tuple[Any, Any], tuple[int, ...]] = {
        (ttype, _as_stored(tid, "target_id", postgres)): times for ttype, tid in want.targets
    }
    for row in targets:
        ttype, tid, *row_times = (bytes(v) if isinstance(v, memoryview) else v for v in row)
        key = (ttype, tid)
        wanted = wanted_rows.pop(key, None)
        what = f"(type {_show(ttype)}, id {_show(tid)})"
        if wanted is None:
            problems.append(
                f"seq {seq}: event_targets has a row for target {what}, which the event does "
                "not name (the row was added or edited: searches by that target find it wrongly)"
            )
        elif not all(_same(g, w) for g, w in zip(row_times, wanted, strict=True)):
            names = ("occurred_at", "received_at")[: len(row_times)]
            problems.append(
                f"seq {seq}: the event_targets row for target {what} has "
                + ", ".join(f"{n} {_show(g, n)}" for n, g in zip(names, row_times, strict=True))
                + "; the event's is "
                + ", ".join(f"{_show(w, n)}" for n, w in zip(names, wanted, strict=True))
                + " (the row was edited: time-window searches by target go wrong)"
            )
    for ttype, tid in wanted_rows:
        problems.append(
            f"seq {seq}: event_targets has no row for the event's target (type {_show(ttype)}, "
            f"id {_show(tid)}) (the row was removed or edited: searches by that target miss it)"
        )
    return problems


def _blob(value: Any) -> bytes:
    """A BLOB column as bytes; an edit with SQL text functions may have left TEXT there."""
    if isinstance(value, str):
        return value.encode("utf-8", errors="surrogateescape")
    if value is None:
        return b""
    return bytes(value)


def _leaf_hash_problem(seq: int, stored: bytes, actual: bytes) -> str:
    return (
        f"seq {seq}: leaf hash mismatch: stored {stored.hex()[:16]}…, "
        f"recomputed from the event {actual.hex()[:16]}… (the event was altered)"
    )


def check_events(tenant: str, events: Iterable[StoredEvent], expected_size: int) -> VerifyReport:
    """Verify stored events in seq order against their leaf hashes and the log size.

    The hash-per-event check alone (no Merkle tree); :func:`verify_store_log` does both.
    """
    report = VerifyReport(tenant)
    expected_seq = 1
    for ev in events:
        if ev.seq != expected_seq:
            if ev.seq > expected_seq:
                report.problems.append(_gap_message(expected_seq, ev.seq))
            else:
                report.problems.append(f"seq {ev.seq}: out of order after {expected_seq - 1}")
        expected_seq = ev.seq + 1
        report.checked += 1
        actual = leaf_hash(ev.leaf_data)
        if actual != ev.leaf_hash:
            report.problems.append(_leaf_hash_problem(ev.seq, ev.leaf_hash, actual))
        report.problems += check_content(tenant, ev.seq, ev.occurred_at, ev.leaf_data)
    if expected_seq - 1 != expected_size:
        report.problems.append(_head_message(expected_size, expected_seq - 1))
    return report


def _gap_message(expected: int, found: int) -> str:
    return f"seq {expected}..{found - 1}: missing (the log jumps from {expected - 1} to {found})"


def _head_message(head: int, last: int) -> str:
    return f"the log head says {head} events but the last stored seq is {last}"


def check_http_event(tenant: str, event: dict[str, Any]) -> list[str]:
    """Check one event as served over HTTP: recompute its leaf hash from its fields."""
    body = {k: v for k, v in event.items() if k not in ("seq", "hash")}
    data = canonical_json(body)
    problems = []
    if leaf_hash(data).hex() != event.get("hash"):
        problems.append(f"seq {event.get('seq')}: leaf hash does not match the event's content")
    if body.get("tenant") != tenant:
        problems.append(f"seq {event.get('seq')}: belongs to tenant {body.get('tenant')!r}")
    return problems


def seq_gaps(seqs: Iterable[int]) -> list[str]:
    """Describe gaps in a set of seqs that should be exactly 1..N."""
    ordered = sorted(seqs)
    problems = []
    expected = 1
    for seq in ordered:
        if seq > expected:
            problems.append(f"seq {expected}..{seq - 1}: missing")
        elif seq < expected:
            problems.append(f"seq {seq}: appears twice")
        expected = seq + 1
    return problems


# -- Merkle recomputation in chunks -------------------------------------------------------------

Subtree = tuple[int, bytes]
"""A perfect subtree as ``(level, hash)``; its position is implied by where it is used."""


def hash_leaves(leaves: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 leaf hashes of many leaves."""
    return [_sha256(b"\x00" + d).digest() for d in leaves]


def subtree_levels(start: int, leaf_hashes: list[bytes]) -> list[tuple[int, list[bytes]]]:
    """Every perfect subtree inside the leaves ``[start, start + len)``, level by level.

    Entry ``L`` is ``(first, hashes)``: the hashes of the nodes ``(L, first)``,
    ``(L, first + 1)``, ... that lie entirely inside the range.
    """
    levels = []
    first, current = start, leaf_hashes
    while current:
        levels.append((first, current))
        skip = first & 1  # the first node's sibling lies before the range
        end = len(current) - ((first + len(current)) & 1)  # so does the last one's after it
        pairs = current[skip:end]
        current = [
            _sha256(b"\x01" + a + b).digest() for a, b in zip(pairs[0::2], pairs[1::2], strict=True)
        ]
        first = (first + skip) >> 1
    return levels


def decompose(levels: list[tuple[int, list[bytes]]], lo: int, hi: int) -> list[Subtree]:
    """The aligned perfect subtrees covering leaves ``[lo, hi)``, left to right.

    Appended in order to the frontier of ``[0, lo)`` they give the frontier of ``[0, hi)``.
    ``[lo, hi)`` must lie inside the range ``levels`` was built from.
    """
    out = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        if lo:
            level = min(level, (lo & -lo).bit_length() - 1)
        first, hashes = levels[level]
        out.append((level, hashes[(lo >> level) - first]))
        lo += 1 << level
    return out


class Frontier:
    """The frontier of ``[0, size)`` (one perfect subtree per set bit, largest first) that can
    also take whole aligned perfect subtrees, as chunks deliver them."""

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a tree of size {size} has {size.bit_count()} frontier hashes, got {len(hashes)}"
            )
        self.size = size
        levels = [b for b in range(size.bit_length() - 1, -1, -1) if size >> b & 1]
        self.hashes: list[Subtree] = list(zip(levels, hashes, strict=True))

    def copy(self) -> Frontier:
        other = Frontier()
        other.size, other.hashes = self.size, list(self.hashes)
        return other

    def append(
        self, level: int, h: bytes, created: list[tuple[int, int, bytes]] | None = None
    ) -> None:
        """Append the perfect subtree of ``2**level`` leaves starting at ``size``."""
        if self.size & ((1 << level) - 1):
            raise ValueError(f"a subtree of level {level} cannot start at leaf {self.size}")
        self.size += 1 << level
        index = (self.size >> level) - 1
        while index & 1:
            h = _sha256(b"\x01" + self.hashes.pop()[1] + h).digest()
            level += 1
            index >>= 1
            if created is not None:
                created.append((level, index, h))
        self.hashes.append((level, h))

    def extend(self, subtrees: Iterable[Subtree]) -> Frontier:
        for level, h in subtrees:
            self.append(level, h)
        return self

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        h = self.hashes[-1][1]
        for _, left in reversed(self.hashes[:-1]):
            h = _sha256(b"\x01" + left + h).digest()
        return h

    def to_bytes(self) -> bytes:
        """Same encoding as :meth:`CompactRange.to_bytes`."""
        return self.size.to_bytes(8, "big") + b"".join(h for _, h in self.hashes)


T = TypeVar("T")
R = TypeVar("R")


def run_chunks(fn: Callable[[T], R], tasks: Sequence[T], jobs: int) -> Iterator[R]:
    """``map(fn, tasks)`` in order, in ``jobs`` worker processes when it is worth it."""
    if jobs <= 1 or len(tasks) <= 1:
        yield from map(fn, tasks)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=context) as pool:
        yield from pool.map(fn, tasks)


def default_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


# -- checkpoints ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedCheckpoint:
    """A checkpoint whose signature and origin verified."""

    size: int
    root: bytes
    label: str  # e.g. "checkpoint at size 10 (2026-11-23T10:00:00Z, key 03df68e6)"
    timestamp: str | None
    key_ids: tuple[str, ...]
    note: bytes


def open_checkpoint(
    note: bytes, verifiers: Sequence[Verifier], origin: str, where: str
) -> tuple[CheckedCheckpoint | None, str | None]:
    """Verify a checkpoint note; return it, or ``None`` and a problem message."""
    try:
        cp = verify_checkpoint(note, list(verifiers), origin)
    except (NoteError, CheckpointError) as exc:
        return None, f"{where}: {exc}"
    timestamp = next((e[10:] for e in cp.extensions if e.startswith("timestamp ")), None)
    key_ids = tuple(_signed_key_ids(note, verifiers))
    when = f"{timestamp}, " if timestamp else ""
    label = f"checkpoint at size {cp.size} ({when}key {', '.join(key_ids)})"
    return CheckedCheckpoint(cp.size, cp.root_hash, label, timestamp, key_ids, note), None


def _signed_key_ids(note: bytes, verifiers: Sequence[Verifier]) -> Iterator[str]:
    known = {(v.name, v.key_id) for v in verifiers}
    text = note.decode("utf-8")
    for line in text[text.rfind("\n\n") + 2 :].splitlines():
        try:
            name, encoded = line[2:].rsplit(" ", 1)
            key_id = int.from_bytes(base64.b64decode(encoded)[:4], "big")
        except (ValueError, binascii.Error):
            continue
        if (name, key_id) in known:
            yield f"{key_id:08x}"


def root_mismatch(cp: CheckedCheckpoint, recomputed: bytes, source: str) -> str:
    return (
        f"{cp.label}: the Merkle root of events 1..{cp.size} recomputed from {source} is "
        f"{recomputed.hex()[:16]}…, the signed root is {cp.root.hex()[:16]}… (events "
        f"1..{cp.size} were altered, removed, inserted or reordered after it was signed)"
    )


# -- a data directory ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _StoreTask:
    locator: str  # the SQLite file, or the PostgreSQL URL when ``postgres``
    postgres: bool
    tenant_id: int
    tenant: str
    lo: int  # first seq
    hi: int  # last seq (inclusive)
    content: bool
    snapshot_sizes: tuple[int, ...]
    last: bool = False  # the last chunk: also takes event_targets rows beyond every seq
    #: PostgreSQL, first chunk: ``(last seq, events)`` of the log, to find event_ids rows
    #: that belong to no event
    ids_check: tuple[int, int] | None = None


@dataclass
class _ChunkResult:
    lo: int
    first: int | None = None  # first and last seq read
    last: int | None = None
    count: int = 0  # events read
    contiguous: int = 0  # events from seq lo on without a gap: the leaves of the tree
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (first missing, next present)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (kind, message)
    subtrees: list[Subtree] = field(default_factory=list)
    snapshots: dict[int, list[Subtree]] = field(default_factory=dict)
    tree_ok: bool = True  # every event matched the stored tree leaf at its seq


def _check_store_chunk(task: _StoreTask) -> _ChunkResult:
    """Check seqs ``task.lo..task.hi`` of one tenant (runs in a worker process).

    Fast path: when the seqs are exactly lo..hi and the joined leaf hashes equal both the
    joined stored hashes and the joined tree leaves (one bytes comparison each), no per-event
    loop runs; otherwise :func:`_find_leaf_problems` names every difference.
    """
    out = _ChunkResult(task.lo)
    # one snapshot for every query below, while the server writes
    conn = _ChunkDB(task.locator, postgres=task.postgres)
    try:
        where = "FROM events WHERE tenant_id = ? AND seq BETWEEN ? AND ?"
        span = (task.tenant_id, task.lo, task.hi)
        count, first, last, stored_joined = conn.execute(
            f"SELECT count(*), min(seq), max(seq), {conn.concat('leaf_hash', 'seq')} {where}",
            span,
        )[0]
        out.count, out.first, out.last = count, first, last
        # only what the checks need reaches Python: leaf data, and for content checks the
        # seq and the indexed columns
        columns = f"seq, {', '.join(EVENT_COLUMNS)}, leaf_data" if task.content else "leaf_data"
        rows = conn.execute(f"SELECT {columns} {where} ORDER BY seq", span)
        datas = [r[-1] for r in rows]
        try:
            hashes = hash_leaves(datas)
        except TypeError:  # TEXT where a BLOB belongs
            datas = [_blob(d) for d in datas]
            hashes = hash_leaves(datas)
        joined = b"".join(hashes)
        leaf_range = (task.tenant_id, 0, task.lo - 1, task.hi)
        fast = (
            count > 0
            and first == task.lo
            and last == task.lo + count - 1  # seqs are unique: lo..last without a gap
            and stored_joined == joined
            and _nodes_equal(conn, leaf_range, task.lo - 1, joined)
        )
        if fast:
            out.contiguous = count
        else:
            full = conn.execute(
                f"SELECT seq, occurred_at, leaf_hash, leaf_data {where} ORDER BY seq", span
            )
            tree_leaves = _stored_nodes(conn, leaf_range)
            _find_leaf_problems(full, hashes, tree_leaves, task, out)
        if task.content:
            _check_indexed(conn, task, rows, datas, out)
        leaves = hashes[: out.contiguous]
        start = task.lo - 1
        levels = subtree_levels(start, leaves)
        if out.tree_ok and not out.gaps and leaves:
            _compare_interior_nodes(conn, task, levels, out)
        end = start + len(leaves)
        out.subtrees = decompose(levels, start, end)
        for size in task.snapshot_sizes:
            if start < size <= end:
                out.snapshots[size] = decompose(levels, start, size)
    finally:
        conn.close()
    return out


def _check_indexed(
    conn: _ChunkDB, task: _StoreTask, rows: list[Any], datas: list[bytes], out: _ChunkResult
) -> None:
    """Content checks of each event, and everything stored beside its leaf data for searches
    and idempotency, recomputed from the leaf data: :data:`EVENT_COLUMNS`, the event_targets
    rows (also rows for seqs that hold no event), and on PostgreSQL the event_ids rows."""
    times = "occurred_at, received_at" if task.postgres else "occurred_at"
    target_rows: list[tuple[Any, ...]] = conn.execute(  # tuples, on both stores
        f"SELECT seq, target_type, target_id, {times} FROM event_targets "
        "WHERE tenant_id = ? AND seq BETWEEN ? AND ? ORDER BY seq, target_type, target_id",
        (task.tenant_id, task.lo, task.hi),
    )
    # rows before the first seq or beyond the last: those of no event (in this snapshot: a
    # server may be appending events, with their rows, beyond the range being checked)
    outside = ([("<", task.lo)] if task.lo == 1 else []) + ([(">", task.hi)] if task.last else [])
    for op, bound in outside:
        for seq, count in conn.execute(
            f"SELECT t.seq, count(*) FROM event_targets t WHERE t.tenant_id = ? AND t.seq {op} ? "
            "AND NOT EXISTS (SELECT 1 FROM events e WHERE e.tenant_id = t.tenant_id "
            "AND e.seq = t.seq) GROUP BY t.seq ORDER BY t.seq LIMIT ?",
            (task.tenant_id, bound, MAX_REPEATS + 1),
        ):
            out.problems.append(("column", _orphan_targets(int(seq), int(count))))
    leaves = []
    stored: list[tuple[Any, ...]] = []
    expected: list[tuple[Any, ...]] = []
    expected_targets: list[tuple[Any, ...]] = []
    for row, data in zip(rows, datas, strict=True):
        seq = int(row[0])
        leaf = canonical_object(data)
        if leaf is None or leaf.get("tenant") != task.tenant:
            problems, leaf = _check_leaf(task.tenant, seq, None, data)
            out.problems += [("content", p) for p in problems]
            if leaf is None:
                continue
        leaves.append((seq, leaf))
        try:
            columns, its_targets = expected_rows(seq, leaf, task.postgres)
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
            columns, its_targets = (), []  # (check_columns says why)
        stored.append(row[1:-1])
        expected.append(columns)
        expected_targets += its_targets
    # the fast path: the whole chunk in two comparisons (exact: these columns hold one type
    # each, SQLite stores an integral REAL as INTEGER in them, and str never equals bytes)
    if stored != expected or target_rows != expected_targets:
        _name_column_problems(task, rows, leaves, target_rows, out)
    if task.postgres:
        _check_event_ids(conn, task, leaves, out)


def _name_column_problems(
    task: _StoreTask,
    rows: list[Any],
    leaves: list[tuple[int, dict[str, Any]]],
    target_rows: list[tuple[Any, ...]],
    out: _ChunkResult,
) -> None:
    """The slow path, when something differs: a message for each event that differs."""
    targets: dict[int, list[Any]] = {}
    for seq, *row in target_rows:
        targets.setdefault(int(seq), []).append(row)
    stored = {int(row[0]): row[1:-1] for row in rows}
    for seq, leaf in leaves:
        found = check_columns(seq, leaf, stored[seq], targets.pop(seq, []), postgres=task.postgres)
        out.problems += [("column", p) for p in found]
    for seq in stored.keys() - dict(leaves).keys():
        targets.pop(seq, None)  # an event whose leaf data is not JSON: reported already
    for seq, orphans in sorted(targets.items()):
        out.problems.append(("column", _orphan_targets(seq, len(orphans))))


def _orphan_targets(seq: int, count: int) -> str:
    return (
        f"seq {seq}: event_targets has {count} row(s) for it, but the log holds no event with "
        "this seq (rows were added or moved: searches by target go wrong)"
    )


def _check_event_ids(
    conn: _ChunkDB, task: _StoreTask, leaves: list[tuple[int, dict[str, Any]]], out: _ChunkResult
) -> None:
    """PostgreSQL decides idempotency and finds events by id through ``event_ids`` (id, seq,
    SHA-256 of the client's content): each event's row must be there and match."""
    ids = [leaf["id"] for _, leaf in leaves if isinstance(leaf.get("id"), str)]
    found = {
        str(i): (int(seq), bytes(h))
        for i, seq, h in conn.execute(
            "SELECT id, seq, content_hash FROM event_ids WHERE tenant_id = ? AND id = ANY(?)",
            (task.tenant_id, ids),
        )
    }
    for seq, leaf in leaves:
        event_id = leaf.get("id")
        if not isinstance(event_id, str):
            continue
        got = found.get(event_id)
        shown = _show(event_id)
        if got is None:
            problem = (
                f"seq {seq}: event_ids has no row for the event's id {shown} (it was removed or "
                "edited: a retry with this id would be stored twice, a lookup by id misses it)"
            )
        elif got[0] != seq:
            problem = (
                f"seq {seq}: event_ids maps the event's id {shown} to seq {got[0]} (the row was "
                "edited: a lookup by id, and a retry with this id, answer with the wrong event)"
            )
        else:
            content = canonical_json({k: v for k, v in leaf.items() if k not in SERVER_FIELDS})
            if _sha256(content).digest() == got[1]:
                continue
            problem = (
                f"seq {seq}: event_ids holds another content hash for the event's id {shown} "
                "(the row was edited: a retry of this very event would be refused as a conflict)"
            )
        out.problems.append(("column", problem))
    if task.ids_check is None:
        return
    last_seq, events = task.ids_check
    (count,) = conn.execute(
        "SELECT count(*) FROM event_ids WHERE tenant_id = ? AND seq <= ?",
        (task.tenant_id, last_seq),
    )[0]
    if count <= events:
        return  # each event's own row was checked above: no room for another
    for event_id, seq in conn.execute(
        "SELECT i.id, i.seq FROM event_ids i WHERE i.tenant_id = ? AND i.seq <= ? AND NOT "
        "EXISTS (SELECT 1 FROM events e WHERE e.tenant_id = i.tenant_id AND e.seq = i.seq "
        "AND e.id = i.id) ORDER BY i.seq LIMIT ?",
        (task.tenant_id, last_seq, MAX_REPEATS + 1),
    ):
        out.problems.append(
            (
                "column",
                f"event_ids has a row for id {_show(event_id)} pointing at seq {seq}, which holds "
                "another event or none (the row was added or edited: a new event with this id "
                "would be taken for a retry and not stored)",
            )
        )


class _ChunkDB:
    """A worker's read-only connection to the store, in one read transaction (one snapshot):
    the SQLite file, or the PostgreSQL database of a URL. Queries are written for SQLite
    (``?`` parameters); only the concatenation of blobs differs."""

    def __init__(self, locator: str, *, postgres: bool) -> None:
        self.postgres = postgres
        self._pg: Any = None
        self._sqlite: sqlite3.Connection | None = None
        if postgres:
            from auditkeep.store.postgres import connect_snapshot

            self._pg = connect_snapshot(locator)
        else:
            self._sqlite = sqlite3.connect(
                f"file:{locator}?mode=ro", uri=True, isolation_level=None
            )
            try:
                self._sqlite.execute("BEGIN")
            except BaseException:
                self._sqlite.close()
                raise

    def concat(self, column: str, order: str) -> str:
        """SQL for the concatenation of a blob column over the rows, in ``order``."""
        if self.postgres:
            return f"string_agg({column}, ''::bytea ORDER BY {order})"
        return f"CAST(group_concat({column}, '') AS BLOB)"

    def execute(self, query: str, params: Sequence[Any]) -> list[Any]:
        if self._sqlite is not None:
            return self._sqlite.execute(query, params).fetchall()
        rows: list[Any] = self._pg.execute(query.replace("?", "%s"), params).fetchall()
        return rows

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._pg is not None:
            self._pg.close()


_TILE_RANGE = (
    "SELECT idx, hashes FROM merkle_tiles WHERE tenant_id = ? AND level = ? AND idx >= ?"
    " AND idx <= ? ORDER BY idx"
)


def _tile_rows(conn: _ChunkDB, where: tuple[int, int, int, int]) -> tuple[int, list[Any]]:
    """The tile level and the ``(idx, hashes)`` rows of the tiles holding the nodes in
    ``where`` = ``(tenant, level, lo, hi)``."""
    tenant_id, level, lo, hi = where
    tile_level, first, last = tile_ranges(level, lo, hi)
    return tile_level, conn.execute(_TILE_RANGE, (tenant_id, tile_level, first, last))


def _nodes_equal(
    conn: _ChunkDB, where: tuple[int, int, int, int], first: int, joined: bytes
) -> bool:
    """Whether the stored nodes in ``where`` (a level the tiles hold: 0, 8, 16, ...) are
    exactly ``joined`` (32 bytes each) from index ``first`` on: the tiles are concatenated
    and sliced, so no node reaches Python on its own."""
    _, level, lo, hi = where
    if lo >= hi or level % TILE_HEIGHT:
        return False
    _, rows = _tile_rows(conn, where)
    start = lo // TILE_WIDTH
    if [int(r[0]) for r in rows] != list(range(start, start + len(rows))):
        return False
    tiles = [_blob(h) for _, h in rows]
    if any(len(t) != TILE_WIDTH * 32 for t in tiles[:-1]):
        return False
    blob = b"".join(tiles)
    offset = (lo - start * TILE_WIDTH) * 32
    stored = blob[offset : (hi - start * TILE_WIDTH) * 32]  # the nodes lo..hi-1 stored
    return bool(lo == first and stored == joined)


def _stored_nodes(conn: _ChunkDB, where: tuple[int, int, int, int]) -> dict[int, bytes]:
    """The stored nodes in ``where`` = ``(tenant, level, lo, hi)``, by idx, from the tiles."""
    _, level, lo, hi = where
    if lo >= hi:
        return {}
    tile_level, rows = _tile_rows(conn, where)
    tiles = {(tile_level, int(i)): _blob(h) for i, h in rows}
    return nodes_in_tiles(tiles, level, lo, hi)


def _joined(values: Iterable[Any]) -> bytes | None:
    try:
        return b"".join(values)
    except TypeError:
        return None


def _find_leaf_problems(
    rows: list[Any],
    hashes: list[bytes],
    tree_leaves: dict[int, bytes],
    task: _StoreTask,
    out: _ChunkResult,
) -> None:
    """The per-event comparisons, with a message for each difference."""
    committed_at: dict[bytes, int] | None = None
    in_run = rows[0][0] == task.lo if rows else False
    last: int | None = None
    for (seq, _, stored, _), actual in zip(rows, hashes, strict=True):
        if last is not None and seq != last + 1:
            out.gaps.append((last + 1, seq))
            in_run = False
        last = seq
        out.contiguous += in_run
        stored = _blob(stored)
        if actual != stored:
            out.problems.append(("leaf", _leaf_hash_problem(seq, stored, actual)))
        tree_leaf = tree_leaves.get(seq - 1)
        if tree_leaf is None:
            out.tree_ok = False
            out.problems.append(
                ("tree", f"seq {seq}: the Merkle tree has no leaf for it (index {seq - 1})")
            )
        elif tree_leaf != actual:
            out.tree_ok = False
            if tree_leaf == stored:
                continue  # the event was altered, its stored hash was not: reported above
            if committed_at is None:
                committed_at = {h: i + 1 for i, h in tree_leaves.items()}
            other = committed_at.get(actual)
            if other is not None:
                out.problems.append(("moved", f"{seq} {other}"))
            else:
                out.problems.append(
                    (
                        "tree",
                        f"seq {seq}: the event hashes to {actual.hex()[:16]}… but the Merkle "
                        f"tree committed {tree_leaf.hex()[:16]}… at this seq (the event was "
                        "replaced or inserted, together with its stored hash)",
                    )
                )


def _compare_interior_nodes(
    conn: _ChunkDB,
    task: _StoreTask,
    levels: list[tuple[int, list[bytes]]],
    out: _ChunkResult,
) -> None:
    for level, (first, hashes) in enumerate(levels):
        # only the levels the tiles hold: the others are recomputed from them
        if level == 0 or level % TILE_HEIGHT or not hashes:
            continue
        where = (task.tenant_id, level, first, first + len(hashes))
        if _nodes_equal(conn, where, first, b"".join(hashes)):
            continue
        stored = _stored_nodes(conn, where)
        for i, h in enumerate(hashes, first):
            got = stored.get(i)
            if got != h:
                found = "missing" if got is None else f"stored as {got.hex()[:16]}…"
                lo, hi = i << level, ((i + 1) << level)
                out.problems.append(
                    (
                        "node",
                        f"Merkle node (level {level}, index {i}) over seqs {lo + 1}..{hi} is "
                        f"{found} but its leaves hash to {h.hex()[:16]}… (the Merkle tiles were "
                        "altered; proofs served from it will not verify)",
                    )
                )


@dataclass(frozen=True)
class StoredLogInput:
    """What :func:`verify_store_log` needs about one tenant, read by the caller."""

    locator: str  # where workers open the store: the SQLite file, or the PostgreSQL URL
    tenant_id: int
    tenant: str
    origin: str
    head_size: int
    head_root: bytes
    head_frontier: bytes
    last_seq: int  # max(seq) stored
    event_count: int
    node_count: int
    checkpoints: Sequence[tuple[int, bytes, bytes]]  # (size column, root column, note)
    verifiers: Sequence[Verifier]
    pinned: bool  # verifiers came from the user, not from the store
    nodes: NodeReader  # the stored tree, for nodes above chunk level
    postgres: bool = False  # ``locator`` is a PostgreSQL URL


def stored_log_input(
    store: AnyStore,
    tenant: Tenant,
    origin: str,
    verifiers: Sequence[Verifier],
    *,
    pinned: bool,
) -> StoredLogInput:
    """Read what :func:`verify_store_log` needs about one tenant of a data directory, in one
    read transaction (a consistent snapshot even while a server appends)."""
    tenant_log = store.log(tenant.tenant_id)
    with store.snapshot():
        head = tenant_log.head()
        count, last_seq = store.events(tenant.tenant_id).stats()
        checkpoints = []
        after = -1
        while batch := tenant_log.checkpoints(after, 1000):
            checkpoints += [(c.size, c.root, c.note) for c in batch]
            after = batch[-1].size
        node_count = tenant_log.node_count()
    return StoredLogInput(
        # (PostgreSQL: without a host the fence refused, as the store's own connections)
        locator=str(store.path) if isinstance(store, SQLiteStore) else store.conninfo(),
        postgres=not isinstance(store, SQLiteStore),
        tenant_id=tenant.tenant_id,
        tenant=tenant.slug,
        origin=origin,
        head_size=head.size,
        head_root=head.root,
        head_frontier=head.frontier,
        last_seq=last_seq,
        event_count=count,
        node_count=node_count,
        checkpoints=checkpoints,
        verifiers=verifiers,
        pinned=pinned,
        nodes=tenant_log,
    )


def verify_store_log(
    inp: StoredLogInput, *, jobs: int = 1, content: bool = True, chunk: int = CHUNK
) -> VerifyReport:
    """Check one tenant of a data directory: every event, the tree, the head, the checkpoints."""
    report = VerifyReport(inp.tenant)
    checked: list[CheckedCheckpoint] = []
    for size, root, note in inp.checkpoints:
        cp, problem = open_checkpoint(note, inp.verifiers, inp.origin, f"checkpoint at size {size}")
        if problem is not None or cp is None:
            report.problems.append(problem or "")
            continue
        if cp.size != size or cp.root != root:
            report.problems.append(
                f"{cp.label}: the checkpoints table row says size {size}, root "
                f"{root.hex()[:16]}…, but the signed note says size {cp.size}, root "
                f"{cp.root.hex()[:16]}…"
            )
        checked.append(cp)
    by_size = {cp.size: cp for cp in checked}
    # Chunks of CHUNK seqs up to the number of stored events; whatever lies beyond (only when
    # seqs are missing, or bogus seqs were inserted) is one more task, however wide its range.
    bounds = [
        (lo, min(lo + chunk - 1, inp.event_count)) for lo in range(1, inp.event_count + 1, chunk)
    ]
    if inp.last_seq > inp.event_count:
        bounds.append((inp.event_count + 1, inp.last_seq))
    tasks = [
        _StoreTask(
            inp.locator,
            inp.postgres,
            inp.tenant_id,
            inp.tenant,
            lo,
            hi,
            content,
            tuple(s for s in by_size if lo - 1 < s <= hi),
            last=i == len(bounds) - 1,
            ids_check=(inp.last_seq, inp.event_count) if inp.postgres and i == 0 else None,
        )
        for i, (lo, hi) in enumerate(bounds)
    ]
    frontier = Frontier()
    broken_at: int | None = None  # first seq the tree could not be recomputed past
    counts: dict[str, int] = {}
    tree_ok = True
    created: list[tuple[int, int, bytes]] = []
    gaps: list[tuple[int, int]] = []
    last_present = 0
    roots_at: dict[int, bytes] = {0: EMPTY_ROOT}
    moves = _MoveRuns()
    for result in run_chunks(_check_store_chunk, tasks, jobs):
        report.checked += result.count
        tree_ok = tree_ok and result.tree_ok
        for kind, message in result.problems:
            if kind == "moved":
                seq, other = map(int, message.split())
                if moves.add(seq, other):
                    continue
                kind, message = "tree", moves.flush()
                moves.add(seq, other)
            elif moves.pending():
                _count_problem(report, counts, "tree", moves.flush())
            _count_problem(report, counts, kind, message)
        if result.first is not None and result.last is not None:
            if result.first != last_present + 1:
                gaps.append((last_present + 1, result.first))
            gaps += result.gaps
            last_present = result.last
        if broken_at is None:
            if frontier.size != result.lo - 1:
                broken_at = frontier.size + 1
                continue
            for size, subtrees in result.snapshots.items():
                roots_at[size] = frontier.copy().extend(subtrees).root()
            for level, h in result.subtrees:
                frontier.append(level, h, created)
            if result.contiguous < result.count or result.last != result.lo - 1 + result.count:
                broken_at = frontier.size + 1
    if moves.pending():
        _count_problem(report, counts, "tree", moves.flush())
    for kind, n in counts.items():
        if n > MAX_REPEATS:
            report.problems.append(f"… and {n - MAX_REPEATS} more problems like the above ({kind})")
    # seq gaps first, in the original wording
    report.problems[0:0] = [_gap_message(a, b) for a, b in gaps]
    if inp.last_seq != inp.head_size:
        report.problems.append(_head_message(inp.head_size, inp.last_seq))
    if inp.last_seq > inp.head_size:
        report.problems.append(
            f"seq {inp.head_size + 1}..{inp.last_seq}: stored beyond the log head (size "
            f"{inp.head_size}): not part of the signed log (inserted after the fact?)"
        )
    if broken_at is None and frontier.size == inp.last_seq:
        report.root = frontier.root()
        if tree_ok:  # otherwise the head differs because of the events reported above
            _check_head(inp, frontier, report)
            _check_created_nodes(inp, created, report)
    elif broken_at is not None:
        report.notes.append(
            f"the Merkle tree was not recomputed past seq {broken_at - 1} (seq {broken_at} is "
            "missing)"
        )
    compared = _compare_checkpoints(checked, roots_at, inp.last_seq, broken_at, report)
    report.checkpoints_checked = len(checked)
    _describe(report, checked, compared, inp.last_seq, inp.pinned)
    return report


def _count_problem(report: VerifyReport, counts: dict[str, int], kind: str, message: str) -> None:
    counts[kind] = counts.get(kind, 0) + 1
    if counts[kind] <= MAX_REPEATS:
        report.problems.append(message)


class _MoveRuns:
    """Collapses "seq s holds the event committed as seq t" for consecutive seqs moved by the
    same distance (what an insertion or deletion followed by renumbering looks like)."""

    def __init__(self) -> None:
        self.run: list[tuple[int, int]] = []

    def pending(self) -> bool:
        return bool(self.run)

    def add(self, seq: int, other: int) -> bool:
        """Add to the current run; False if it does not continue it (flush first)."""
        if self.run:
            last_seq, last_other = self.run[-1]
            if seq != last_seq + 1 or other != last_other + 1:
                return False
        self.run.append((seq, other))
        return True

    def flush(self) -> str:
        (first, first_other), (last, last_other) = self.run[0], self.run[-1]
        self.run = []
        if first == last:
            return (
                f"seq {first}: holds the event committed to the Merkle tree as seq {first_other} "
                "(events were moved, swapped or inserted)"
            )
        cause = "inserted" if first > first_other else "removed"
        return (
            f"seqs {first}..{last}: hold the events committed to the Merkle tree as seqs "
            f"{first_other}..{last_other} (events were {cause} before them and the rest "
            "renumbered)"
        )


def _sizes(cps: Sequence[CheckedCheckpoint]) -> str:
    return f"size {cps[0].size}" if len(cps) == 1 else f"sizes {cps[0].size}..{cps[-1].size}"


def _compare_checkpoints(
    checked: list[CheckedCheckpoint],
    roots_at: dict[int, bytes],
    last_seq: int,
    broken_at: int | None,
    report: VerifyReport,
) -> int:
    """Compare each signed root with the recomputed one. The first mismatch is reported in
    full, narrowed by the last checkpoint before it that still matches; later ones are
    summarised. Returns how many checkpoints were compared."""
    matched: list[CheckedCheckpoint] = []
    mismatched: list[tuple[CheckedCheckpoint, bytes]] = []
    beyond: list[CheckedCheckpoint] = []
    unchecked: list[CheckedCheckpoint] = []
    for cp in sorted(checked, key=lambda c: c.size):
        recomputed = roots_at.get(cp.size)
        if recomputed is None:
            (beyond if cp.size > last_seq else unchecked).append(cp)
        elif recomputed == cp.root:
            matched.append(cp)
        else:
            mismatched.append((cp, recomputed))
    if mismatched:
        cp, recomputed = mismatched[0]
        message = root_mismatch(cp, recomputed, "the store")
        before = [m for m in matched if m.size < cp.size]
        if before:
            message += (
                f"; the checkpoint at size {before[-1].size} still matches, so the change is in "
                f"seqs {before[-1].size + 1}..{cp.size}"
            )
        report.problems.append(message)
        if len(mismatched) > 1:
            rest = [c for c, _ in mismatched[1:]]
            report.problems.append(
                f"… and {len(rest)} later checkpoint(s), {_sizes(rest)}, do not match the "
                "recomputed tree either"
            )
    if beyond:
        cp = beyond[0]
        report.problems.append(
            f"{cp.label}: the log holds only {last_seq} events; events {last_seq + 1}..{cp.size} "
            "were removed (the log was truncated or rolled back)"
        )
        if len(beyond) > 1:
            report.problems.append(
                f"… and {len(beyond) - 1} later checkpoint(s), {_sizes(beyond[1:])}, cover "
                "removed events too"
            )
    if unchecked:
        why = (
            f"seq {broken_at} is missing, so the Merkle root cannot be recomputed past seq "
            f"{broken_at - 1}"
            if broken_at is not None
            else "the events do not form a log"
        )
        report.problems.append(
            f"{len(unchecked)} signed checkpoint(s), {_sizes(unchecked)}, could not be "
            f"checked: {why}"
        )
    return len(matched) + len(mismatched)


def _check_head(inp: StoredLogInput, frontier: Frontier, report: VerifyReport) -> None:
    if inp.head_size != frontier.size:
        return  # reported as a head/seq mismatch
    if inp.head_frontier != frontier.to_bytes():
        report.problems.append(
            "the log head's stored Merkle frontier does not match the one recomputed from the "
            "events (the writer's state was altered; new events would be appended to a "
            "different tree)"
        )
    if inp.head_root != frontier.root():
        report.problems.append(
            f"the log head's stored Merkle root {inp.head_root.hex()[:16]}… differs from the "
            f"root recomputed from the events {frontier.root().hex()[:16]}…"
        )
    expected_nodes = 2 * frontier.size - frontier.size.bit_count()
    if inp.node_count != expected_nodes:
        report.problems.append(
            f"the Merkle tiles hold {inp.node_count} nodes for this log; a tree of "
            f"{frontier.size} leaves has {expected_nodes}"
        )


def _check_created_nodes(
    inp: StoredLogInput, created: list[tuple[int, int, bytes]], report: VerifyReport
) -> None:
    """Nodes above chunk level, made while merging chunks: compare with the stored ones."""
    if not created:
        return
    try:
        stored = inp.nodes.get_nodes([(level, index) for level, index, _ in created])
    except KeyError as exc:
        report.problems.append(f"Merkle {exc.args[0]} (the Merkle tiles were altered)")
        return
    for (level, index, h), got in zip(created, stored, strict=True):
        if got != h:
            report.problems.append(
                f"Merkle node (level {level}, index {index}) is stored as {got.hex()[:16]}… but "
                f"its leaves hash to {h.hex()[:16]}… (the Merkle tiles were altered)"
            )


def _describe(
    report: VerifyReport, checked: list[CheckedCheckpoint], compared: int, size: int, pinned: bool
) -> None:
    if report.root is not None:
        report.notes.append(f"Merkle root {report.root.hex()} over {size} events")
    if checked:
        latest = max(checked, key=lambda c: c.size)
        report.latest_checkpoint = {
            "size": latest.size,
            "root": latest.root.hex(),
            "timestamp": latest.timestamp,
            "key_ids": list(latest.key_ids),
        }
        source = "the given --log-key" if pinned else "the log's own published keys"
        report.notes.append(
            f"{len(checked)} signed checkpoint(s), signatures checked with {source}; "
            f"{compared} compared with the recomputed tree; latest: {latest.label}"
        )
    else:
        report.notes.append("no signed checkpoint yet: the tree was checked against the head only")


# -- a running server ---------------------------------------------------------------------------


def verify_feed(
    tenant: str,
    events: Iterable[dict[str, Any]],
    checkpoints: Sequence[bytes],
    verifiers: Sequence[Verifier],
    origin: str | None,
    *,
    pinned: bool,
) -> VerifyReport:
    """Check a log as served over HTTP: leaf hashes from the fields, seqs, and the Merkle
    root at each checkpoint's size (the checkpoints must be in increasing size order)."""
    report = VerifyReport(tenant)
    opened: list[CheckedCheckpoint] = []
    for note in checkpoints:
        cp, problem = open_checkpoint(note, verifiers, origin or "", "checkpoint")
        if cp is None:
            report.problems.append(problem or "")
        else:
            opened.append(cp)
    wanted = {cp.size: cp for cp in opened}
    roots: dict[int, bytes] = {}
    if 0 in wanted:
        roots[0] = EMPTY_ROOT
    tree = CompactRange()
    expected = 1
    broken = False
    for event in events:
        seq = event.get("seq")
        if seq != expected:
            report.problems.append(f"seq {expected}..{int(seq or 0) - 1}: missing")
            broken = True
        report.problems += check_http_event(tenant, event)
        expected = int(seq or 0) + 1
        report.checked += 1
        if not broken:
            body = {k: v for k, v in event.items() if k not in ("seq", "hash")}
            tree.append(leaf_hash(canonical_json(body)))
            if tree.size in wanted:
                roots[tree.size] = tree.root()
    for cp in opened:
        root = roots.get(cp.size)
        if root is None:
            if cp.size >= expected and not broken:
                report.problems.append(
                    f"{cp.label}: the server returned only {expected - 1} events; events "
                    f"{expected}..{cp.size} are missing (the log was truncated or rolled back)"
                )
        elif root != cp.root:
            report.problems.append(root_mismatch(cp, root, "the served events"))
    report.checkpoints_checked = len(opened)
    if not broken:
        report.root = tree.root()
    _describe(report, opened, len(roots), tree.size, pinned)
    return report


__all__ = [
    "CHUNK",
    "CheckedCheckpoint",
    "Frontier",
    "StoredLogInput",
    "VerifyReport",
    "check_columns",
    "check_content",
    "check_events",
    "check_http_event",
    "decompose",
    "default_jobs",
    "expected_rows",
    "hash_leaves",
    "is_canonical",
    "open_checkpoint",
    "run_chunks",
    "seq_gaps",
    "stored_log_input",
    "subtree_levels",
    "verify_feed",
    "verify_store_log",
]
