"""RFC 9162 Merkle tree: hashing, incremental building, proofs and proof verification.

The log is an append-only list of leaves. Its Merkle Tree Hash (MTH) and the inclusion and
consistency proofs are exactly those of RFC 9162 section 2.1 (identical to RFC 6962 and to
what a Certificate Transparency log serves), with SHA-256:

* ``leaf_hash(d) = SHA-256(0x00 || d)``
* ``node_hash(l, r) = SHA-256(0x01 || l || r)``
* the hash of the empty tree is ``SHA-256("")``.

Storage model: only hashes of *perfect* subtrees are ever stored. The perfect subtree at
``(level, index)`` covers leaves ``[index * 2**level, (index + 1) * 2**level)``; level 0 holds
the leaf hashes. Such a node never changes once the tree has grown past it, so it can be
written once, in the same transaction as the leaf that completes it (see
:meth:`CompactRange.append`). Hashes of the non-perfect subtrees on the right edge of a tree
are recomputed on demand from the O(log n) perfect subtrees that make them up.

This module knows nothing about databases: proof builders read through the one-method
:class:`NodeReader` protocol and issue a single batched read per call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Protocol

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MemoryNodeStore",
    "Node",
    "NodeId",
    "NodeReader",
    "ProofError",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "parse_hash_hex",
    "root_from_leaves",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Merkle Tree Hash of the empty tree: SHA-256 of the empty string."""

NodeId = tuple[int, int]
"""Address ``(level, index)`` of a perfect subtree; it covers leaves
``[index * 2**level, (index + 1) * 2**level)``."""

Node = tuple[int, int, bytes]
"""A perfect subtree as persisted: ``(level, index, hash)``."""

_sha256 = hashlib.sha256
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_MAX_SIZE = 2**64 - 1  # tree sizes travel as uint64 (checkpoints, CompactRange.to_bytes)


class ProofError(ValueError):
    """A proof did not verify; the message says which check failed and with what values."""


class NodeReader(Protocol):
    """Read access to stored perfect-subtree hashes, implemented by the storage layer."""

    def get_nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        """Return the hashes of the nodes ``ids`` (``(level, index)`` pairs), in that order.

        Must raise :class:`KeyError` if any requested node is not stored.
        """
        ...


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash of one entry: ``SHA-256(0x00 || data)``."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def parse_hash_hex(text: str) -> bytes:
    """Decode a hash written as 64 hexadecimal digits (either case), e.g. from a CLI argument.

    Raises :class:`ValueError` naming the problem for anything else.
    """
    if len(text) != 2 * HASH_SIZE:
        raise ValueError(f"hash must be {2 * HASH_SIZE} hex digits, got {len(text)} characters")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"hash {text!r} contains a character that is not a hex digit") from None


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """Merkle Tree Hash of a list of leaf hashes, by direct recursion over RFC 9162's MTH.

    This is the O(n) reference definition. It is used to cross-check the incremental code
    and by offline verifiers that hold all leaves of a (small) tree.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    return _mth(leaf_hashes, 0, len(leaf_hashes))


def _mth(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) for a non-empty range, split as RFC 9162 prescribes."""
    if hi - lo == 1:
        return leaves[lo]
    mid = lo + _split(hi - lo)
    return node_hash(_mth(leaves, lo, mid), _mth(leaves, mid, hi))


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (for ``n >= 2``): RFC 9162's k."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_size(name: str, value: int) -> None:
    if value < 0 or value > _MAX_SIZE:
        raise ValueError(f"{name} must be between 0 and 2**64-1, got {value}")


def _range_ids(lo: int, hi: int) -> list[NodeId]:
    """Perfect subtrees making up the RFC 9162 subtree D[lo:hi], largest (leftmost) first.

    Every subtree that occurs in RFC 9162's recursive definition starts at a multiple of the
    smallest power of two that is >= its size, so it decomposes into one perfect subtree per
    set bit of ``hi - lo``; its MTH is those hashes folded from the right (:func:`_fold`).
    """
    ids = []
    remaining = hi - lo
    while remaining:
        level = remaining.bit_length() - 1
        ids.append((level, lo >> level))
        lo += 1 << level
        remaining -= 1 << level
    return ids


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Combine perfect-subtree hashes (largest first) into the hash of the subtree they form."""
    h = hashes[-1]
    for i in range(len(hashes) - 2, -1, -1):
        h = _sha256(_NODE_PREFIX + hashes[i] + h).digest()
    return h


def _subtree_hashes(ranges: Sequence[tuple[int, int]], reader: NodeReader) -> list[bytes]:
    """MTH of each subtree range, read through ``reader`` with one batched call."""
    per_range = [_range_ids(lo, hi) for lo, hi in ranges]
    ids = [node_id for range_ids in per_range for node_id in range_ids]
    if not ids:
        return []
    hashes = reader.get_nodes(ids)
    if len(hashes) != len(ids):
        raise ValueError(f"NodeReader returned {len(hashes)} hashes for {len(ids)} node ids")
    out = []
    pos = 0
    for range_ids in per_range:
        out.append(_fold(hashes[pos : pos + len(range_ids)]))
        pos += len(range_ids)
    return out


def root_hash(size: int, reader: NodeReader) -> bytes:
    """Merkle Tree Hash of the first ``size`` leaves, from O(log size) stored nodes."""
    _check_size("tree size", size)
    if size == 0:
        return EMPTY_ROOT
    return _subtree_hashes([(0, size)], reader)[0]


def inclusion_proof(index: int, size: int, reader: NodeReader) -> list[bytes]:
    """RFC 9162 inclusion proof PATH(index, D[0:size]) for leaf ``index``, leaf side first.

    Reads O(log size) stored nodes in one :meth:`NodeReader.get_nodes` call (none for a tree
    of size 1).
    """
    _check_size("tree size", size)
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is out of range for a tree of size {size}")
    ranges = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            ranges.append((mid, hi))
            hi = mid
        else:
            ranges.append((lo, mid))
            lo = mid
    ranges.reverse()
    return _subtree_hashes(ranges, reader)


def consistency_proof(old_size: int, new_size: int, reader: NodeReader) -> list[bytes]:
    """RFC 9162 consistency proof PROOF(old_size, D[0:new_size]).

    The proof is empty when ``old_size`` is 0 or equals ``new_size`` (nothing to prove).
    Reads O(log new_size) stored nodes in one :meth:`NodeReader.get_nodes` call.
    """
    _check_size("old tree size", old_size)
    _check_size("new tree size", new_size)
    if old_size > new_size:
        raise ValueError(f"old tree size {old_size} is larger than new tree size {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    # Iterative SUBPROOF(m, D[lo:hi], b): collect sibling ranges from the root down.
    ranges = []
    lo, hi = 0, new_size
    whole_old_tree = True  # RFC 9162's flag b: D[lo:hi] is still the entire old tree.
    while old_size != hi:
        mid = lo + _split(hi - lo)
        if old_size <= mid:
            ranges.append((mid, hi))
            hi = mid
        else:
            ranges.append((lo, mid))
            lo = mid
            whole_old_tree = False
    if not whole_old_tree:
        ranges.append((lo, hi))
    ranges.reverse()
    return _subtree_hashes(ranges, reader)


class MemoryNodeStore:
    """Dict-backed :class:`NodeReader`, for tests and for verifiers that rebuild a tree locally.

    Nodes are write-once: storing a different hash at an existing address raises, which
    catches writer bugs instead of silently rewriting history.
    """

    def __init__(self) -> None:
        """Create an empty store."""
        self._nodes: dict[NodeId, bytes] = {}

    @classmethod
    def from_leaf_hashes(cls, leaf_hashes: Iterable[bytes]) -> tuple[MemoryNodeStore, CompactRange]:
        """Build a store holding every perfect subtree of the given leaves.

        Returns the store and the :class:`CompactRange` of the resulting tree.
        """
        store = cls()
        tree = CompactRange()
        for h in leaf_hashes:
            store.put_nodes(tree.append(h))
        return store, tree

    def __len__(self) -> int:
        """Number of stored nodes."""
        return len(self._nodes)

    def put_nodes(self, nodes: Iterable[Node]) -> None:
        """Store ``(level, index, hash)`` triples, e.g. as returned by :meth:`CompactRange.append`.

        Storing a node again with the same hash is a no-op.
        """
        for level, index, h in nodes:
            if len(h) != HASH_SIZE:
                raise ValueError(
                    f"node (level={level}, index={index}) hash is {len(h)} bytes, "
                    f"expected {HASH_SIZE}"
                )
            existing = self._nodes.setdefault((level, index), h)
            if existing != h:
                raise ValueError(
                    f"node (level={level}, index={index}) is already stored with hash "
                    f"{existing.hex()}; refusing to overwrite it with {h.hex()}"
                )

    def get_nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        """Return the stored hashes for ``ids`` in order; :class:`KeyError` if one is missing."""
        nodes = self._nodes
        try:
            return [nodes[node_id] for node_id in ids]
        except KeyError as e:
            level, index = e.args[0]
            raise KeyError(f"node (level={level}, index={index}) is not stored") from None


class CompactRange:
    """The Merkle frontier of a tree: the roots of its perfect subtrees and its size.

    A tree of size n is the concatenation of one perfect subtree per set bit of n, largest
    first; those O(log n) hashes are enough to append leaves and to compute the root. The
    writer keeps one instance in memory, appends each new leaf hash, and persists the nodes
    :meth:`append` returns in the same transaction as the leaf.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """Create the frontier of a tree of ``size`` leaves from its perfect-subtree roots.

        ``hashes`` must hold one hash per set bit of ``size``, largest subtree first: for
        ``size = 0b1101`` the roots of leaves [0, 8), [8, 12) and [12, 13). With no
        arguments: the empty tree.
        """
        _check_size("tree size", size)
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a tree of size {size} has {size.bit_count()} frontier hashes, got {len(hashes)}"
            )
        for i, h in enumerate(hashes):
            if len(h) != HASH_SIZE:
                raise ValueError(f"frontier hash {i} is {len(h)} bytes, expected {HASH_SIZE}")
        self._size = size
        self._hashes = [bytes(h) for h in hashes]

    @classmethod
    def from_reader(cls, size: int, reader: NodeReader) -> CompactRange:
        """Load the frontier of the tree of ``size`` leaves with one batched node read."""
        _check_size("tree size", size)
        ids = _range_ids(0, size)
        return cls(size, reader.get_nodes(ids) if ids else [])

    @classmethod
    def from_bytes(cls, data: bytes) -> CompactRange:
        """Decode the output of :meth:`to_bytes`."""
        if len(data) < 8:
            raise ValueError(f"compact range encoding is {len(data)} bytes, expected at least 8")
        size = int.from_bytes(data[:8], "big")
        expected = 8 + HASH_SIZE * size.bit_count()
        if len(data) != expected:
            raise ValueError(
                f"compact range encoding for size {size} must be {expected} bytes, got {len(data)}"
            )
        return cls(size, [data[i : i + HASH_SIZE] for i in range(8, len(data), HASH_SIZE)])

    def to_bytes(self) -> bytes:
        """Serialise as 8-byte big-endian size followed by the frontier hashes, largest first."""
        return self._size.to_bytes(8, "big") + b"".join(self._hashes)

    @property
    def size(self) -> int:
        """Number of leaves in the tree."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Roots of the perfect subtrees, largest (leftmost) first."""
        return tuple(self._hashes)

    def copy(self) -> CompactRange:
        """Independent copy, e.g. to roll back appends whose transaction failed."""
        return CompactRange(self._size, self._hashes)

    def __eq__(self, other: object) -> bool:
        """Two frontiers are equal when they describe the same tree (size and hashes)."""
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        """Show the size and the root, e.g. for logs."""
        return f"CompactRange(size={self._size}, root={self.root().hex()})"

    def append(self, leaf_hash: bytes) -> list[Node]:
        """Add one leaf hash and return every perfect subtree this completes.

        The first returned node is the leaf itself ``(0, old_size, leaf_hash)``, followed by
        each newly completed ancestor, lowest first. Nothing is read from storage.
        """
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hash is {len(leaf_hash)} bytes, expected {HASH_SIZE}")
        index = self._size
        if index == _MAX_SIZE:
            raise ValueError("tree is full (2**64-1 leaves)")
        created = [(0, index, leaf_hash)]
        hashes = self._hashes
        h = leaf_hash
        level = 0
        while index & 1:  # the new node is a right child: merge it with its left sibling
            index >>= 1
            level += 1
            h = _sha256(_NODE_PREFIX + hashes.pop() + h).digest()
            created.append((level, index, h))
        hashes.append(h)
        self._size += 1
        return created

    def extend(self, leaf_hashes: Sequence[bytes]) -> list[Node]:
        """Append many leaf hashes; return every perfect subtree this completes.

        The same tree and the same set of nodes as calling :meth:`append` for each leaf, but
        hashed level by level (one list comprehension per level) and returned grouped by
        level, lowest first, then by index; the nodes that join the new leaves to the old
        frontier come last. Nothing is read from storage.
        """
        for i, h in enumerate(leaf_hashes):
            if len(h) != HASH_SIZE:
                raise ValueError(f"leaf hash {i} is {len(h)} bytes, expected {HASH_SIZE}")
        if self._size + len(leaf_hashes) > _MAX_SIZE:
            raise ValueError("tree is full (2**64-1 leaves)")
        start = self._size
        end = start + len(leaf_hashes)
        created: list[Node] = []
        levels: list[tuple[int, list[bytes]]] = []  # per level: (first index, hashes)
        first, current = start, list(leaf_hashes)
        while current:
            levels.append((first, current))
            created += [(len(levels) - 1, i, h) for i, h in enumerate(current, first)]
            skip = first & 1  # the first node's left sibling lies before the new leaves
            stop = len(current) - ((first + len(current)) & 1)  # the last one's right: after
            pairs = current[skip:stop]
            current = [
                _sha256(_NODE_PREFIX + a + b).digest()
                for a, b in zip(pairs[0::2], pairs[1::2], strict=True)
            ]
            first = (first + skip) >> 1
        # Join the aligned subtrees covering [start, end), left to right, to the frontier.
        hashes = self._hashes
        lo = start
        while lo < end:
            level = (end - lo).bit_length() - 1
            if lo:
                level = min(level, (lo & -lo).bit_length() - 1)
            level_first, level_hashes = levels[level]
            h = level_hashes[(lo >> level) - level_first]
            lo += 1 << level
            index = (lo >> level) - 1
            while index & 1:
                h = _sha256(_NODE_PREFIX + hashes.pop() + h).digest()
                level += 1
                index >>= 1
                created.append((level, index, h))
            hashes.append(h)
        self._size = end
        return created

    def root(self) -> bytes:
        """Merkle Tree Hash of the tree."""
        if not self._hashes:
            return EMPTY_ROOT
        return _fold(self._hashes)


def _check_hash(what: str, h: bytes) -> None:
    if len(h) != HASH_SIZE:
        raise ProofError(f"{what} is {len(h)} bytes, expected {HASH_SIZE}")


def _check_proof_hashes(kind: str, proof: Sequence[bytes]) -> None:
    for i, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise ProofError(f"{kind} proof hash {i} is {len(h)} bytes, expected {HASH_SIZE}")


def _inclusion_proof_length(index: int, size: int) -> int:
    """Number of hashes in the inclusion proof of leaf ``index`` (< ``size``)."""
    inner = (index ^ (size - 1)).bit_length()  # levels below the point the paths diverge
    return inner + (index >> inner).bit_count()  # plus left siblings on the right border


def _consistency_proof_length(old_size: int, new_size: int) -> int:
    """Number of hashes in the consistency proof for ``0 < old_size < new_size``."""
    level = (old_size & -old_size).bit_length() - 1  # largest perfect subtree ending at old
    index = (old_size - 1) >> level
    length = _inclusion_proof_length(index, ((new_size - 1) >> level) + 1)
    # The proof starts with that subtree's hash unless it is the whole old tree.
    return length if index == 0 else length + 1


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    Implements RFC 9162 section 2.1.3.2. Returns ``None`` on success and raises
    :class:`ProofError` on any failure. Take ``size`` and ``root`` from the same signed
    checkpoint: the hashes alone do not commit to the tree size.
    """
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root", root)
    _check_proof_hashes("inclusion", proof)
    if size < 0 or index < 0:
        raise ProofError(f"leaf index ({index}) and tree size ({size}) must not be negative")
    if index >= size:
        raise ProofError(f"leaf index {index} is out of range for a tree of size {size}")

    def wrong_length() -> ProofError:
        return ProofError(
            f"inclusion proof has {len(proof)} hashes, expected "
            f"{_inclusion_proof_length(index, size)} for index {index} in a tree of size {size}"
        )

    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise wrong_length()
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise wrong_length()
    if r != root:
        raise ProofError(
            f"recomputed root {r.hex()} does not match expected root {root.hex()} "
            f"(leaf index {index}, tree size {size})"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree ``(new_size, new_root)`` extends the tree ``(old_size, old_root)``.

    Implements RFC 9162 section 2.1.4.2 for ``0 < old_size < new_size``. The cases the RFC
    leaves out are handled as follows: ``old_size == new_size`` requires an empty proof and
    equal roots; ``old_size == 0`` requires an empty proof and ``old_root`` equal to the
    empty-tree hash. Raises :class:`ProofError` on any failure.
    """
    _check_hash("old root", old_root)
    _check_hash("new root", new_root)
    _check_proof_hashes("consistency", proof)
    if old_size < 0:
        raise ProofError(f"old tree size must not be negative, got {old_size}")
    if old_size > new_size:
        raise ProofError(f"old tree size {old_size} is larger than new tree size {new_size}")
    if old_size == 0 and old_root != EMPTY_ROOT:
        raise ProofError(
            f"old root {old_root.hex()} is not the empty-tree hash {EMPTY_ROOT.hex()} "
            "(old tree size 0)"
        )
    if old_size == new_size:
        if proof:
            raise ProofError(
                f"consistency proof between equal tree sizes ({old_size}) must be empty, "
                f"got {len(proof)} hashes"
            )
        if old_root != new_root:
            raise ProofError(
                f"roots differ for the same tree size {old_size}: "
                f"old root {old_root.hex()}, new root {new_root.hex()}"
            )
        return
    if old_size == 0:
        if proof:
            raise ProofError(
                f"consistency proof from the empty tree must be empty, got {len(proof)} hashes"
            )
        return

    def wrong_length() -> ProofError:
        return ProofError(
            f"consistency proof has {len(proof)} hashes, expected "
            f"{_consistency_proof_length(old_size, new_size)} for tree sizes "
            f"{old_size} -> {new_size}"
        )

    if not proof:
        raise wrong_length()
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise wrong_length()
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise wrong_length()
    if fr != old_root:
        raise ProofError(
            f"recomputed old root {fr.hex()} does not match expected old root {old_root.hex()} "
            f"(tree sizes {old_size} -> {new_size})"
        )
    if sr != new_root:
        raise ProofError(
            f"recomputed new root {sr.hex()} does not match expected new root {new_root.hex()} "
            f"(tree sizes {old_size} -> {new_size})"
        )
