"""django-ninja routers of the traceability app: task API, ledger API (the consumer scan API,
which shows a product with its reviews, is feedback's)."""

from __future__ import annotations

import json
from typing import Any

from celery import states
from django.http import HttpRequest
from ninja import Query, Router, Schema

from gaveurs.api_errors import ApiErrorOut, api_error
from traceability import ledger, services, tasks
from traceability.auth import access_refusal, staff_auth

tasks_router = Router(tags=["tasks"])
ledger_router = Router(tags=["ledger"])


# --- Task API (staff): submit a product registration, read a task's state -------------------

# A staff account alone is not enough: registering needs the right to add products, and reading
# a task's result (which holds the product's signed QR code) the right to view them.
REGISTER_PRODUCTS = "traceability.add_consumerproduct"
VIEW_PRODUCTS = "traceability.view_consumerproduct"


def refused(request: HttpRequest, *, permission: str, scope: str) -> Any:
    """403 in the error shape when the caller lacks the token scope or the permission."""
    refusal = access_refusal(request, permission=permission, scope=scope)
    if refusal is None:
        return None
    error, detail = refusal
    rule = "scope" if error == "insufficient_scope" else "permission"
    return api_error(403, error, detail, rule=rule)


class TaskSubmittedOut(Schema):
    status: str
    task_id: str
    lot_id: int
    sample_id: str
    message: str


class TaskStatusOut(Schema):
    task_id: str
    status: str
    result: dict[str, Any] | None


@tasks_router.post(
    "/qr-code/generate",
    response={200: TaskSubmittedOut, frozenset({400, 403, 404, 409, 422}): ApiErrorOut},
    auth=staff_auth,
    summary="Register the consumer product (and QR code) of a compliant sample",
)
def task_qr_code_generate(
    request: HttpRequest, lot_id: int, sample_id: str, site_code: str | None = None
) -> Any:
    """Checked at once (unknown lot or sample, non-compliant or REJECT sample answer 4xx with a
    stable ``code``), then run by a worker; idempotent: a sample never gets two products."""
    if denied := refused(request, permission=REGISTER_PRODUCTS, scope="tasks:write"):
        return denied
    site_code = site_code or None
    try:
        services.product_registration_check(lot_id=lot_id, sample_id=sample_id, site_code=site_code)
    except services.ProductRegistrationError as exc:
        return api_error(exc.status, exc.code, exc.detail)
    task_id = tasks.product_registration_submit(
        lot_id=lot_id, sample_id=sample_id, site_code=site_code
    )
    return {
        "status": "submitted",
        "task_id": task_id,
        "lot_id": lot_id,
        "sample_id": sample_id,
        "message": "QR code generation started",
    }


@tasks_router.get(
    "/status/{task_id}",
    response={200: TaskStatusOut, frozenset({403, 404}): ApiErrorOut},
    auth=staff_auth,
    summary="State of a task: PENDING, STARTED, RETRY, SUCCESS or FAILURE, and its result",
)
def task_status(request: HttpRequest, task_id: str) -> Any:
    from django_celery_results.models import TaskResult

    # A finished task's result holds a signed code.
    if denied := refused(request, permission=VIEW_PRODUCTS, scope="tasks:read"):
        return denied
    row = TaskResult.objects.filter(task_id=task_id[:255]).first()
    if row is None:
        return api_error(404, "unknown_task", f"no task with id {task_id!r}", field="task_id")
    return {"task_id": row.task_id, "status": row.status, "result": _task_result(row)}


def _task_result(row: Any) -> dict[str, Any] | None:
    """SUCCESS: the task's dict. FAILURE: ``{"status": "error", "error": code, "detail"}``."""
    if row.status not in (states.SUCCESS, states.FAILURE) or not row.result:
        return None
    try:
        value = json.loads(row.result)
    except ValueError:
        return {"status": "error", "error": "unreadable_result", "detail": row.result[:500]}
    if row.status == states.SUCCESS:
        return value if isinstance(value, dict) else {"value": value}
    if isinstance(value, dict) and value.get("exc_type") == "ProductRegistrationRefused":
        code, detail, *_ = [*value.get("exc_message", []), "", ""]
        return {"status": "error", "error": code, "detail": detail}
    exc_type = value.get("exc_type", "error") if isinstance(value, dict) else "error"
    message = value.get("exc_message", value) if isinstance(value, dict) else value
    return {"status": "error", "error": exc_type, "detail": str(message)[:500]}


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


@ledger_router.get(
    "/proof/{qr_code}",
    response={200: LedgerProofOut, frozenset({404, 409}): ApiErrorOut},
    summary="Inclusion proof of a product's record in the signed Merkle log (RFC 9162)",
)
def ledger_proof(request: HttpRequest, qr_code: str) -> Any:
    """Leaf index, audit path (hex, bottom up) and the signed tree head it leads to; ``record``
    is the product's record as stored now and ``record_canonical`` the bytes hashed into the
    leaf as SHA-256(0x00 || bytes). 409 while no signed head covers the leaf yet."""
    try:
        return ledger.ledger_proof_for_qr(qr_code=qr_code)
    except ledger.LedgerError as exc:
        return api_error(exc.status, exc.code, exc.detail)


@ledger_router.get(
    "/consistency",
    response={200: LedgerConsistencyOut, frozenset({400, 404}): ApiErrorOut},
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
        return api_error(exc.status, exc.code, exc.detail)
