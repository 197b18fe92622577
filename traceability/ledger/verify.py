"""``ledger_verify`` (``manage.py verify_ledger``): every head, leaf, node and product checked
against the log; findings are stored for staff."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from traceability.ledger.keys import head_signature_is_valid, trusted_public_keys
from traceability.ledger.merkle import Frontier, leaf_hash, node_hash, verify_consistency
from traceability.ledger.records import (
    canonical_json,
    product_record,
    recall_closure_record,
    recall_record,
)
from traceability.ledger.storage import LedgerCorrupt, consistency_proof
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


def ledger_verify(*, batch_size: int = 2000) -> LedgerVerification:
    """Check the whole log against the current rows and the signed heads; store the outcome.

    1. every leaf: recompute from its row (product, recall, recall closing) as it is now,
       compare with the sealed leaf; name each entry whose record changed (and which fields);
    2. the stored leaves hash to their sealed records, and blockchain_hash matches;
    3. the tree rebuilt from the stored leaves matches every stored node and every signed root;
       the tree rebuilt from the current rows is compared with the signed roots too;
    4. every head's signature verifies with a trusted key; consecutive heads are consistent
       (RFC 9162 consistency proofs from the stored nodes);
    5. products that are not in the log are reported as unsealed (``manage.py seal_ledger``),
       and so are recalls and closings (sealed when written: missing means tampering).
    Reads one REPEATABLE READ snapshot, so concurrent appends do not cause false findings.
    """
    started = timezone.now()
    findings: list[Finding] = []
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:  # inside a caller's transaction, its snapshot rules apply
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        heads = list(LedgerHead.objects.order_by("tree_size"))
        head_sizes = {h.tree_size: h for h in heads}
        stored_tree = Frontier()
        current_tree = Frontier()
        stored_levels: list[list[bytes]] = [[]]  # level 0, for the node check
        current_roots: dict[int, bytes] = {}
        stored_roots: dict[int, bytes] = {}
        checked = 0
        leaves = (
            LedgerLeaf.objects.select_related("product", "recall", "recall_closure__recall")
            .order_by("leaf_index")
            .iterator(chunk_size=batch_size)
        )
        for leaf in leaves:
            if leaf.leaf_index != stored_tree.size:
                findings.append(
                    Finding(
                        "leaf_gap",
                        f"leaf #{stored_tree.size} is missing",
                        leaf_index=leaf.leaf_index,
                    )
                )
                break
            record, name, named = _subject(leaf)
            sealed_leaf = bytes(leaf.leaf_hash)
            if leaf_hash(leaf.record.encode("utf-8")) != sealed_leaf:
                findings.append(
                    Finding(
                        "sealed_record_altered",
                        "the stored sealed record no longer hashes to its leaf",
                        leaf_index=leaf.leaf_index,
                        **named,
                    )
                )
            current_leaf = leaf_hash(canonical_json(record).encode("utf-8"))
            if current_leaf != sealed_leaf:
                changes = _changed_fields(leaf.record, record)
                findings.append(
                    Finding(
                        "record_changed",
                        f"{name} changed after sealing: " + "; ".join(changes),
                        leaf_index=leaf.leaf_index,
                        **named,
                    )
                )
            product = leaf.product
            if product is not None and product.blockchain_hash != sealed_leaf.hex():
                findings.append(
                    Finding(
                        "blockchain_hash_mismatch",
                        f"consumer_products.blockchain_hash of {product.product_id} is "
                        f"{product.blockchain_hash!r}, the leaf is {sealed_leaf.hex()}",
                        product.product_id,
                        leaf.leaf_index,
                    )
                )
            stored_tree.append(sealed_leaf)
            current_tree.append(current_leaf)
            stored_levels[0].append(sealed_leaf)
            checked += 1
            if stored_tree.size in head_sizes:
                stored_roots[stored_tree.size] = stored_tree.root()
                current_roots[stored_tree.size] = current_tree.root()
        size = stored_tree.size

        findings.extend(_check_nodes(stored_levels[0]))

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
            elif stored_roots.get(head.tree_size) != root:
                findings.append(
                    Finding(
                        "log_rewritten",
                        f"the stored leaves no longer hash to the signed root of size "
                        f"{head.tree_size}",
                        tree_size=head.tree_size,
                    )
                )
            elif current_roots.get(head.tree_size) != root:
                findings.append(
                    Finding(
                        "head_root_mismatch",
                        f"the current records do not hash to the signed root of size "
                        f"{head.tree_size} (see the changed records)",
                        tree_size=head.tree_size,
                    )
                )
            if previous is not None and head.tree_size <= size:
                try:
                    proof = consistency_proof(first=previous.tree_size, second=head.tree_size)
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


def _check_nodes(level0: list[bytes]) -> list[Finding]:
    """Rebuild every complete subtree from the stored leaves and compare with ledger_nodes."""
    findings: list[Finding] = []
    level, current = 0, level0
    while current:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT idx, hash FROM ledger_nodes WHERE level = %s ORDER BY idx", [level]
            )
            stored = {idx: bytes(h) for idx, h in cursor.fetchall()}
        bad = [i for i, h in enumerate(current) if stored.get(i) != h]
        extra = len(stored) - len(current)
        if bad or extra > 0:
            findings.append(
                Finding(
                    "nodes_altered",
                    f"{len(bad)} stored node(s) at level {level} differ from the leaves "
                    f"(first at index {bad[0] if bad else '-'}), {max(extra, 0)} extra",
                )
            )
        current = [node_hash(current[i], current[i + 1]) for i in range(0, len(current) - 1, 2)]
        level += 1
    return findings
