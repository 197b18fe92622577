"""``ledger_verify`` (``manage.py verify_ledger``): every head, leaf, node and product checked
against the log; findings are stored for staff."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from traceability.ledger.keys import head_signature_is_valid, trusted_public_keys
from traceability.ledger.merkle import (
    TILE_BYTES,
    ZERO_HASH,
    Key,
    consistency_ranges,
    fold_right,
    frontier_keys,
    head_edge,
    ranges_hashes,
    tile_count,
    tile_from_levels,
    verify_consistency,
)
from traceability.ledger.records import (
    canonical_json,
    product_record,
    recall_closure_record,
    recall_record,
)
from traceability.ledger.storage import LedgerCorrupt, _fetch_nodes
from traceability.models import (
    ConsumerProduct,
    LedgerEntryKind,
    LedgerHead,
    LedgerLeaf,
    LedgerVerification,
    Recall,
    RecallClosure,
)

# --- Verification -------------------------------------------------------------------------


@dataclass
class Finding:
    kind: str
    detail: str
    product_id: str = ""
    leaf_index: int | None = None
    tree_size: int | None = None
    # For recall entries: the recall's reference (``entry`` names the entry's kind).
    reference: str = ""
    entry: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in ("", None)}


def _changed_fields(sealed: str, current: dict[str, Any]) -> list[str]:
    try:
        before = json.loads(sealed)
    except ValueError:
        return ["<sealed record unreadable>"]
    return [
        f"{k}: {before.get(k)!r} -> {current.get(k)!r}"
        for k in sorted(set(before) | set(current))
        if before.get(k) != current.get(k)
    ]


def _subject(leaf: LedgerLeaf) -> tuple[dict[str, Any], str, dict[str, str]]:
    """The current record of a leaf's row, how to name it, and the Finding fields naming it."""
    if leaf.kind == LedgerEntryKind.RECALL:
        assert leaf.recall is not None
        ref = leaf.recall.reference
        return recall_record(leaf.recall), f"recall {ref}", {"reference": ref, "entry": leaf.kind}
    if leaf.kind == LedgerEntryKind.RECALL_CLOSURE:
        assert leaf.recall_closure is not None
        ref = leaf.recall_closure.recall.reference
        named = {"reference": ref, "entry": leaf.kind}
        return recall_closure_record(leaf.recall_closure), f"closing of recall {ref}", named
    assert leaf.product is not None
    pid = leaf.product.product_id
    return product_record(leaf.product), f"product {pid}", {"product_id": pid}


def _leaves(indexes: list[int]) -> dict[int, LedgerLeaf]:
    """Leaves with their rows, for the few the stream cannot check alone or that failed."""
    return {
        leaf.leaf_index: leaf
        for leaf in LedgerLeaf.objects.select_related(
            "product", "recall__site", "recall_closure__recall"
        ).filter(leaf_index__in=indexes)
    }


# The leaves in order with what the check needs, in one server-side stream, every check made
# by PostgreSQL: whether the stored record still hashes to the sealed leaf, the entry's kind,
# whether its product row exists and its blockchain_hash matches, and whether the product's
# record as it is now (``gt_ledger_product_record``, migration ``traceability/0013``: byte for
# byte the Python record, NULL where it cannot be sure) is the stored record (which hashes to
# the leaf: one SHA-256 a leaf). Recall entries and the leaves that fail or are unsure are
# checked again from their rows in Python.
LEAVES_SQL = """
SELECT l.leaf_index, l.leaf_hash,
       sha256('\\x00'::bytea || convert_to(l.record, 'UTF8')) = l.leaf_hash,
       l.kind, p.id IS NOT NULL,
       p.blockchain_hash IS NOT DISTINCT FROM encode(l.leaf_hash, 'hex'),
       gt_ledger_product_record(p) = l.record
FROM ledger_leaves l LEFT JOIN consumer_products p ON p.id = l.product_pk
ORDER BY l.leaf_index
"""

# Every stored level in one query: its node count, first and last index, and its hashes
# concatenated in index order (compared with the rebuilt level as one bytes object).
# Every tier of ``ledger_tiles`` in one query: its tile indexes and their bytes in index order.
# Every tier of ``ledger_tiles`` in one query, as its tile count, first and last index and the
# SHA-256 of its tiles concatenated in index order (compared with the tiles rebuilt from the
# leaves as one digest; the tiles themselves are read only for a tier that differs).
TILE_TIERS_SQL = """
SELECT tile >> 56, count(*), min(tile & 72057594037927935), max(tile & 72057594037927935),
       sha256(string_agg(hashes, ''::bytea ORDER BY tile))
FROM ledger_tiles GROUP BY tile >> 56 ORDER BY tile >> 56
"""

NODE_LEVELS_SQL = """
SELECT level, count(*), min(idx), max(idx), string_agg(hash, ''::bytea ORDER BY idx)
FROM ledger_nodes GROUP BY level ORDER BY level
"""


def _levels(level0: list[bytes]) -> list[list[bytes]]:
    """Every complete subtree, level by level, rebuilt from the leaf hashes (hashlib in a
    comprehension: about a microsecond per node)."""
    levels = [level0]
    sha256 = hashlib.sha256
    while len(levels[-1]) > 1:
        cur = levels[-1]
        levels.append(
            [sha256(b"\x01" + cur[i] + cur[i + 1]).digest() for i in range(0, len(cur) - 1, 2)]
        )
    return levels


def _root(levels: list[list[bytes]], size: int) -> bytes:
    return fold_right([levels[lvl][idx] for lvl, idx in frontier_keys(size)])


def ledger_verify(*, batch_size: int = 20000) -> LedgerVerification:
    """Check the whole log against the current rows and the signed heads; store the outcome.

    1. every leaf: recompute from its row (product, recall, recall closing) as it is now,
       compare with the sealed leaf; name each entry whose record changed (and which fields);
    2. the stored leaves hash to their sealed records, and blockchain_hash matches;
    3. the tree rebuilt from the stored leaves matches every stored node, every tile proofs are
       read from, every signed root and every head's edge (the end of the proofs under it);
       the tree rebuilt from the current rows is compared with the signed roots too;
    4. every head's signature verifies with a trusted key; consecutive heads are consistent
       (RFC 9162 consistency proofs from the stored nodes);
    5. products that are not in the log are reported as unsealed (``manage.py seal_ledger``),
       and so are recalls and closings (sealed when written: missing means tampering).
    Reads one REPEATABLE READ snapshot, so concurrent appends do not cause false findings.

    Built for a million leaves in seconds: the leaves come in one server-side stream with
    every per-leaf check made by PostgreSQL (``LEAVES_SQL``), the tree is rebuilt level by level
    in Python, and each stored level is compared as one concatenation. Rows are read, and
    records built in Python, only for recall entries and for leaves that fail a check.
    """
    started = timezone.now()
    findings: list[Finding] = []
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:  # inside a caller's transaction, its snapshot rules apply
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        heads = list(LedgerHead.objects.order_by("tree_size"))
        level0: list[bytes] = []
        changed: dict[int, bytes] = {}  # leaf index -> current leaf, where it differs
        altered: list[int] = []  # stored record no longer hashes to its leaf
        hash_mismatch: list[int] = []  # blockchain_hash differs from the leaf
        orphans: list[int] = []  # leaves whose product row is gone
        recheck: list[int] = []  # recall entries, and products SQL found changed or unsure of
        product_kind = str(LedgerEntryKind.PRODUCT)
        with connection.cursor() as cursor:  # the SQL records need shortest-precise floats
            cursor.execute("SET LOCAL extra_float_digits = 1")
        with connection.chunked_cursor() as cursor:
            cursor.execute(LEAVES_SQL)
            while rows := cursor.fetchmany(batch_size):
                for index, sealed, record_ok, kind, has_row, hash_ok, current_ok in rows:
                    if index != len(level0):
                        findings.append(
                            Finding(
                                "leaf_gap",
                                f"leaf #{len(level0)} is missing",
                                leaf_index=index,
                            )
                        )
                        break
                    level0.append(bytes(sealed))
                    if not record_ok:
                        altered.append(index)
                    if kind != product_kind:
                        recheck.append(index)
                    elif not has_row:
                        orphans.append(index)
                    else:
                        if not (current_ok and record_ok):
                            recheck.append(index)
                        if not hash_ok:
                            hash_mismatch.append(index)
                else:
                    continue
                break
        size = checked = len(level0)
        for index, leaf in _leaves(recheck).items():
            record, _, _ = _subject(leaf)
            current = hashlib.sha256(b"\x00" + canonical_json(record).encode("utf-8")).digest()
            if current != level0[index]:
                changed[index] = current
        findings.extend(_leaf_findings(changed, altered, hash_mismatch, orphans))

        stored_levels = _levels(level0)
        node_findings, fetch = _check_nodes(stored_levels)
        findings.extend(node_findings)
        findings.extend(_check_tiles(stored_levels, heads[-1].tree_size if heads else 0))
        current_levels = stored_levels
        if changed:
            current0 = list(level0)
            for index, leaf in changed.items():
                current0[index] = leaf
            current_levels = _levels(current0)

        keys = trusted_public_keys()
        previous: LedgerHead | None = None
        for head in heads:
            root = bytes(head.root_hash)
            if not head_signature_is_valid(head, keys):
                findings.append(
                    Finding(
                        "bad_signature",
                        f"the signature of the head of size {head.tree_size} does not verify "
                        f"with a trusted key (key id {head.key_id})",
                        tree_size=head.tree_size,
                    )
                )
            if head.tree_size > size:
                findings.append(
                    Finding(
                        "head_beyond_log",
                        f"a head signs {head.tree_size} leaves, the log holds {size}",
                        tree_size=head.tree_size,
                    )
                )
            elif _root(stored_levels, head.tree_size) != root:
                findings.append(
                    Finding(
                        "log_rewritten",
                        f"the stored leaves no longer hash to the signed root of size "
                        f"{head.tree_size}",
                        tree_size=head.tree_size,
                    )
                )
            elif _root(current_levels, head.tree_size) != root:
                findings.append(
                    Finding(
                        "head_root_mismatch",
                        f"the current records do not hash to the signed root of size "
                        f"{head.tree_size} (see the changed records)",
                        tree_size=head.tree_size,
                    )
                )
            edge = head.edge_hashes
            if edge is not None and head.tree_size <= size:
                # What every proof under this head ends with (merkle.head_edge).
                expected = head_edge(
                    [stored_levels[lvl][idx] for lvl, idx in frontier_keys(head.tree_size)]
                )
                if bytes(edge) != expected:
                    findings.append(
                        Finding(
                            "head_edge_altered",
                            f"the stored edge of the head of size {head.tree_size} is not the "
                            "one of the stored tree: proofs under this head would not verify",
                            tree_size=head.tree_size,
                        )
                    )
            if previous is not None and head.tree_size <= size:
                try:
                    proof = ranges_hashes(
                        consistency_ranges(previous.tree_size, head.tree_size), fetch
                    )
                    consistent = verify_consistency(
                        first=previous.tree_size,
                        second=head.tree_size,
                        first_root=bytes(previous.root_hash),
                        second_root=root,
                        proof=proof,
                    )
                except LedgerCorrupt:
                    consistent = False
                if not consistent or head.timestamp_ms < previous.timestamp_ms:
                    findings.append(
                        Finding(
                            "heads_inconsistent",
                            f"the heads of sizes {previous.tree_size} and {head.tree_size} "
                            "are not consistent (no valid consistency proof, or time went back)",
                            tree_size=head.tree_size,
                        )
                    )
            previous = head

        unsealed = list(
            ConsumerProduct.objects.filter(ledger_leaf__isnull=True)
            .order_by("created_at")
            .values_list("product_id", flat=True)
        )
        for product_id in unsealed:
            findings.append(
                Finding(
                    "unsealed",
                    f"product {product_id} is not in the log (run manage.py seal_ledger)",
                    product_id,
                )
            )
        for model, entry in ((Recall, "recall"), (RecallClosure, "recall_closure")):
            for pk in model.objects.filter(ledger_leaf__isnull=True).values_list("pk", flat=True):
                findings.append(
                    Finding(
                        "unsealed",
                        f"{entry} row {pk} is not in the log: it was written outside the "
                        "services, which seal it in the same transaction",
                        entry=entry,
                    )
                )

    tampered = sorted({f.product_id or f.reference for f in findings if f.kind == "record_changed"})
    if findings:
        summary = f"{len(findings)} finding(s)"
        if tampered:
            summary += "; records changed after sealing: " + ", ".join(tampered)
    else:
        summary = f"OK: {size} leaves, {len(heads)} signed heads verified"
    return LedgerVerification.objects.create(
        started_at=started,
        finished_at=timezone.now(),
        ok=not findings,
        tree_size=size,
        heads_checked=len(heads),
        products_checked=checked,
        findings=[f.as_dict() for f in findings],
        summary=summary,
    )


def _leaf_findings(
    changed: dict[int, bytes],
    altered: list[int],
    hash_mismatch: list[int],
    orphans: list[int],
) -> list[Finding]:
    """Name the entries behind the leaves that failed a check (rows read only for those)."""
    wanted = sorted(set(changed) | set(altered) | set(hash_mismatch) | set(orphans))
    if not wanted:
        return []
    leaves = _leaves(wanted)
    findings: list[Finding] = []
    for index in wanted:
        leaf = leaves[index]
        if index in orphans:
            findings.append(
                Finding(
                    "product_gone",
                    f"the product row of leaf #{index} is gone",
                    leaf_index=index,
                )
            )
            continue
        record, name, named = _subject(leaf)
        if index in altered:
            findings.append(
                Finding(
                    "sealed_record_altered",
                    "the stored sealed record no longer hashes to its leaf",
                    leaf_index=index,
                    **named,
                )
            )
        if index in changed:
            changes = _changed_fields(leaf.record, record)
            findings.append(
                Finding(
                    "record_changed",
                    f"{name} changed after sealing: " + "; ".join(changes),
                    leaf_index=index,
                    **named,
                )
            )
        if index in hash_mismatch and leaf.product is not None:
            findings.append(
                Finding(
                    "blockchain_hash_mismatch",
                    f"consumer_products.blockchain_hash of {named['product_id']} is "
                    f"{leaf.product.blockchain_hash!r}, the leaf is {bytes(leaf.leaf_hash).hex()}",
                    leaf_index=index,
                    **named,
                )
            )
    return findings


def _check_nodes(
    levels: list[list[bytes]],
) -> tuple[list[Finding], Callable[[Iterable[Key]], dict[Key, bytes]]]:
    """Compare every complete subtree rebuilt from the stored leaves with ledger_nodes.

    Returns the findings and a reader of stored nodes for the consistency proofs: from the
    levels just read when they are whole, from the table otherwise.
    """
    findings: list[Finding] = []
    stored: dict[int, bytes] = {}  # level -> its hashes, when the level is whole (0..n-1)
    with connection.cursor() as cursor:
        cursor.execute(NODE_LEVELS_SQL)
        rows = {level: (count, low, high, bytes(blob)) for level, count, low, high, blob in cursor}
    for level in sorted(set(rows) | set(range(len(levels)))):
        current = levels[level] if level < len(levels) else []
        count, low, high, blob = rows.get(level, (0, None, None, b""))
        if count and low == 0 and high == count - 1 and len(blob) == 32 * count:
            stored[level] = blob
        if count == len(current) and blob == b"".join(current):
            continue
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT idx, hash FROM ledger_nodes WHERE level = %s ORDER BY idx", [level]
            )
            nodes = {idx: bytes(h) for idx, h in cursor.fetchall()}
        bad = [i for i, h in enumerate(current) if nodes.get(i) != h]
        extra = len(nodes) - len(current)
        if bad or extra > 0:
            findings.append(
                Finding(
                    "nodes_altered",
                    f"{len(bad)} stored node(s) at level {level} differ from the leaves "
                    f"(first at index {bad[0] if bad else '-'}), {max(extra, 0)} extra",
                )
            )

    def fetch(keys: Iterable[Key]) -> dict[Key, bytes]:
        keys = list(keys)
        found = {
            (lvl, idx): stored[lvl][32 * idx : 32 * idx + 32]
            for lvl, idx in keys
            if lvl in stored and 32 * idx < len(stored[lvl])
        }
        missing = [k for k in keys if k not in found]
        return {**found, **_fetch_nodes(missing)} if missing else found

    return findings, fetch


def _check_tiles(levels: list[list[bytes]], head_size: int) -> list[Finding]:
    """Compare every stored tile with the tree rebuilt from the stored leaves.

    Tiles are written when a head is signed, so they should be those of the log at the latest
    head's size (``head_size``): each tier is compared as one digest. Where a tier differs, its
    tiles are compared one by one: a slot may be zero (the node was not complete when the tile
    was written, or its head was signed by other means: proofs then read ledger_nodes); any
    other slot must be the node, or the proofs read from it would not verify.
    """
    findings: list[Finding] = []
    with connection.cursor() as cursor:
        cursor.execute(TILE_TIERS_SQL)
        tiers = cursor.fetchall()
    for tier, count, low, high, digest in tiers:
        expected_count = tile_count(tier, head_size)
        if (count, low, high) == (expected_count, 0, expected_count - 1):
            expected = hashlib.sha256()
            for index in range(expected_count):
                expected.update(tile_from_levels(levels, tier, index, head_size))
            if expected.digest() == bytes(digest):
                continue
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT tile & 72057594037927935, hashes FROM ledger_tiles "
                "WHERE tile >> 56 = %s ORDER BY tile",
                [tier],
            )
            stored_tiles = [(index, bytes(hashes)) for index, hashes in cursor]
        bad = []
        for index, stored in stored_tiles:
            actual = tile_from_levels(levels, tier, index)
            if len(stored) != TILE_BYTES or any(
                stored[i : i + 32] not in (ZERO_HASH, actual[i : i + 32])
                for i in range(0, TILE_BYTES, 32)
            ):
                bad.append(index)
        if bad:
            findings.append(
                Finding(
                    "tiles_altered",
                    f"{len(bad)} stored tile(s) of tier {tier} (levels {4 * tier}-"
                    f"{4 * tier + 3}) differ from the leaves (first at index {bad[0]}): "
                    "proofs read from them would not verify",
                )
            )
    return findings
