"""django-ninja routers of the traceability app: task API, consumer scan API, ledger API."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status

from traceability import ledger

tasks_router = Router(tags=["tasks"])
scan_router = Router(tags=["consumer"])
ledger_router = Router(tags=["ledger"])


# --- Ledger API (public): inclusion proofs of products, consistency proofs between heads -------


class LedgerHeadOut(Schema):
    tree_size: int
    root_hash: str
    timestamp: int
    timestamp_iso: str
    signature: str
    key_id: str
    public_key: str


class LedgerProofOut(Schema):
    qr_code: str
    product_id: str
    leaf_index: int
    leaf_hash: str
    sealed_at: str
    tree_size: int
    audit_path: list[str]
    signed_head: LedgerHeadOut
    record: dict[str, Any]
    record_canonical: str


class LedgerConsistencyOut(Schema):
    first: LedgerHeadOut
    second: LedgerHeadOut
    proof: list[str]


class LedgerErrorOut(Schema):
    code: str
    detail: str


@ledger_router.get(
    "/proof/{qr_code}",
    response={200: LedgerProofOut, frozenset({404, 409}): LedgerErrorOut},
    summary="Inclusion proof of a product's record in the signed Merkle log (RFC 9162)",
)
def ledger_proof(request: HttpRequest, qr_code: str) -> Any:
    """Leaf index, audit path (hex, bottom up) and the signed tree head it leads to; ``record``
    is the product's record as stored now and ``record_canonical`` the bytes hashed into the
    leaf as SHA-256(0x00 || bytes). 409 while no signed head covers the leaf yet."""
    try:
        return ledger.ledger_proof_for_qr(qr_code=qr_code)
    except ledger.LedgerError as exc:
        return Status(exc.status, {"code": exc.code, "detail": exc.detail})


@ledger_router.get(
    "/consistency",
    response={200: LedgerConsistencyOut, frozenset({400, 404}): LedgerErrorOut},
    summary="Consistency proof between two signed tree heads (RFC 9162)",
)
def ledger_consistency(
    request: HttpRequest,
    first: int = Query(..., alias="from", description="tree size of the older signed head"),
    second: int | None = Query(None, alias="to", description="newer head size; default latest"),
) -> Any:
    try:
        return ledger.ledger_consistency_between(first=first, second=second)
    except ledger.LedgerError as exc:
        return Status(exc.status, {"code": exc.code, "detail": exc.detail})
