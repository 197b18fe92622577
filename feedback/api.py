"""django-ninja router of the consumer API, the seed's shapes: GET /api/consumer/scan/{qr_code}
(a product with its lot's review figures) and POST /api/consumer/feedback."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status
from pydantic import ConfigDict

from feedback.models import COMMENT_MAX_LENGTH
from feedback.selectors import product_for_scan
from feedback.services import (
    THANK_YOU_MESSAGE,
    FeedbackError,
    feedback_rate_limited,
    feedback_submit,
)
from gaveurs.api_errors import ApiErrorOut, api_error
from traceability.http import client_origin
from traceability.models import ScanChannel
from traceability.recalls import recall_for_product, recall_public
from traceability.scans import product_scan
from traceability.services import product_traceability

router = Router(tags=["consumer"])

Rating = Field(..., ge=1, le=5, strict=True, description="1 to 5 (an integer)")


# --- Consumer scan API (public): GET /api/consumer/scan/{qr_code}, the seed's shape (issue 5) -


class ScanGaveurOut(Schema):
    nom: str
    prenom: str
    site_code: str


class ScanLotOut(Schema):
    code_lot: str
    itm_moyen: float | None
    poids_moyen_final_g: float | None
    date_debut_gavage: datetime | None
    date_fin_gavage: datetime | None
    duree_gavage_jours: int | None
    gaveur: ScanGaveurOut


class ScanQualityOut(Schema):
    fusion_score: float | None
    fusion_grade: str
    is_compliant: bool | None
    tof_volume_mm3: float | None
    tof_surface_uniformity: float | None
    spectral_freshness_index: float | None


class ScanBlockchainOut(Schema):
    # The ledger may add fields (proof, signed head): kept as given.
    model_config = ConfigDict(extra="allow")

    hash: str | None
    timestamp: datetime | None


class ScanTraceabilityOut(Schema):
    product_id: str
    qr_code: str
    lot: ScanLotOut
    sqal_quality: ScanQualityOut
    blockchain: ScanBlockchainOut


class RecallInstructionsOut(Schema):
    fr: str
    en: str


class ScanRecallOut(Schema):
    status: str = Field(description='"active" or "closed"')
    kind: str = Field(description='"recall" or "withdrawal" (from sale)')
    reason: str
    instructions: RecallInstructionsOut
    instructions_text: str = Field(description="The instructions in the request's language")
    declared_at: datetime
    starts_at: datetime
    reference: str
    closed_at: datetime | None
    closing_reason: str | None


class ScanOut(Schema):
    success: bool
    traceability: ScanTraceabilityOut
    already_reviewed: bool
    average_rating: float | None
    total_reviews: int
    recall: ScanRecallOut | None = Field(
        description="The recall or withdrawal that reaches this unit; null when none"
    )


@router.get(
    "/scan/{qr_code}",
    response={200: ScanOut, 404: ApiErrorOut},
    summary="What a consumer sees after scanning a product's QR code (counts the scan)",
)
def consumer_scan(request: HttpRequest, qr_code: str) -> Any:
    """404 for an unknown code, and for a forged one (``error`` = ``invalid_signature``, logged
    for staff). ``average_rating`` is null until the lot has more than 5 visible reviews;
    ``total_reviews`` counts the lot's visible reviews. ``recall`` is the recall or withdrawal
    that reaches this unit (the newest open one, else the newest closed one), null when none."""
    outcome = product_scan(
        qr_code=qr_code,
        channel=ScanChannel.API,
        origin=client_origin(request),
        language=getattr(request, "LANGUAGE_CODE", ""),
    )
    if outcome.status == "forged":
        detail = "The signature of this QR code does not verify: altered or forged label."
        return api_error(404, "invalid_signature", detail, field="qr_code", rule="signature")
    if outcome.status == "unknown":
        return api_error(404, "unknown_qr_code", "No such product.", field="qr_code")
    product = product_for_scan(qr_code=qr_code)
    if product is None:  # gone since the scan was counted
        return api_error(404, "unknown_qr_code", "No such product.", field="qr_code")
    # Reverse one-to-ones loaded by select_related: a missing row reads as AttributeError.
    stats = getattr(product.lot, "review_stats", None)
    language = getattr(request, "LANGUAGE_CODE", "") or "fr"
    # The scan statement says whether any recall reaches the unit: no query when none does.
    recall = recall_for_product(product) if outcome.scan.recall_state else None
    return {
        "success": True,
        "traceability": product_traceability(product),
        "already_reviewed": hasattr(product, "feedback"),
        "average_rating": stats.average_overall if stats and stats.is_public else None,
        "total_reviews": stats.review_count if stats else 0,
        "recall": recall_public(recall, language=language),
    }


# --- Feedback API (public): POST /api/consumer/feedback ------------------------------------


class FeedbackIn(Schema):
    qr_code: str = Field(..., min_length=1, max_length=300)
    overall_rating: int = Rating
    taste_rating: int = Rating
    texture_rating: int = Rating
    appearance_rating: int = Rating
    value_rating: int = Rating
    comment: str = Field("", max_length=COMMENT_MAX_LENGTH)
    consent_to_publish: bool = False


class FeedbackOut(Schema):
    success: bool
    feedback_id: int
    message: str
    reward_points: int


@router.post(
    "/feedback",
    response={201: FeedbackOut, frozenset({404, 409, 422, 429}): ApiErrorOut},
    summary="A consumer's review of one product unit (one review per unit)",
)
def consumer_feedback(request: HttpRequest, payload: FeedbackIn) -> Any:
    """422 names the field at fault (ratings 1–5, comment length), 404 for an unknown QR code,
    409 when the unit was already reviewed, 429 past the per-client rate."""
    if feedback_rate_limited(client_key=client_origin(request).client_hash):
        return api_error(
            429, "rate_limited", "Too many feedback attempts from this client; try again later."
        )
    try:
        feedback = feedback_submit(
            **payload.model_dump(), language=getattr(request, "LANGUAGE_CODE", "")
        )
    except FeedbackError as exc:
        return api_error(exc.status, exc.code, exc.detail, field=exc.field)
    return Status(
        201,
        {
            "success": True,
            "feedback_id": feedback.id,
            "message": str(THANK_YOU_MESSAGE),
            "reward_points": feedback.reward_points,
        },
    )
