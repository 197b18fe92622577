"""Consumer reviews: the only writers of the feedback app's tables.

- ``feedback_submit`` stores one review per product unit and keeps ``LotReviewStats`` in step;
  ``feedback_hide`` / ``feedback_unhide`` moderate (hidden reviews are kept, not counted).
- ``feedback_bulk_import`` is the bulk path of the generators (demo, history, synthetic data):
  it recomputes the sums of the lots it touched (``lot_review_stats_refresh``).
- ``feedback_rate_limited`` counts a client's attempts.
Scans are counted by ``traceability.scans``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from feedback.models import (
    COMMENT_MAX_LENGTH,
    RATING_FIELDS,
    ConsumerFeedback,
    LotReviewStats,
)
from feedback.tasks import scan_pages_render_unit_later
from traceability.models import ConsumerProduct

logger = logging.getLogger(__name__)

THANK_YOU_MESSAGE = _("Merci pour votre retour ! Il nous aidera à améliorer nos produits.")
STATS_FIELDS = {f: f.replace("_rating", "_sum") for f in RATING_FIELDS}


class FeedbackError(Exception):
    """A review refused; ``code`` is stable, ``field`` names the input at fault."""

    def __init__(self, code: str, field: str, detail: str, status: int) -> None:
        super().__init__(detail)
        self.code = code
        self.field = field
        self.detail = detail
        self.status = status


def reward_points() -> int:
    return settings.FEEDBACK_REWARD_POINTS


def _ratings_check(ratings: dict[str, Any]) -> None:
    for field, value in ratings.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            raise FeedbackError(
                "invalid_rating", field, f"{field} must be an integer from 1 to 5.", 422
            )


def feedback_submit(
    *,
    qr_code: str,
    overall_rating: int,
    taste_rating: int,
    texture_rating: int,
    appearance_rating: int,
    value_rating: int,
    comment: str = "",
    consent_to_publish: bool = False,
    language: str = "",
) -> ConsumerFeedback:
    """Store the review of one product unit and add it to its lot's statistics.

    Raises ``FeedbackError``: a rating outside 1–5 or a comment too long (422), an unknown code
    (404), a unit already reviewed (409).
    """
    ratings = {
        "overall_rating": overall_rating,
        "taste_rating": taste_rating,
        "texture_rating": texture_rating,
        "appearance_rating": appearance_rating,
        "value_rating": value_rating,
    }
    _ratings_check(ratings)
    comment = (comment or "").strip()
    if len(comment) > COMMENT_MAX_LENGTH:
        raise FeedbackError(
            "comment_too_long", "comment", f"comment is limited to {COMMENT_MAX_LENGTH}.", 422
        )
    product = ConsumerProduct.objects.filter(qr_code=qr_code).only("id", "lot_id").first()
    if product is None:
        raise FeedbackError("unknown_qr_code", "qr_code", "No product has this QR code.", 404)
    try:
        with transaction.atomic():
            feedback = ConsumerFeedback.objects.create(
                product=product,
                comment=comment,
                consent_to_publish=consent_to_publish,
                reward_points=reward_points(),
                language=(language or "")[:8],
                **ratings,
            )
            _stats_add(lot_id=product.lot_id, feedback=feedback, sign=1)
            # The unit's page changes (no more form): stored again off the request path.
            transaction.on_commit(lambda: scan_pages_render_unit_later(qr_code=qr_code))
    except IntegrityError as exc:
        # The one-to-one on product: this unit already has a review (possibly a concurrent one).
        if ConsumerFeedback.objects.filter(product_id=product.id).exists():
            raise FeedbackError(
                "already_reviewed", "qr_code", "This product unit has already been reviewed.", 409
            ) from exc
        raise
    return feedback


def _stats_add(*, lot_id: int, feedback: ConsumerFeedback, sign: int) -> None:
    """Add (sign=1) or remove (sign=-1) one visible review from its lot's sums."""
    LotReviewStats.objects.get_or_create(lot_id=lot_id)
    LotReviewStats.objects.filter(lot_id=lot_id).update(
        review_count=F("review_count") + sign,
        **{s: F(s) + sign * getattr(feedback, f) for f, s in STATS_FIELDS.items()},
        updated_at=timezone.now(),
    )


def feedback_hide(*, feedback_id: int, reason: str) -> ConsumerFeedback:
    """Hide a review from the public figures, with the moderator's reason. The review is kept."""
    reason = (reason or "").strip()
    if not reason:
        raise FeedbackError("reason_required", "hidden_reason", "Give a reason to hide.", 422)
    with transaction.atomic():
        feedback = ConsumerFeedback.objects.select_for_update().get(pk=feedback_id)
        lot_id = ConsumerProduct.objects.values_list("lot_id", flat=True).get(
            pk=feedback.product_id
        )
        if not feedback.is_hidden:
            _stats_add(lot_id=lot_id, feedback=feedback, sign=-1)
        feedback.is_hidden = True
        feedback.hidden_reason = reason[:200]
        feedback.save(update_fields=["is_hidden", "hidden_reason"])
    return feedback


def feedback_unhide(*, feedback_id: int) -> ConsumerFeedback:
    """Show a hidden review again (it counts in its lot's figures again)."""
    with transaction.atomic():
        feedback = ConsumerFeedback.objects.select_for_update().get(pk=feedback_id)
        if feedback.is_hidden:
            lot_id = ConsumerProduct.objects.values_list("lot_id", flat=True).get(
                pk=feedback.product_id
            )
            _stats_add(lot_id=lot_id, feedback=feedback, sign=1)
            feedback.is_hidden = False
            feedback.hidden_reason = ""
            feedback.save(update_fields=["is_hidden", "hidden_reason"])
    return feedback


# Recomputes lots' review sums from their visible reviews, one statement for any number of lots.
LOT_REVIEW_STATS_REFRESH_SQL = """
INSERT INTO feedback_lot_review_stats AS s
    (lot_id, review_count, overall_sum, taste_sum, texture_sum, appearance_sum, value_sum,
     updated_at)
SELECT l.id, count(f.id),
       coalesce(sum(f.overall_rating), 0), coalesce(sum(f.taste_rating), 0),
       coalesce(sum(f.texture_rating), 0), coalesce(sum(f.appearance_rating), 0),
       coalesce(sum(f.value_rating), 0), now()
FROM lots_gavage l
LEFT JOIN consumer_products p ON p.lot_id = l.id
LEFT JOIN consumer_feedback f ON f.product_id = p.id AND NOT f.is_hidden
WHERE l.id = ANY(%s::bigint[])
GROUP BY l.id
ON CONFLICT (lot_id) DO UPDATE SET
    review_count = EXCLUDED.review_count, overall_sum = EXCLUDED.overall_sum,
    taste_sum = EXCLUDED.taste_sum, texture_sum = EXCLUDED.texture_sum,
    appearance_sum = EXCLUDED.appearance_sum, value_sum = EXCLUDED.value_sum,
    updated_at = EXCLUDED.updated_at
"""


def lot_review_stats_refresh(*, lot_ids: Iterable[int]) -> None:
    """Recompute the sums of these lots from their visible reviews (bulk writers, repair)."""
    ids = sorted(set(lot_ids))
    if not ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(LOT_REVIEW_STATS_REFRESH_SQL, [ids])


def lot_review_stats_rebuild(*, lot_id: int) -> LotReviewStats:
    """Recompute one lot's sums from its visible reviews (repair; the running sums agree)."""
    lot_review_stats_refresh(lot_ids=[lot_id])
    return LotReviewStats.objects.get(lot_id=lot_id)


@transaction.atomic
def feedback_bulk_import(*, reviews: Sequence[ConsumerFeedback]) -> int:
    """The bulk path beside ``feedback_submit`` (history import, demo and synthetic data):
    store unsaved reviews of distinct product units and recompute their lots' sums in the same
    transaction, so the scan page and moderation see them like submitted ones."""
    for review in reviews:
        _ratings_check({f: getattr(review, f) for f in RATING_FIELDS})
        if len(review.comment or "") > COMMENT_MAX_LENGTH:
            raise FeedbackError(
                "comment_too_long", "comment", f"comment is limited to {COMMENT_MAX_LENGTH}.", 422
            )
    ConsumerFeedback.objects.bulk_create(reviews, batch_size=5000)
    lot_review_stats_refresh(
        lot_ids=ConsumerProduct.objects.filter(
            pk__in=[review.product_id for review in reviews]
        ).values_list("lot_id", flat=True)
    )
    return len(reviews)


def feedback_rate_limited(*, client_key: str) -> bool:
    """Count one feedback attempt of this client; True once it exceeds the allowed rate.

    A fixed window in Django's cache (per process with the default local-memory cache, shared
    with a Redis or Memcached cache).
    """
    window = settings.FEEDBACK_RATE_WINDOW_SECONDS
    key = f"feedback-rate:{client_key}:{int(timezone.now().timestamp()) // window}"
    cache.add(key, 0, timeout=window)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window)
        count = 1
    return count > settings.FEEDBACK_RATE_LIMIT
