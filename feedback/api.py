"""django-ninja router of the feedback app: POST /api/consumer/feedback, the seed's shape."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from feedback.http import client_origin
from feedback.models import COMMENT_MAX_LENGTH
from feedback.services import (
    THANK_YOU_MESSAGE,
    FeedbackError,
    feedback_rate_limited,
    feedback_submit,
)
from gaveurs.api_errors import ApiErrorOut, api_error

router = Router(tags=["consumer"])

Rating = Field(..., ge=1, le=5, strict=True, description="1 to 5 (an integer)")


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
