"""The tamper-evident ledger: an append-only Merkle log (RFC 9162 shape) of consumer products,
recall declarations and recall closings (``ledger_leaves.kind``).

One module per concern, each readable alone: ``merkle`` (pure RFC 9162 hashing, ranges, proofs
and their verification), ``records`` (the canonical record of a product), ``keys`` (Ed25519 keys
and signed tree heads), ``storage`` (the log in PostgreSQL: appends, roots, proofs), ``proofs``
(what consumers and the public API get), ``verify`` (``ledger_verify``). The names the rest of the
project uses are re-exported here.

What is hashed
    Each entry (product, recall, recall closing) is one leaf:
    ``SHA-256(0x00 || canonical_record_bytes)``; an interior node is
    ``SHA-256(0x01 || left || right)``; the tree of n leaves splits at the largest power of two
    smaller than n (RFC 9162 §2.1.1). The empty tree's root is ``SHA-256("")``.

The canonical record (version 1)
    A JSON object of the entry's fields (``records``), serialised with keys sorted by code
    point, no whitespace (``","`` and ``":"`` separators), UTF-8, non-ASCII kept as is
    (``ensure_ascii=False``). Values are only strings, integers, booleans, null and (in recall
    records) arrays of strings or integers, so that any JSON library (the browser's included)
    writes the same bytes:
    - floats are strings in Python's shortest round-trip form (``repr``), e.g. ``"0.87"``,
      ``"125000.0"``; null stays null;
    - times are strings in UTC with microseconds: ``"2026-01-08T12:00:00.000000Z"``;
    - ``"v": 1`` is the record version;
    - a product's record has no ``kind`` (products hash as they did before entry kinds); a
      recall declaration's has ``"kind": "recall"``, a closing's ``"kind": "recall_closure"``
      (``records.recall_record``, ``records.recall_closure_record``).

Storage (logarithmic append and proofs)
    ``ledger_nodes`` keeps every complete subtree (level, index) -> hash, written once when its
    last leaf arrives. Sealing one product is one call of PL/pgSQL ``ledger_append_product``
    (migration ``traceability/0013``): it builds the canonical record in SQL (byte for byte the
    Python one; edge values are left to Python), takes the lock, reads the left siblings it
    completes by primary key and writes the leaf, at most log2 n + 1 nodes and the product's
    hash. Bulk appends read the compact frontier (one query) and write in one statement. A root,
    an inclusion or a consistency proof needs the O(log n) complete subtrees that make up its
    ranges, read in one query. ``ledger_tiles`` holds the same nodes four levels a row (tier t,
    tile k: levels 4t..4t+3 under node (4t+4, k)), rewritten from ``ledger_nodes`` for the
    leaves each signed head adds (``ledger_write_tiles``, migration ``traceability/0018``): the
    consumer proof is one prepared statement (``gaveurs.prepared``) that reads about
    log2(n)/4 + 1 tiles, not a row per level, and falls back to ``ledger_nodes`` for a node its
    tiles lack. ``verify_ledger`` streams the leaves once (server-side cursor), rebuilds the
    tree level by level and compares each stored level as one concatenation, and each tier of
    tiles as one digest.

Order and signing
    Appends take a transaction-scoped PostgreSQL advisory lock, so the log has one order. A signed
    tree head (Ed25519 over the RFC 6962 ``TreeHeadSignature`` bytes: version 0, type 1,
    uint64 timestamp in ms, uint64 tree size, 32-byte root) is made by the append that finds the
    latest head older than ``LEDGER_HEAD_INTERVAL_SECONDS`` or ``LEDGER_HEAD_MAX_PENDING`` leaves
    behind; a proof request for a leaf no head covers yet signs one under the same rule, and
    ``manage.py seal_ledger`` signs whatever is pending.

Keys
    ``LEDGER_SIGNING_KEY``: the 32-byte Ed25519 private key (seed) as 64 hex digits or base64.
    Required in production. In development, when unset, it is derived from ``SECRET_KEY``
    (SHA-256 of a fixed label and the key): stable across processes, and as public as the
    development SECRET_KEY, so never trust a development log. ``LEDGER_TRUSTED_PUBLIC_KEYS``
    lists older public keys (hex or base64, comma separated) whose heads still verify after a
    key rotation.

Recall declarations and closings are appended by ``ledger_append_recall`` /
``ledger_append_recall_closure`` in the transaction that writes them, with a head signed at once
so that consumers can verify the notice they are shown.

Products registered by ``traceability.services.product_register`` are appended in the same
transaction. Products inserted by other paths are appended by ``manage.py seal_ledger``;
``manage.py verify_ledger`` reports them as unsealed until then.
"""

from __future__ import annotations

from traceability.ledger.keys import (
    head_as_dict,
    head_message,
    head_signature_is_valid,
    key_id,
    public_key_bytes,
    public_key_pem,
    signing_key,
    trusted_public_keys,
)
from traceability.ledger.merkle import (
    EMPTY_ROOT,
    Frontier,
    MemoryLog,
    consistency_ranges,
    fold_right,
    inclusion_ranges,
    leaf_hash,
    merkle_root,
    node_hash,
    range_keys,
    verify_consistency,
    verify_inclusion,
)
from traceability.ledger.proofs import (
    LedgerError,
    ledger_consistency_between,
    ledger_proof_for_qr,
    product_proof,
    published_heads,
    recall_proof,
    scan_context,
)
from traceability.ledger.records import (
    RECORD_VERSION,
    canonical_json,
    product_leaf_hash,
    product_record,
    recall_closure_record,
    recall_record,
)
from traceability.ledger.storage import (
    AppendResult,
    LedgerCorrupt,
    consistency_proof,
    inclusion_proof,
    latest_head,
    ledger_append_product,
    ledger_append_products,
    ledger_append_recall,
    ledger_append_recall_closure,
    ledger_seal_pending,
    ledger_sign_head,
    stored_root,
)
from traceability.ledger.verify import (
    Finding,
    ledger_verify,
)

__all__ = [
    "AppendResult",
    "EMPTY_ROOT",
    "Finding",
    "Frontier",
    "LedgerCorrupt",
    "LedgerError",
    "MemoryLog",
    "RECORD_VERSION",
    "canonical_json",
    "consistency_proof",
    "consistency_ranges",
    "fold_right",
    "head_as_dict",
    "head_message",
    "head_signature_is_valid",
    "inclusion_proof",
    "inclusion_ranges",
    "key_id",
    "latest_head",
    "leaf_hash",
    "ledger_append_product",
    "ledger_append_products",
    "ledger_append_recall",
    "ledger_append_recall_closure",
    "ledger_consistency_between",
    "ledger_proof_for_qr",
    "ledger_seal_pending",
    "ledger_sign_head",
    "ledger_verify",
    "merkle_root",
    "node_hash",
    "product_leaf_hash",
    "product_proof",
    "product_record",
    "public_key_bytes",
    "public_key_pem",
    "published_heads",
    "recall_closure_record",
    "recall_proof",
    "recall_record",
    "range_keys",
    "scan_context",
    "signing_key",
    "stored_root",
    "trusted_public_keys",
    "verify_consistency",
    "verify_inclusion",
]
