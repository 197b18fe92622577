"""RFC 9162 Merkle trees, pure functions: leaf and node hashes, subtree ranges, the
compact frontier, roots, inclusion and consistency proofs and their verification."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()

Key = tuple[int, int]  # (level, index) of a complete subtree


# --- Hashing (RFC 9162 §2.1.1) ------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_keys(start: int, end: int) -> list[Key]:
    """The complete subtrees, largest first, whose leaves are exactly [start, end).

    Valid for the ranges RFC 9162's recursions produce: ``start`` is a multiple of the largest
    power of two not above ``end - start``.
    """
    keys: list[Key] = []
    pos, size = start, end - start
    while size:  # one turn per set bit of the size, largest first
        level = size.bit_length() - 1
        keys.append((level, pos >> level))
        pos += 1 << level
        size -= 1 << level
    return keys


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from its complete subtrees (largest first): H(a, H(b, H(c, d)))."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose roots form PATH(index, D[0:size]) (RFC 9162 §2.1.3.1), bottom up."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    start, end, m = 0, size, index
    while end - start > 1:
        k = _split(end - start)
        if m < k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m = start + k, m - k
    return list(reversed(ranges))


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The leaf ranges of PROOF(first, D[0:second]) (RFC 9162 §2.1.4.1), in proof order."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    ranges: list[tuple[int, int]] = []
    start, end, m, whole = 0, second, first, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        ranges.append((start, end))
    return list(reversed(ranges))


def frontier_keys(size: int) -> list[Key]:
    """The complete subtrees that make up a tree of ``size`` leaves, largest first."""
    return range_keys(0, size)


class Frontier:
    """The compact frontier of a log: enough to append and to compute the root (O(log n))."""

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        keys = frontier_keys(size)
        if len(keys) != len(hashes):
            raise ValueError(f"a frontier of size {size} has {len(keys)} nodes, not {len(hashes)}")
        self.size = size
        self.nodes: list[tuple[int, int, bytes]] = [
            (lvl, idx, h) for (lvl, idx), h in zip(keys, hashes, strict=True)
        ]

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; return the complete subtrees it completes, the leaf first."""
        created = [(0, self.size, leaf)]
        h, level, index = leaf, 0, self.size
        while self.nodes and self.nodes[-1][0] == level:
            _, left_index, left = self.nodes.pop()
            h, level, index = node_hash(left, h), level + 1, left_index >> 1
            created.append((level, index, h))
        self.nodes.append((level, index, h))
        self.size += 1
        return created

    def root(self) -> bytes:
        return fold_right([h for _, _, h in self.nodes])


class MemoryLog:
    """The same log with its nodes in a dict: used by the benchmark and the tests."""

    def __init__(self) -> None:
        self.nodes: dict[Key, bytes] = {}
        self.frontier = Frontier()

    @property
    def size(self) -> int:
        return self.frontier.size

    def append(self, leaf: bytes) -> None:
        for level, index, h in self.frontier.append(leaf):
            self.nodes[(level, index)] = h

    def _fetch(self, keys: Iterable[Key]) -> dict[Key, bytes]:
        return {k: self.nodes[k] for k in keys}

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        return fold_right([self.nodes[k] for k in range_keys(0, size)])

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return ranges_hashes(inclusion_ranges(index, size), self._fetch)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        if first == second:
            return []
        return ranges_hashes(consistency_ranges(first, second), self._fetch)


def ranges_hashes(
    ranges: Sequence[tuple[int, int]], fetch: Callable[[Iterable[Key]], dict[Key, bytes]]
) -> list[bytes]:
    """The hash of each range of leaves, folded from its complete subtrees (``fetch`` reads
    them: a dict here, ``ledger_nodes`` in ``storage``)."""
    keys = [range_keys(start, end) for start, end in ranges]
    nodes = fetch(k for range_ in keys for k in range_)
    return [nodes[ks[0]] if len(ks) == 1 else fold_right([nodes[k] for k in ks]) for ks in keys]


# --- A head's edge (``ledger_heads.edge_hashes``) --------------------------------------------
# Under a head of n leaves, the audit path of leaf i is: the siblings of i's ancestors at levels
# 0..L-1, where L is the highest bit in which i and n differ (i lies in the complete subtree of
# the head's frontier at level L, whose nodes never change); then, when n has bits below L, the
# hash of the leaves right of that subtree (the head's frontier nodes below L, folded); then the
# head's frontier nodes above L, lowest first. Those last two depend only on the head: its edge,
# written once when the head is signed (one hash a set bit of n, and one fold a set bit but the
# lowest), so that a proof needs only the leaf's complete siblings from ``ledger_tiles``.


def head_edge(frontier: Sequence[bytes]) -> bytes:
    """The edge of a head from its frontier nodes (largest first, as ``frontier_keys``): the
    frontier nodes lowest first, then for each set bit of the size but the lowest, the fold of
    the frontier nodes below it (``edge_path`` reads them)."""
    ascending = list(reversed(frontier))
    folds: list[bytes] = []
    acc = b""
    for k, node in enumerate(ascending[:-1]):
        acc = node if k == 0 else node_hash(node, acc)
        folds.append(acc)
    return b"".join(ascending) + b"".join(folds)


def edge_split(index: int, size: int) -> int:
    """L: how many of leaf ``index``'s path nodes, bottom up, are siblings inside the complete
    subtree of the head's frontier that holds the leaf (``0 <= index < size``)."""
    return (index ^ size).bit_length() - 1


def edge_path(index: int, size: int, edge: bytes) -> list[bytes] | None:
    """The head-dependent end of leaf ``index``'s audit path under a head of ``size`` leaves,
    from the head's edge (``head_edge``); None when ``edge`` is not an edge of that size."""
    count = size.bit_count()
    if len(edge) != 32 * (2 * count - 1):
        return None
    split = edge_split(index, size)
    below = (size & ((1 << split) - 1)).bit_count()  # set bits below L: L is the next one
    tail = [edge[32 * k : 32 * k + 32] for k in range(below + 1, count)]
    if below:
        fold = 32 * (count + below - 1)
        tail.insert(0, edge[fold : fold + 32])
    return tail


# --- Tiles (``ledger_tiles``) ---------------------------------------------------------------
# Tier t, tile k holds every node of levels 4t..4t+3 under node (4t + 4, k): level 4t + j at
# slots TILE_OFFSETS[j] + i - (k << (4 - j)), 32 bytes a slot, zeros where a node is missing.

TILE_HEIGHT = 4
TILE_OFFSETS = (0, 16, 24, 28)
TILE_SLOTS = 30
TILE_BYTES = 32 * TILE_SLOTS
ZERO_HASH = bytes(32)


def tile_key(tier: int, index: int) -> int:
    """The ``ledger_tiles`` key of tile ``index`` of ``tier``."""
    return tier << 56 | index


def tile_position(level: int, index: int) -> tuple[int, int]:
    """(tile key, byte offset) of node (level, index) in ``ledger_tiles``."""
    j = level & 3
    tile = index >> (TILE_HEIGHT - j)
    return tile_key(level >> 2, tile), 32 * (TILE_OFFSETS[j] + index - (tile << (TILE_HEIGHT - j)))


def tile_from_levels(
    levels: Sequence[Sequence[bytes]], tier: int, tile: int, size: int | None = None
) -> bytes:
    """A tile's bytes from the tree's levels, as ``ledger_write_tiles`` writes it once the log
    holds ``size`` leaves (default: all of ``levels[0]``): zeros for the nodes not complete."""
    size = len(levels[0]) if size is None else size
    parts = []
    for j in range(TILE_HEIGHT):
        width = 1 << (TILE_HEIGHT - j)
        level = 4 * tier + j
        end = min((tile + 1) * width, size >> level)
        nodes = levels[level][tile * width : end] if level < len(levels) else []
        parts.append(b"".join(nodes) + ZERO_HASH * (width - len(nodes)))
    return b"".join(parts)


def tile_count(tier: int, size: int) -> int:
    """How many tiles of ``tier`` a log of ``size`` leaves has (``ledger_write_tiles``)."""
    if size == 0 or tier and not (size - 1) >> (4 * tier):
        return 0
    return ((size - 1) >> (4 * tier + 4)) + 1


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The root of a list of leaf hashes, via the frontier (O(n) time, O(log n) memory)."""
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


# --- RFC 9162 verification algorithms (§2.1.3.2 and §2.1.4.2) -----------------------------


def verify_inclusion(
    *, index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes
) -> bool:
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    *, first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    if first == second:
        return not proof and first_root == second_root
    if not 0 < first < second or not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0
