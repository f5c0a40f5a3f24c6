"""Tests for auditkeep.integrity.merkle: CT vectors, exhaustive small trees, properties."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditkeep.integrity import merkle
from auditkeep.integrity.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MemoryNodeStore,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    parse_hash_hex,
    root_from_leaves,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex

# Certificate Transparency reference tree (google/certificate-transparency, also in
# transparency-dev/merkle proof/verify_test.go).
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
CT_LEAF_HASHES = [leaf_hash(d) for d in CT_LEAVES]
CT_ROOTS = {  # tree size -> root
    1: h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    2: h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    3: h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    4: h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    5: h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    6: h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    7: h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    8: h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
}
CT_INCLUSION = [  # (0-based leaf index, tree size, proof)
    (0, 1, []),
    (
        0,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]
CT_CONSISTENCY = [  # (old size, new size, proof)
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")

CT_STORE, _ = MemoryNodeStore.from_leaf_hashes(CT_LEAF_HASHES)

# A larger tree of distinct leaves shared by the property tests. Perfect nodes never change
# as the tree grows, so this one store serves proofs for every size up to BIG_N.
BIG_N = 4100
BIG_LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(BIG_N)]
BIG_STORE, BIG_TREE = MemoryNodeStore.from_leaf_hashes(BIG_LEAVES)


class CountingReader:
    """NodeReader wrapper that records every batch it is asked for."""

    def __init__(self, inner: merkle.NodeReader) -> None:
        self.inner = inner
        self.calls: list[list[tuple[int, int]]] = []

    def get_nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        self.calls.append(list(ids))
        return self.inner.get_nodes(ids)


class FakeReader:
    """NodeReader over a tree too large to build: returns a distinct dummy hash per node."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[int, int]]] = []

    def get_nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        self.calls.append(list(ids))
        return [hashlib.sha256(f"{level}/{index}".encode()).digest() for level, index in ids]


# --- Reference implementations written straight from RFC 9162 section 2.1 (test oracles) ---


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) from RFC 9162 section 2.1.3.1."""
    n = len(leaves)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, leaves[:k]), root_from_leaves(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), root_from_leaves(leaves[:k])]


def ref_subproof(m: int, leaves: Sequence[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) from RFC 9162 section 2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if b else [root_from_leaves(leaves)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], b), root_from_leaves(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), root_from_leaves(leaves[:k])]


def inclusion_shape(index: int, size: int) -> list[bool]:
    """Which side each proof hash is hashed on (True: left) in RFC 9162's verifier loop."""
    fn, sn, shape = index, size - 1, []
    while sn:
        left = bool(fn & 1 or fn == sn)
        shape.append(left)
        if left:
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        fn, sn = fn >> 1, sn >> 1
    return shape


def consistency_shape(m: int, n: int) -> tuple[bool, list[bool]]:
    """(old root prepended?, side of each further hash) in RFC 9162's consistency loop."""
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    return m & (m - 1) == 0, inclusion_shape(fn, sn + 1)


def flip_bit(b: bytes, bit: int) -> bytes:
    out = bytearray(b)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- Hashing and reference vectors ---


def test_hash_primitives() -> None:
    empty_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert EMPTY_ROOT.hex() == empty_sha256
    assert root_from_leaves([]) == EMPTY_ROOT
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert CT_LEAF_HASHES[0] == CT_ROOTS[1]
    a, b = CT_LEAF_HASHES[:2]
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest() == CT_ROOTS[2]


@pytest.mark.parametrize("size", sorted(CT_ROOTS))
def test_ct_roots(size: int) -> None:
    assert root_from_leaves(CT_LEAF_HASHES[:size]) == CT_ROOTS[size]
    assert root_hash(size, CT_STORE) == CT_ROOTS[size]
    assert CompactRange.from_reader(size, CT_STORE).root() == CT_ROOTS[size]
    tree = CompactRange()
    for leaf in CT_LEAF_HASHES[:size]:
        tree.append(leaf)
    assert tree.root() == CT_ROOTS[size]


def inclusion_probes(
    index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes
) -> list[tuple[str, Callable[[], None]]]:
    """The corruptions transparency-dev/merkle applies to its known-good inclusion proofs."""

    def probe(i: int, n: int, lf: bytes, p: list[bytes], r: bytes) -> Callable[[], None]:
        return lambda: verify_inclusion(lf, i, n, p, r)

    probes = [
        ("index - 1", probe(index - 1, size, leaf, proof, root)),
        ("index + 1", probe(index + 1, size, leaf, proof, root)),
        ("index ^ 2", probe(index ^ 2, size, leaf, proof, root)),
        ("size * 2", probe(index, size * 2, leaf, proof, root)),
        ("size // 2", probe(index, size // 2, leaf, proof, root)),
        ("wrong leaf", probe(index, size, b"WrongLeaf", proof, root)),
        ("empty root", probe(index, size, leaf, proof, EMPTY_ROOT)),
        ("random root", probe(index, size, leaf, proof, SOME_HASH)),
        ("trailing garbage", probe(index, size, leaf, [*proof, b""], root)),
        ("trailing root", probe(index, size, leaf, [*proof, root], root)),
        ("preceding garbage", probe(index, size, leaf, [b"", *proof], root)),
        ("preceding root", probe(index, size, leaf, [root, *proof], root)),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = flip_bit(bad[i], 3)
        probes.append((f"proof[{i}] bit 3", probe(index, size, leaf, bad, root)))
    if proof:
        probes.append(("removed last", probe(index, size, leaf, proof[:-1], root)))
    if len(proof) > 1:
        inserted = [proof[0], SOME_HASH, *proof[1:]]
        probes.append(("inserted", probe(index, size, leaf, inserted, root)))
    return probes


@pytest.mark.parametrize(("index", "size", "expected"), CT_INCLUSION)
def test_ct_inclusion_vectors(index: int, size: int, expected: list[bytes]) -> None:
    assert inclusion_proof(index, size, CT_STORE) == expected
    leaf, root = CT_LEAF_HASHES[index], CT_ROOTS[size]
    verify_inclusion(leaf, index, size, expected, root)
    for desc, run in inclusion_probes(index, size, expected, root, leaf):
        with pytest.raises(ProofError):
            run()
            pytest.fail(f"corruption {desc!r} verified")


def consistency_probes(
    m: int, n: int, proof: list[bytes], r1: bytes, r2: bytes
) -> list[tuple[str, Callable[[], None]]]:
    """The corruptions transparency-dev/merkle applies to its known-good consistency proofs."""

    def probe(a: int, b: int, x: bytes, y: bytes, p: list[bytes]) -> Callable[[], None]:
        return lambda: verify_consistency(a, b, x, y, p)

    probes = [
        ("m - 1", probe(m - 1, n, r1, r2, proof)),
        ("m + 1", probe(m + 1, n, r1, r2, proof)),
        ("m ^ 2", probe(m ^ 2, n, r1, r2, proof)),
        ("n * 2", probe(m, n * 2, r1, r2, proof)),
        ("n // 2", probe(m, n // 2, r1, r2, proof)),
        ("wrong old root", probe(m, n, b"WrongRoot", r2, proof)),
        ("wrong new root", probe(m, n, r1, b"WrongRoot", proof)),
        ("swapped roots", probe(m, n, r2, r1, proof)),
        ("empty proof", probe(m, n, r1, r2, [])),
        ("trailing garbage", probe(m, n, r1, r2, [*proof, b""])),
        ("trailing old root", probe(m, n, r1, r2, [*proof, r1])),
        ("trailing new root", probe(m, n, r1, r2, [*proof, r2])),
        ("preceding garbage", probe(m, n, r1, r2, [b"", *proof])),
        ("preceding old root", probe(m, n, r1, r2, [r1, *proof])),
        ("preceding new root", probe(m, n, r1, r2, [r2, *proof])),
        ("preceding proof[0]", probe(m, n, r1, r2, [proof[0], *proof])),
        ("truncated", probe(m, n, r1, r2, proof[:-1])),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = flip_bit(bad[i], 4)
        probes.append((f"proof[{i}] bit 4", probe(m, n, r1, r2, bad)))
    return probes


@pytest.mark.parametrize(("m", "n", "expected"), CT_CONSISTENCY)
def test_ct_consistency_vectors(m: int, n: int, expected: list[bytes]) -> None:
    assert consistency_proof(m, n, CT_STORE) == expected
    verify_consistency(m, n, CT_ROOTS[m], CT_ROOTS[n], expected)
    if not expected:
        return
    for desc, run in consistency_probes(m, n, expected, CT_ROOTS[m], CT_ROOTS[n]):
        with pytest.raises(ProofError):
            run()
            pytest.fail(f"corruption {desc!r} verified")


# --- Exhaustive small trees ---


def test_inclusion_exhaustive_small_trees() -> None:
    for size in range(1, 66):
        leaves = BIG_LEAVES[:size]
        root = root_from_leaves(leaves)
        assert root_hash(size, BIG_STORE) == root
        for index in range(size):
            proof = inclusion_proof(index, size, BIG_STORE)
            assert proof == ref_path(index, leaves)
            assert len(proof) == merkle._inclusion_proof_length(index, size)
            verify_inclusion(leaves[index], index, size, proof, root)


def test_consistency_exhaustive_small_trees() -> None:
    roots = [root_from_leaves(BIG_LEAVES[:n]) for n in range(66)]
    for n in range(66):
        for m in range(n + 1):
            proof = consistency_proof(m, n, BIG_STORE)
            if 0 < m < n:
                assert proof == ref_subproof(m, BIG_LEAVES[:n], True)
                assert len(proof) == merkle._consistency_proof_length(m, n)
            else:
                assert proof == []
            verify_consistency(m, n, roots[m], roots[n], proof)


def test_compact_range_every_size_and_created_nodes() -> None:
    tree = CompactRange()
    assert tree.root() == EMPTY_ROOT
    for size, leaf in enumerate(BIG_LEAVES[:300]):
        created = tree.append(leaf)
        new_size = size + 1
        assert tree.size == new_size
        assert tree.root() == root_from_leaves(BIG_LEAVES[:new_size])
        # One node per trailing 1-bit of the old size, plus the leaf itself.
        assert len(created) == (size ^ new_size).bit_length()
        assert created[0] == (0, size, leaf)
        for level, index, node in created:
            assert (index + 1) << level == new_size  # each ends exactly at the new size
            assert node == root_from_leaves(BIG_LEAVES[index << level : (index + 1) << level])


def test_store_holds_exactly_the_perfect_subtrees() -> None:
    # 2n - popcount(n) perfect subtrees in a tree of n leaves.
    assert len(BIG_STORE) == 2 * BIG_N - BIG_N.bit_count()
    assert BIG_TREE.root() == root_from_leaves(BIG_LEAVES)


# --- Property tests on the shared 4100-leaf tree ---

sizes = st.integers(min_value=1, max_value=BIG_N)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), size=sizes)
def test_inclusion_property(data: st.DataObject, size: int) -> None:
    index = data.draw(st.integers(0, size - 1), label="index")
    leaves = BIG_LEAVES[:size]
    root = root_from_leaves(leaves)
    reader = CountingReader(BIG_STORE)
    proof = inclusion_proof(index, size, reader)
    assert proof == ref_path(index, leaves)
    assert len(reader.calls) == (1 if size > 1 else 0)
    verify_inclusion(leaves[index], index, size, proof, root)

    # Any single-bit change to the leaf, the root or a proof hash is detected.
    bit = data.draw(st.integers(0, 255), label="bit")
    with pytest.raises(ProofError):
        verify_inclusion(flip_bit(leaves[index], bit), index, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaves[index], index, size, proof, flip_bit(root, bit))
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1), label="which")
        bad = list(proof)
        bad[which] = flip_bit(bad[which], bit)
        with pytest.raises(ProofError):
            verify_inclusion(leaves[index], index, size, bad, root)

    # A different index or size fails, unless it walks the identical hashing path: the
    # hashes do not commit to (index, size), which is why both must come from a checkpoint.
    other_index = data.draw(st.integers(0, 2 * BIG_N), label="other_index")
    other_size = data.draw(st.integers(0, 2 * BIG_N), label="other_size")
    for i, n in [(other_index, size), (index, other_size), (other_index, other_size)]:
        if (i, n) == (index, size):
            continue
        if i < n and inclusion_shape(i, n) == inclusion_shape(index, size):
            verify_inclusion(leaves[index], i, n, proof, root)
        else:
            with pytest.raises(ProofError):
                verify_inclusion(leaves[index], i, n, proof, root)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), n=sizes)
def test_consistency_property(data: st.DataObject, n: int) -> None:
    m = data.draw(st.integers(1, n), label="m")
    old_root = root_from_leaves(BIG_LEAVES[:m])
    new_root = root_from_leaves(BIG_LEAVES[:n])
    reader = CountingReader(BIG_STORE)
    proof = consistency_proof(m, n, reader)
    assert proof == (ref_subproof(m, BIG_LEAVES[:n], True) if m < n else [])
    assert len(reader.calls) == (1 if m < n else 0)
    verify_consistency(m, n, old_root, new_root, proof)
    if m == n:
        return

    bit = data.draw(st.integers(0, 255), label="bit")
    with pytest.raises(ProofError):
        verify_consistency(m, n, flip_bit(old_root, bit), new_root, proof)
    with pytest.raises(ProofError):
        verify_consistency(m, n, old_root, flip_bit(new_root, bit), proof)
    which = data.draw(st.integers(0, len(proof) - 1), label="which")
    bad = list(proof)
    bad[which] = flip_bit(bad[which], bit)
    with pytest.raises(ProofError):
        verify_consistency(m, n, old_root, new_root, bad)

    other_m = data.draw(st.integers(0, 2 * BIG_N), label="other_m")
    other_n = data.draw(st.integers(0, 2 * BIG_N), label="other_n")
    for a, b in [(other_m, n), (m, other_n), (other_m, other_n)]:
        if (a, b) == (m, n):
            continue
        if 0 < a < b and consistency_shape(a, b) == consistency_shape(m, n):
            verify_consistency(a, b, old_root, new_root, proof)  # same path: see inclusion
        else:
            with pytest.raises(ProofError):
                verify_consistency(a, b, old_root, new_root, proof)


@settings(max_examples=100, deadline=None)
@given(size=st.integers(0, BIG_N))
def test_compact_range_from_reader_and_serialisation(size: int) -> None:
    reader = CountingReader(BIG_STORE)
    tree = CompactRange.from_reader(size, reader)
    assert len(reader.calls) == (1 if size else 0)
    assert tree.size == size
    assert tree.root() == root_from_leaves(BIG_LEAVES[:size]) == root_hash(size, BIG_STORE)
    assert CompactRange.from_bytes(tree.to_bytes()) == tree
    assert len(tree.to_bytes()) == 8 + 32 * size.bit_count()
    # Resuming from the loaded frontier produces the same nodes the original writer stored.
    if size < BIG_N:
        created = tree.append(BIG_LEAVES[size])
        ids = [(level, index) for level, index, _ in created]
        assert [node for _, _, node in created] == BIG_STORE.get_nodes(ids)


def test_proofs_at_ten_million_read_logarithmically_many_nodes() -> None:
    size = 10_000_000
    for build in (
        lambda r: inclusion_proof(0, size, r),
        lambda r: inclusion_proof(size - 1, size, r),
        lambda r: inclusion_proof(6_543_210, size, r),
        lambda r: consistency_proof(9_999_999, size, r),
        lambda r: consistency_proof(4_194_304, size, r),
        lambda r: consistency_proof(1_234_567, size, r),
        lambda r: root_hash(size, r),
    ):
        reader = FakeReader()
        build(reader)
        assert len(reader.calls) == 1
        assert len(reader.calls[0]) <= 2 * size.bit_length()
        assert len(set(reader.calls[0])) == len(reader.calls[0])


# --- Precise errors and edge cases ---


def test_inclusion_error_messages() -> None:
    leaves = BIG_LEAVES[:9]
    root = root_from_leaves(leaves)
    proof = inclusion_proof(5, 9, BIG_STORE)
    with pytest.raises(
        ProofError,
        match=r"^inclusion proof has 3 hashes, expected 4 for index 5 in a tree of size 9$",
    ):
        verify_inclusion(leaves[5], 5, 9, proof[:3], root)
    with pytest.raises(ProofError, match=r"inclusion proof has 5 hashes, expected 4"):
        verify_inclusion(leaves[5], 5, 9, [*proof, SOME_HASH], root)
    with pytest.raises(
        ProofError,
        match=rf"^recomputed root [0-9a-f]{{64}} does not match expected root {SOME_HASH.hex()} "
        r"\(leaf index 5, tree size 9\)$",
    ):
        verify_inclusion(leaves[5], 5, 9, proof, SOME_HASH)
    with pytest.raises(ProofError, match=r"^leaf index 9 is out of range for a tree of size 9$"):
        verify_inclusion(leaves[5], 9, 9, proof, root)
    with pytest.raises(ProofError, match=r"must not be negative"):
        verify_inclusion(leaves[5], -1, 9, proof, root)
    with pytest.raises(ProofError, match=r"^leaf hash is 3 bytes, expected 32$"):
        verify_inclusion(b"abc", 5, 9, proof, root)
    with pytest.raises(ProofError, match=r"^root is 0 bytes, expected 32$"):
        verify_inclusion(leaves[5], 5, 9, proof, b"")
    with pytest.raises(ProofError, match=r"^inclusion proof hash 1 is 31 bytes, expected 32$"):
        verify_inclusion(leaves[5], 5, 9, [proof[0], proof[1][:31], *proof[2:]], root)
    with pytest.raises(ProofError, match=r"out of range for a tree of size 0"):
        verify_inclusion(leaves[0], 0, 0, [], EMPTY_ROOT)


def test_single_leaf_tree() -> None:
    leaf = leaf_hash(b"data")
    verify_inclusion(leaf, 0, 1, [], leaf)
    with pytest.raises(ProofError, match=r"does not match"):
        verify_inclusion(leaf, 0, 1, [], SOME_HASH)
    with pytest.raises(ProofError, match=r"has 1 hashes, expected 0"):
        verify_inclusion(leaf, 0, 1, [leaf], leaf)


def test_consistency_edge_cases_and_messages() -> None:
    r = [root_from_leaves(BIG_LEAVES[:n]) for n in range(10)]
    # Always-consistent cases need an empty proof.
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 5, EMPTY_ROOT, r[5], [])
    verify_consistency(5, 5, r[5], r[5], [])
    with pytest.raises(ProofError, match=r"^old tree size 5 is larger than new tree size 3$"):
        verify_consistency(5, 3, r[5], r[3], [])
    with pytest.raises(ProofError, match=r"must not be negative"):
        verify_consistency(-1, 3, r[1], r[3], [])
    with pytest.raises(ProofError, match=r"is not the empty-tree hash .* \(old tree size 0\)"):
        verify_consistency(0, 5, r[1], r[5], [])
    with pytest.raises(ProofError, match=r"from the empty tree must be empty, got 1 hashes"):
        verify_consistency(0, 5, EMPTY_ROOT, r[5], [r[1]])
    with pytest.raises(ProofError, match=r"^consistency proof between equal tree sizes \(5\)"):
        verify_consistency(5, 5, r[5], r[5], [r[1]])
    with pytest.raises(ProofError, match=r"^roots differ for the same tree size 5"):
        verify_consistency(5, 5, r[5], r[6], [])
    with pytest.raises(ProofError, match=r"^roots differ for the same tree size 0"):
        verify_consistency(0, 0, EMPTY_ROOT, r[1], [])
    proof = consistency_proof(3, 9, BIG_STORE)
    assert len(proof) == 5
    with pytest.raises(
        ProofError, match=r"^consistency proof has 0 hashes, expected 5 for tree sizes 3 -> 9$"
    ):
        verify_consistency(3, 9, r[3], r[9], [])
    with pytest.raises(
        ProofError, match=r"^consistency proof has 4 hashes, expected 5 for tree sizes 3 -> 9$"
    ):
        verify_consistency(3, 9, r[3], r[9], proof[:4])
    with pytest.raises(ProofError, match=r"has 6 hashes, expected 5"):
        verify_consistency(3, 9, r[3], r[9], [*proof, SOME_HASH])
    with pytest.raises(ProofError, match=r"^recomputed old root .* does not match expected old"):
        verify_consistency(3, 9, r[4], r[9], proof)
    with pytest.raises(ProofError, match=r"^recomputed new root .* does not match expected new"):
        verify_consistency(3, 9, r[3], r[8], proof)
    with pytest.raises(ProofError, match=r"^old root is 1 bytes, expected 32$"):
        verify_consistency(3, 9, b"x", r[9], proof)
    with pytest.raises(ProofError, match=r"^new root is 1 bytes, expected 32$"):
        verify_consistency(3, 9, r[3], b"x", proof)
    with pytest.raises(ProofError, match=r"^consistency proof hash 0 is 0 bytes, expected 32$"):
        verify_consistency(3, 9, r[3], r[9], [b"", *proof])


def test_docs_worked_examples() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "verification.md").read_text()
    store, tree = MemoryNodeStore.from_leaf_hashes(CT_LEAF_HASHES[:5])
    for level, index in [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 0), (1, 1), (2, 0)]:
        assert f"| ({level}, {index}) |" in doc
        assert store.get_nodes([(level, index)])[0].hex() in doc
    assert len(store) == 8
    for i, node in enumerate(inclusion_proof(2, 5, store)):
        assert f"{i}: {node.hex()}" in doc
    for i, node in enumerate(consistency_proof(3, 5, store)):
        assert f"{i}: {node.hex()}" in doc
    assert CT_ROOTS[5].hex() in doc and CT_ROOTS[3].hex() in doc
    assert tree.to_bytes().hex()[:16] == "0000000000000005"


def test_documented_size_ambiguity() -> None:
    # Leaf 2 of the 3-leaf tree and leaf 1 of a 2-leaf tree are proven by the same hashing
    # path, so one proof "verifies" for both claims against the same root. Proofs are only
    # meaningful for a (size, root) pair taken from one signed checkpoint.
    leaves = CT_LEAF_HASHES
    proof = inclusion_proof(2, 3, CT_STORE)
    verify_inclusion(leaves[2], 2, 3, proof, CT_ROOTS[3])
    verify_inclusion(leaves[2], 1, 2, proof, CT_ROOTS[3])


def test_proof_builder_argument_errors() -> None:
    with pytest.raises(ValueError, match=r"^leaf index 8 is out of range for a tree of size 8$"):
        inclusion_proof(8, 8, CT_STORE)
    with pytest.raises(ValueError, match=r"out of range for a tree of size 0"):
        inclusion_proof(0, 0, CT_STORE)
    with pytest.raises(ValueError, match=r"^old tree size 5 is larger than new tree size 4$"):
        consistency_proof(5, 4, CT_STORE)
    with pytest.raises(ValueError, match=r"tree size must be between 0 and 2\*\*64-1"):
        root_hash(-1, CT_STORE)
    with pytest.raises(ValueError, match=r"new tree size must be between"):
        consistency_proof(0, 2**64, CT_STORE)
    with pytest.raises(KeyError, match=r"node \(level=0, index=8\) is not stored"):
        inclusion_proof(0, 9, CT_STORE)
    assert root_hash(0, CT_STORE) == EMPTY_ROOT
    assert consistency_proof(0, 8, CT_STORE) == []
    assert consistency_proof(8, 8, CT_STORE) == []


def test_reader_returning_wrong_count_is_rejected() -> None:
    class ShortReader:
        def get_nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
            return [SOME_HASH]

    with pytest.raises(ValueError, match=r"^NodeReader returned 1 hashes for 3 node ids$"):
        inclusion_proof(0, 8, ShortReader())


def test_memory_store_is_write_once() -> None:
    store = MemoryNodeStore()
    store.put_nodes([(0, 0, SOME_HASH)])
    store.put_nodes([(0, 0, SOME_HASH)])  # idempotent
    assert len(store) == 1
    with pytest.raises(ValueError, match=r"node \(level=0, index=0\) is already stored"):
        store.put_nodes([(0, 0, EMPTY_ROOT)])
    with pytest.raises(ValueError, match=r"node \(level=1, index=0\) hash is 2 bytes"):
        store.put_nodes([(1, 0, b"ab")])
    assert store.get_nodes([(0, 0)]) == [SOME_HASH]
    with pytest.raises(KeyError, match=r"node \(level=3, index=1\) is not stored"):
        store.get_nodes([(0, 0), (3, 1)])


def test_compact_range_validation_copy_and_repr() -> None:
    with pytest.raises(ValueError, match=r"^a tree of size 3 has 2 frontier hashes, got 1$"):
        CompactRange(3, [SOME_HASH])
    with pytest.raises(ValueError, match=r"^frontier hash 1 is 3 bytes, expected 32$"):
        CompactRange(3, [SOME_HASH, b"abc"])
    with pytest.raises(ValueError, match=r"tree size must be between"):
        CompactRange(-1)
    with pytest.raises(ValueError, match=r"^compact range encoding is 3 bytes, expected at least"):
        CompactRange.from_bytes(b"abc")
    with pytest.raises(ValueError, match=r"^compact range encoding for size 3 must be 72 bytes"):
        CompactRange.from_bytes((3).to_bytes(8, "big") + SOME_HASH)
    with pytest.raises(ValueError, match=r"^leaf hash is 4 bytes, expected 32$"):
        CompactRange().append(b"leaf")
    full = CompactRange(2**64 - 1, [SOME_HASH] * 64)
    with pytest.raises(ValueError, match=r"tree is full"):
        full.append(SOME_HASH)

    tree = CompactRange.from_reader(5, CT_STORE)
    snapshot = tree.copy()
    tree.append(CT_LEAF_HASHES[5])
    assert snapshot.size == 5 and tree.size == 6
    assert snapshot.root() == CT_ROOTS[5] and tree.root() == CT_ROOTS[6]
    assert snapshot != tree and snapshot != "not a range"
    assert snapshot.hashes == (root_from_leaves(CT_LEAF_HASHES[:4]), CT_LEAF_HASHES[4])
    assert repr(snapshot) == f"CompactRange(size=5, root={CT_ROOTS[5].hex()})"


def test_parse_hash_hex() -> None:
    assert parse_hash_hex(CT_ROOTS[8].hex()) == CT_ROOTS[8]
    assert parse_hash_hex(CT_ROOTS[8].hex().upper()) == CT_ROOTS[8]
    with pytest.raises(ValueError, match=r"must be 64 hex digits, got 3 characters"):
        parse_hash_hex("abc")
    with pytest.raises(ValueError, match=r"not a hex digit"):
        parse_hash_hex("g" * 64)
