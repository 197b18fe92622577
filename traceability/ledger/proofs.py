"""What consumers and the public API get: the inclusion proof and signed head of a product or of
a recall entry (cached), the scan page's ledger block, consistency proofs between heads, the
published heads."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches

from gaveurs.prepared import PreparedStatement
from traceability.ledger.keys import (
    head_as_dict,
    head_row_as_dict,
    key_id,
    public_key_bytes,
    trusted_public_keys,
)
from traceability.ledger.merkle import (
    TILE_OFFSETS,
    ZERO_HASH,
    edge_split,
    inclusion_ranges,
    leaf_hash,
)
from traceability.ledger.records import canonical_json, product_record
from traceability.ledger.storage import (
    LedgerCorrupt,
    _ranges_hashes,
    consistency_proof,
    latest_head,
    ledger_sign_head,
)
from traceability.models import ConsumerProduct, LedgerHead, Recall, RecallClosure

# --- Proofs for consumers -----------------------------------------------------------------


def _proof_cache_key(product_pk: int) -> str:
    return f"ledger:proof:v1:{product_pk}"


def _entry_cache_key(column: str, pk: int) -> str:
    return f"ledger:proof:v1:{column}:{pk}"


# One round trip, one row: the entry's leaf (its time already in the record's format), the
# latest head with its edge (``merkle.head_edge``: the end of every audit path under it), and the
# rest of the path, the siblings of the leaf's ancestors below the head's frontier (levels
# 0..L-1, ``merkle.edge_split``), read from ``ledger_tiles``: the leaf's tile of each tier, 4
# slots a tile sent as int8 key || the sibling at each of the tier's levels. One index scan,
# = ANY on the keys of tiers 0-4 (2^20 leaves), and of tiers 5-14 only in a larger log; the
# tiles of tiers at or above L are read and ignored (cheaper, measured, than a CASE per key to
# leave them out). The latest verify_ledger run is read for its findings only when it failed.
# A prepared statement of the session (planning would cost more than its execution).
def _tier_keys(tiers: range) -> str:
    return ", ".join(f"({t}::bigint << 56) | (l.leaf_index >> {4 * t + 4})" for t in tiers)


# The leaf's sibling at level 4t + j of a tile of tier t: slot OFFSET[j] + (ancestor index ^ 1)
# within the tile (``merkle.tile_position``).
_SIBLINGS = "".join(
    f"\n                   || substring(t.hashes, 32 * ({offset} + ((l.leaf_index"
    f" >> (4 * (t.tile >> 56)::int + {j})) # 1 & {15 >> j}))::int + 1, 32)"
    for j, offset in enumerate(TILE_OFFSETS)
)
_TIER_KEYS = (
    f"ARRAY[{_tier_keys(range(5))}] || CASE WHEN h.tree_size > {1 << 20} "
    f"THEN ARRAY[{_tier_keys(range(5, 15))}] END"
)
PROOF_SQL_TEMPLATE = (
    (
        """
SELECT l.leaf_index, l.leaf_hash,
       to_char(l.sealed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       h.tree_size, h.root_hash, h.timestamp_ms, h.signature, h.key_id, h.edge_hashes,
       (SELECT string_agg(
                   int8send(t.tile){siblings},
                   ''::bytea)
        FROM ledger_tiles t
        WHERE h.tree_size > l.leaf_index AND length(t.hashes) = 960
          AND t.tile = ANY({tier_keys})),
       coalesce((SELECT NOT v.ok AND {flagged} FROM ledger_verifications v
                 ORDER BY v.started_at DESC LIMIT 1), false)
FROM ledger_leaves l
LEFT JOIN LATERAL (
    SELECT tree_size, root_hash, timestamp_ms, signature, key_id, edge_hashes
    FROM ledger_heads ORDER BY tree_size DESC LIMIT 1
) h ON true
WHERE l.{column} = $1
"""
    )
    .replace("{tier_keys}", _TIER_KEYS)
    .replace("{siblings}", _SIBLINGS)
)
# A product is named in findings by its product id (with its leaf index when verify_ledger
# found it): matched on the leaf index, or on the product id of the sealed record (read only
# when the latest run failed), so that the statement holds no consumer_products table or index
# (each relation a plan holds costs every call a lock and an open: measured, about 80 us of
# PostgreSQL CPU per proof for this one).
PROOF_SQL = PROOF_SQL_TEMPLATE.format(
    column="product_pk",
    flagged="EXISTS (SELECT 1 FROM jsonb_array_elements(v.findings) AS f "
    "WHERE f @> jsonb_build_object('leaf_index', l.leaf_index) AND f ? 'product_id' "
    "OR f @> jsonb_build_object('product_id', l.record::jsonb -> 'product_id'))",
)
PROOF_STATEMENT = PreparedStatement("gaveurs_ledger_proof_v9", ("integer",), ("pk",), PROOF_SQL)
# A recall entry is named in findings by its leaf index.
ENTRY_PROOF_STATEMENTS = {
    column: PreparedStatement(
        f"gaveurs_ledger_{column}_proof_v8",
        ("bigint",),
        ("pk",),
        PROOF_SQL_TEMPLATE.format(
            column=column,
            flagged="v.findings @> jsonb_build_array(jsonb_build_object('leaf_index', "
            "l.leaf_index))",
        ),
    )
    for column in ("recall_pk", "recall_closure_pk")
}


TILE_RECORD = 8 + 4 * 32  # a tile's key and the leaf's 4 siblings in it, as PROOF_SQL sends them
ZERO_HEX = ZERO_HASH.hex()


def _path_from_tiles(
    index: int, size: int, siblings: bytes | None, edge: bytes | None
) -> list[str] | None:
    """The audit path (hex) of leaf ``index`` under a head of ``size`` from what PROOF_SQL read:
    the siblings from ``ledger_tiles``, the rest from the head's edge (``merkle.edge_path``,
    inlined: one join and one hex conversion). None when a part is missing (a tile not written
    yet or zeroed, a head signed without an edge): the caller then reads ``ledger_nodes``."""
    count = size.bit_count()
    if not edge or len(edge) != 32 * (2 * count - 1):
        return None
    split = edge_split(index, size)
    parts: list[bytes] = [b""] * ((split + 3) // 4)  # per tier holding a sibling, bottom up
    blob = siblings or b""
    for pos in range(0, len(blob) - TILE_RECORD + 1, TILE_RECORD):
        tier = blob[pos]  # the key's top byte
        if tier < len(parts):
            parts[tier] = blob[pos + 8 : pos + 8 + 32 * min(4, split - 4 * tier)]
    below = (size & ((1 << split) - 1)).bit_count()  # the head's frontier nodes below L
    if below:
        fold = 32 * (count + below - 1)
        parts.append(edge[fold : fold + 32])
    parts.append(edge[32 * (below + 1) : 32 * count])
    path = b"".join(parts).hex()
    hashes = [path[k : k + 64] for k in range(0, len(path), 64)]
    expected = split + (1 if below else 0) + count - below - 1
    if len(hashes) != expected or ZERO_HEX in hashes:
        return None
    return hashes


def product_proof(product: ConsumerProduct) -> dict[str, Any]:
    """Everything a client needs to verify a product's record; cached per product.

    Returns ``{"status": "unsealed"}`` when the product is not in the log, ``"pending"`` when no
    signed head covers its leaf yet (and none may be signed now), else ``"sealed"`` with the
    leaf index, audit path and signed head. One query (none when cached); signing a head that
    is due costs a few more, at most once per LEDGER_HEAD_INTERVAL_SECONDS.
    """
    return _leaf_proof(PROOF_STATEMENT, product.pk, _proof_cache_key(product.pk))


def recall_proof(entry: Recall | RecallClosure) -> dict[str, Any]:
    """The inclusion proof of a recall declaration or closing, like ``product_proof``."""
    column = "recall_pk" if isinstance(entry, Recall) else "recall_closure_pk"
    return _leaf_proof(ENTRY_PROOF_STATEMENTS[column], entry.pk, _entry_cache_key(column, entry.pk))


def _leaf_proof(statement: PreparedStatement, pk: int, cache_key: str) -> dict[str, Any]:
    proofs = caches[DEFAULT_CACHE_ALIAS]  # this thread's cache: one lookup for get and set
    cached = proofs.get(cache_key)
    if cached is not None:
        return cached
    rows = statement.rows({"pk": pk})
    if not rows:
        return {"status": "unsealed"}
    index, leaf, sealed_at, head_size, *head_row = rows[0][:8]
    edge, siblings, flagged = rows[0][8:]
    proof: dict[str, Any] = {
        "status": "pending",
        "leaf_index": index,
        "leaf_hash": leaf.hex(),
        "sealed_at": sealed_at,
        "flagged_by_verification": bool(flagged),
    }
    path = None
    if head_size is not None and head_size > index:
        path = _path_from_tiles(index, head_size, siblings, edge)
        signed_head = head_row_as_dict(head_size, *head_row)
    else:
        head = ledger_sign_head()
        if head is None or head.tree_size <= index:
            return proof  # not cached: a head will come
        head_size, signed_head = head.tree_size, head_as_dict(head)
    if path is None:
        try:
            path = [h.hex() for h in _ranges_hashes(inclusion_ranges(index, head_size))]
        except LedgerCorrupt:
            return {**proof, "status": "unavailable"}
    proof.update(
        status="sealed",
        tree_size=head_size,
        audit_path=path,
        signed_head=signed_head,
    )
    proofs.set(cache_key, proof, getattr(settings, "LEDGER_PROOF_CACHE_SECONDS", 60))
    return proof


def scan_context(product: ConsumerProduct) -> dict[str, Any]:
    """Context for ``templates/traceability/_ledger_block.html`` on the scan page.

    Returns ``{"ledger": {...}}``: ``status`` (sealed / pending / unsealed), ``entry_number``
    (1-based), ``tree_size``, ``sealed_at`` (datetime), and ``payload``, the object to embed with
    ``json_script`` for static/traceability/ledger.js: the record as it is now in the database,
    the proof and the signed head. One query, none when the proof is cached.
    """
    proof = product_proof(product)
    info: dict[str, Any] = {"status": proof["status"]}
    if proof["status"] != "unsealed":
        info.update(
            entry_number=proof["leaf_index"] + 1,
            tree_size=proof.get("tree_size"),
            sealed_at=datetime.fromisoformat(proof["sealed_at"]),
        )
    record = product_record(product)
    info["integrity"] = _server_integrity(record, proof)
    info["record_items"] = [
        (k, v if isinstance(v, str) else json.dumps(v)) for k, v in sorted(record.items())
    ]
    info["payload"] = {"record": record, "proof": proof}
    return {"ledger": info}


def _server_integrity(record: dict[str, Any], proof: dict) -> str:
    """What the server already knows of the record, before any browser check: "altered" when
    the record no longer hashes to its sealed leaf, or when the latest ``verify_ledger`` run
    found something about this product (read with the proof, no extra query); else
    "unverified" (the browser then checks it)."""
    if proof.get("flagged_by_verification"):
        return "altered"
    sealed = proof.get("leaf_hash")
    if sealed and leaf_hash(canonical_json(record).encode()).hex() != sealed:
        return "altered"
    return "unverified"


class LedgerError(Exception):
    """A proof request that cannot be answered; ``code`` is stable, ``status`` HTTP-like."""

    def __init__(self, code: str, detail: str, status: int) -> None:
        super().__init__(detail)
        self.code, self.detail, self.status = code, detail, status


def ledger_proof_for_qr(*, qr_code: str) -> dict[str, Any]:
    """The inclusion proof of a product found by its QR code (the ``/api/ledger/proof`` body)."""
    product = ConsumerProduct.objects.filter(qr_code=qr_code[:300]).first()
    if product is None:
        raise LedgerError("unknown_product", f"no product with QR code {qr_code[:300]!r}", 404)
    proof = product_proof(product)
    if proof["status"] == "unsealed":
        raise LedgerError("unsealed", f"product {product.product_id} is not in the log yet", 409)
    if proof["status"] != "sealed":
        wait = getattr(settings, "LEDGER_HEAD_INTERVAL_SECONDS", 60)
        raise LedgerError(
            "no_signed_head",
            f"product {product.product_id} is leaf #{proof['leaf_index']}; no signed tree head "
            f"covers it yet (one is signed at most every {wait} s): retry later",
            409,
        )
    record = product_record(product)
    return {
        "qr_code": product.qr_code,
        "product_id": product.product_id,
        "record": record,
        "record_canonical": canonical_json(record),
        **{k: proof[k] for k in ("leaf_index", "leaf_hash", "sealed_at", "tree_size")},
        "audit_path": proof["audit_path"],
        "signed_head": proof["signed_head"],
    }


def ledger_consistency_between(*, first: int, second: int | None) -> dict[str, Any]:
    """A consistency proof between two signed heads (``second`` defaults to the latest)."""
    if first < 1:
        raise LedgerError("invalid_argument", "from must be a tree size of at least 1", 400)
    if second is not None and second < first:
        raise LedgerError("invalid_argument", f"from ({first}) must not exceed to ({second})", 400)
    old = LedgerHead.objects.filter(tree_size=first).first()
    new = latest_head() if second is None else LedgerHead.objects.filter(tree_size=second).first()
    for size, head in ((first, old), (second, new)):
        if head is None:
            raise LedgerError("unknown_head", f"no signed tree head of size {size}", 404)
    assert old is not None and new is not None
    if new.tree_size < old.tree_size:
        raise LedgerError("invalid_argument", "the latest head is older than from", 400)
    proof = consistency_proof(first=old.tree_size, second=new.tree_size)
    return {
        "first": head_as_dict(old),
        "second": head_as_dict(new),
        "proof": [h.hex() for h in proof],
    }


def published_heads(*, limit: int = 100, before: int | None = None) -> dict[str, Any]:
    """The public list of signed heads, newest first, with the key that verifies them."""
    heads = LedgerHead.objects.order_by("-tree_size")
    if before is not None:
        heads = heads.filter(tree_size__lt=before)
    public = public_key_bytes()
    return {
        "algorithm": "Ed25519",
        "public_key": base64.b64encode(public).decode(),
        "key_id": key_id(public),
        "trusted_keys": {k: base64.b64encode(v).decode() for k, v in trusted_public_keys().items()},
        "hashing": "RFC 9162: leaf SHA-256(0x00||record), node SHA-256(0x01||left||right)",
        "signed_message": "RFC 6962 TreeHeadSignature: 0x00 0x01 uint64 timestamp_ms "
        "uint64 tree_size root_hash[32], big-endian",
        "heads": [head_as_dict(h) for h in heads[: max(1, min(limit, 1000))]],
    }
