"""The Merkle tree stored as C2SP tlog-tiles: 256-wide tiles of hashes, read back as nodes.

A tile of height 8 at tile level ``L`` and index ``n`` holds the hashes of the perfect subtrees
``(8 * L, 256 * n + k)`` for ``k = 0 .. width - 1``: tile level 0 holds leaf hashes, tile
level 1 the roots of 256-leaf subtrees, and so on. A tile is *full* at width 256 and never
changes again; the last tile of each level is *partial* (width 1..255, the prefix of what it
will hold) and is rewritten by each commit that adds to it. Every other perfect subtree lies
inside one tile: ``(8 * L + r, i)`` is the hash of the 2**r consecutive hashes of tile
``(L, i >> (8 - r))`` from position ``(i << r) & 255``, recomputed on read. So a commit of
``m`` leaves writes about ``m / 256 + log256(size)`` tile rows instead of ``2 * m`` nodes,
and a proof reads a handful of tiles.

The layout (heights, widths, indexes) is the one of https://c2sp.org/tlog-tiles, so the
tiles can be served as its static URLs; the hash tree itself is RFC 9162's
(:mod:`auditkeep.integrity.merkle`). Like that module, this one knows no storage: a store
reads tiles through the one-method :class:`TileReader` protocol.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from auditkeep.integrity.merkle import HASH_SIZE, CompactRange, Node

__all__ = [
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "MemoryTileStore",
    "Tile",
    "TileId",
    "TileNodeReader",
    "TileReader",
    "node_count",
    "node_location",
    "nodes_in_tiles",
    "partial_tiles",
    "tile_ranges",
    "tiles_after_append",
]

TILE_HEIGHT = 8
"""Tree levels per tile (C2SP tlog-tiles: 8)."""

TILE_WIDTH = 1 << TILE_HEIGHT
"""Hashes in a full tile: 256."""

TileId = tuple[int, int]
"""Address ``(tile level, tile index)`` of a tile."""

Tile = tuple[int, int, bytes]
"""A tile as persisted: ``(tile level, tile index, hashes)``, ``hashes`` being ``width`` 32-byte
hashes concatenated, ``1 <= width <= 256``."""

_sha256 = hashlib.sha256
_NODE_PREFIX = b"\x01"


class TileReader(Protocol):
    """Read access to stored tiles, implemented by the storage layer."""

    def get_tiles(self, ids: Sequence[TileId]) -> Mapping[TileId, bytes]:
        """The hashes of each stored tile among ``ids`` (missing ones are left out)."""
        ...


def node_location(level: int, index: int) -> tuple[int, int, int, int]:
    """Where the perfect subtree ``(level, index)`` lies: ``(tile level, tile index, first
    position, count)``; its hash is the subtree hash of the ``count`` (a power of two)
    hashes of that tile from ``first`` on."""
    tile_level, r = divmod(level, TILE_HEIGHT)
    return tile_level, index >> (TILE_HEIGHT - r), (index << r) & (TILE_WIDTH - 1), 1 << r


def _perfect(hashes: bytes, first: int, count: int) -> bytes:
    """RFC 9162 hash of the perfect subtree over ``count`` hashes of ``hashes`` from ``first``."""
    start = first * HASH_SIZE
    level = [hashes[i : i + HASH_SIZE] for i in range(start, start + count * HASH_SIZE, HASH_SIZE)]
    sha, prefix = _sha256, _NODE_PREFIX
    while len(level) > 1:
        pairs = iter(level)
        level = [sha(prefix + a + b).digest() for a, b in zip(pairs, pairs, strict=True)]
    return level[0]


def _node_from(tiles: Mapping[TileId, bytes], level: int, index: int) -> bytes | None:
    tile_level, tile_index, first, count = node_location(level, index)
    hashes = tiles.get((tile_level, tile_index))
    if hashes is None or len(hashes) < (first + count) * HASH_SIZE:
        return None
    if count == 1:
        return hashes[first * HASH_SIZE : (first + 1) * HASH_SIZE]
    return _perfect(hashes, first, count)


class TileNodeReader:
    """A :class:`~auditkeep.integrity.merkle.NodeReader` over a :class:`TileReader`: the
    nodes a proof asks for are read as the tiles holding them, in one batched read."""

    def __init__(self, tiles: TileReader) -> None:
        """Read nodes from ``tiles``."""
        self._tiles = tiles

    def get_nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        """The hashes of nodes ``ids`` in order; :class:`KeyError` naming the first missing one."""
        if not ids:
            return []
        wanted = sorted({node_location(level, idx)[:2] for level, idx in ids})
        tiles = self._tiles.get_tiles(wanted)
        out = []
        for level, idx in ids:
            h = _node_from(tiles, level, idx)
            if h is None:
                raise KeyError(f"node (level={level}, index={idx}) is not stored")
            out.append(h)
        return out


def tile_ranges(level: int, lo: int, hi: int) -> tuple[int, int, int]:
    """The tiles holding nodes ``(level, lo .. hi - 1)`` (``lo < hi``): ``(tile level, first
    tile index, last tile index)``."""
    tile_level, r = divmod(level, TILE_HEIGHT)
    return tile_level, (lo << r) >> TILE_HEIGHT, ((hi << r) - 1) >> TILE_HEIGHT


def nodes_in_tiles(tiles: Mapping[TileId, bytes], level: int, lo: int, hi: int) -> dict[int, bytes]:
    """Nodes ``(level, idx)`` with ``lo <= idx < hi`` that ``tiles`` hold, by idx."""
    if lo >= hi:
        return {}
    tile_level, r = divmod(level, TILE_HEIGHT)
    per_tile = TILE_WIDTH >> r  # nodes of this level in one tile
    out: dict[int, bytes] = {}
    for (t_level, t_idx), hashes in sorted(tiles.items()):
        if t_level != tile_level:
            continue
        available = (len(hashes) // HASH_SIZE) >> r
        start = max(lo, t_idx * per_tile)
        stop = min(hi, t_idx * per_tile + available)
        for idx in range(start, stop):
            first = (idx << r) & (TILE_WIDTH - 1)
            if r == 0:
                out[idx] = hashes[first * HASH_SIZE : (first + 1) * HASH_SIZE]
            else:
                out[idx] = _perfect(hashes, first, 1 << r)
    return out


def node_count(width: int) -> int:
    """Perfect subtrees a tile of ``width`` hashes holds below the next tile level: its
    hashes, and the subtrees over them of heights 1 to 7 (a full tile: 510)."""
    return sum(width >> r for r in range(TILE_HEIGHT))


def partial_tiles(old_size: int, new_size: int) -> list[TileId]:
    """The stored partial tiles a tree growing from ``old_size`` to ``new_size`` leaves adds
    hashes to (whose stored prefix the new tile starts with), lowest level first."""
    return [
        (tile_level, old // TILE_WIDTH)
        for tile_level, old, _ in _growing_levels(old_size, new_size)
        if old % TILE_WIDTH
    ]


def _growing_levels(old_size: int, new_size: int) -> list[tuple[int, int, int]]:
    """``(tile level, hashes before, hashes after)`` of each tile level that gains hashes."""
    out = []
    tile_level = 0
    while (new := new_size >> (TILE_HEIGHT * tile_level)) > (
        old := old_size >> (TILE_HEIGHT * tile_level)
    ):
        out.append((tile_level, old, new))
        tile_level += 1
    return out


def tiles_after_append(
    old_size: int,
    new_size: int,
    created: Iterable[Node],
    partial: Mapping[TileId, bytes],
) -> list[Tile]:
    """The tiles to write after the tree grew from ``old_size`` to ``new_size`` leaves.

    ``created`` holds (at least) every perfect subtree the growth completed, as
    :meth:`CompactRange.extend` returns them; ``partial`` the stored hashes of the tiles
    :func:`partial_tiles` names. Every returned tile replaces the stored one with its index
    (a tile only ever grows: its stored hashes are a prefix of the new ones).
    """
    new_hashes: dict[int, dict[int, bytes]] = {}
    for level, idx, h in created:
        if level % TILE_HEIGHT == 0:
            new_hashes.setdefault(level // TILE_HEIGHT, {})[idx] = h
    out: list[Tile] = []
    for tile_level, old, new in _growing_levels(old_size, new_size):
        by_idx = new_hashes.get(tile_level, {})
        try:
            added = b"".join(by_idx[i] for i in range(old, new))
        except KeyError as exc:
            raise ValueError(
                f"the appended nodes lack node (level={TILE_HEIGHT * tile_level}, "
                f"index={exc.args[0]})"
            ) from None
        first_tile = old // TILE_WIDTH
        prefix = b""
        if old % TILE_WIDTH:
            prefix = partial.get((tile_level, first_tile), b"")
            if len(prefix) != (old % TILE_WIDTH) * HASH_SIZE:
                raise ValueError(
                    f"tile (level={tile_level}, index={first_tile}) holds "
                    f"{len(prefix) // HASH_SIZE} hashes, expected {old % TILE_WIDTH}"
                )
        joined = prefix + added
        step = TILE_WIDTH * HASH_SIZE
        for n, start in enumerate(range(0, len(joined), step), first_tile):
            out.append((tile_level, n, joined[start : start + step]))
    return out


class MemoryTileStore:
    """Dict-backed tiles of one tree, for tests, benchmarks and verifiers that rebuild a
    tree locally; a :class:`TileReader` and (through :class:`TileNodeReader`) a NodeReader."""

    def __init__(self) -> None:
        """An empty tree."""
        self.tree = CompactRange()
        self.tiles: dict[TileId, bytes] = {}

    def extend(self, leaf_hashes: Sequence[bytes]) -> list[Tile]:
        """Append leaf hashes; return the tiles written (as a store writes them)."""
        old = self.tree.size
        created = self.tree.extend(leaf_hashes)
        written = tiles_after_append(old, self.tree.size, created, self.tiles)
        for level, idx, hashes in written:
            self.tiles[(level, idx)] = hashes
        return written

    def get_tiles(self, ids: Sequence[TileId]) -> dict[TileId, bytes]:
        """TileReader: the stored tiles among ``ids``."""
        return {i: self.tiles[i] for i in ids if i in self.tiles}

    def get_nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        """NodeReader: nodes recomputed from the tiles."""
        return TileNodeReader(self).get_nodes(ids)
