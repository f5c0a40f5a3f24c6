"""The tile store (integrity/tiles.py) answers exactly as the node store did.

Every root and proof read through tiles equals the one read from every perfect subtree
(MemoryNodeStore, the semantics of the former merkle_nodes table): at every tree size up to a
few thousand leaves grown one leaf at a time (so every partial-tile width occurs), across
commits of many sizes, and for random sizes up to 10M with a synthetic hash source.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditkeep.integrity.merkle import (
    MemoryNodeStore,
    consistency_proof,
    inclusion_proof,
    node_hash,
    root_from_leaves,
    root_hash,
    verify_inclusion,
)
from auditkeep.integrity.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    MemoryTileStore,
    TileId,
    TileNodeReader,
    node_count,
    node_location,
    nodes_in_tiles,
    partial_tiles,
)


def leaf(i: int) -> bytes:
    return hashlib.sha256(b"leaf %d" % i).digest()


LEAVES = [leaf(i) for i in range(70_000)]
REFERENCE, _ = MemoryNodeStore.from_leaf_hashes(LEAVES)


def test_every_size_up_to_a_few_thousand_grown_one_leaf_at_a_time() -> None:
    tiles = MemoryTileStore()
    rng = random.Random(5)
    for size in range(1, 2100):
        tiles.extend([LEAVES[size - 1]])
        root = root_hash(size, REFERENCE)
        assert root_hash(size, tiles) == root == tiles.tree.root()
        for index in {0, size - 1, rng.randrange(size)}:
            proof = inclusion_proof(index, size, tiles)
            assert proof == inclusion_proof(index, size, REFERENCE)
            verify_inclusion(LEAVES[index], index, size, proof, root)
        for old in {1, size - 1, rng.randrange(size + 1)}:
            assert consistency_proof(old, size, tiles) == consistency_proof(old, size, REFERENCE)
        assert sum(node_count(len(h) // 32) for h in tiles.tiles.values()) == (
            2 * size - size.bit_count()
        )
    assert root_from_leaves(LEAVES[:2099]) == tiles.tree.root()


@pytest.mark.parametrize("batch", [1, 7, 255, 256, 257, 500, 5000, 65_536, 70_000])
def test_commits_of_any_size_make_the_same_tiles(batch: int) -> None:
    one_by_one = MemoryTileStore()
    one_by_one.extend(LEAVES[:1])
    for i in range(1, 70_000, 997):
        one_by_one.extend(LEAVES[i : min(i + 997, 70_000)])
    batched = MemoryTileStore()
    rng = random.Random(batch)
    pos = 0
    while pos < 70_000:
        n = max(1, min(batch + rng.randrange(-3, 4), 70_000 - pos))
        written = batched.extend(LEAVES[pos : pos + n])
        # a commit writes about n / 256 tiles plus one per level, not a row per node
        assert len(written) <= n // TILE_WIDTH + 2 + 3
        pos += n
    assert batched.tiles == one_by_one.tiles
    assert set(batched.tiles) == {
        *((0, i) for i in range(274)),
        (1, 0),
        (1, 1),
        (2, 0),
    }
    size = 70_000
    reader = TileNodeReader(batched)
    for index in random.Random(1).sample(range(size), 50):
        assert inclusion_proof(index, size, reader) == inclusion_proof(index, size, REFERENCE)
        old = index + 1
        assert consistency_proof(old, size, reader) == consistency_proof(old, size, REFERENCE)


def test_nodes_in_a_range_and_missing_nodes() -> None:
    tiles = MemoryTileStore()
    tiles.extend(LEAVES[:1000])
    for level in range(11):
        got = nodes_in_tiles(tiles.tiles, level, 0, 1 << 40)
        want = {i: REFERENCE.get_nodes([(level, i)])[0] for i in range(1000 >> level)}
        assert got == want
    assert nodes_in_tiles(tiles.tiles, 3, 5, 9) == {
        i: REFERENCE.get_nodes([(3, i)])[0] for i in range(5, 9)
    }
    with pytest.raises(KeyError, match=r"node \(level=3, index=125\) is not stored"):
        tiles.get_nodes([(0, 0), (3, 125)])  # leaves 1000..1007: not all there
    with pytest.raises(KeyError, match=r"node \(level=10, index=0\) is not stored"):
        tiles.get_nodes([(10, 0)])
    assert tiles.get_nodes([]) == []


def test_partial_tiles_to_read() -> None:
    assert partial_tiles(0, 10) == []
    assert partial_tiles(10, 11) == [(0, 0)]
    assert partial_tiles(256, 300) == []  # tile (0, 1) starts empty; (1, 0) gains nothing
    assert partial_tiles(300, 600) == [(0, 1), (1, 0)]
    assert partial_tiles(65_535, 65_536) == [(0, 255), (1, 0)]


def test_a_node_lies_in_one_tile() -> None:
    assert node_location(0, 300) == (0, 1, 44, 1)
    assert node_location(3, 37) == (0, 1, 40, 8)
    assert node_location(8, 5) == (1, 0, 5, 1)
    assert node_location(15, 3) == (1, 1, 128, 128)
    assert node_count(TILE_WIDTH) == 2 * TILE_WIDTH - 2


# -- random sizes up to 10M: a synthetic source of the hashes the tiles hold --------------------
#
# Building 10M leaves is not needed to test where nodes are and how tiles are cut and read back:
# the hashes of the levels the tiles hold (0, 8, 16, ...) are synthetic (a hash of the address),
# every other node is derived from them as the tree does; the node store's semantics (a node
# exists when all its leaves do) is applied to the reference. The tiles of a tree of any size
# are then the prefixes of those synthetic levels.

BIG = 10_000_000


def _held(level: int, index: int) -> bytes:
    return hashlib.sha256(b"%d/%d" % (level, index)).digest()


@functools.lru_cache(maxsize=1 << 16)
def _node(level: int, index: int) -> bytes:
    if level % TILE_HEIGHT == 0:
        return _held(level, index)
    return node_hash(_node(level - 1, 2 * index), _node(level - 1, 2 * index + 1))


class SyntheticNodes:
    """The node store of a tree of ``size`` leaves over the synthetic hashes."""

    def __init__(self, size: int) -> None:
        self.size = size

    def get_nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        for level, index in ids:
            if (index + 1) << level > self.size:
                raise KeyError(f"node (level={level}, index={index}) is not stored")
        return [_node(level, index) for level, index in ids]


class SyntheticTiles:
    """The tiles of a tree of ``size`` leaves over the synthetic hashes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.reads = 0

    def get_tiles(self, ids: Sequence[TileId]) -> Mapping[TileId, bytes]:
        self.reads += 1
        out = {}
        for tile_level, index in ids:
            count = self.size >> (TILE_HEIGHT * tile_level)
            width = min(TILE_WIDTH, count - index * TILE_WIDTH)
            if width > 0:
                level = TILE_HEIGHT * tile_level
                first = index * TILE_WIDTH
                out[(tile_level, index)] = b"".join(
                    _held(level, i) for i in range(first, first + width)
                )
        return out


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(1, BIG),
    where=st.floats(0, 1, exclude_max=True),
    old_where=st.floats(0, 1),
)
def test_random_sizes_up_to_10m(size: int, where: float, old_where: float) -> None:
    index = int(where * size)
    old = int(old_where * size)
    tiles = SyntheticTiles(size)
    reader = TileNodeReader(tiles)
    nodes = SyntheticNodes(size)
    assert root_hash(size, reader) == root_hash(size, nodes)
    assert inclusion_proof(index, size, reader) == inclusion_proof(index, size, nodes)
    assert consistency_proof(old, size, reader) == consistency_proof(old, size, nodes)
    assert tiles.reads <= 3  # one batched tile read per root or proof (none if empty)
