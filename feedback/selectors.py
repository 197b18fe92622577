"""Reads of the consumer pages: a product with its review state, in one query."""

from __future__ import annotations

from traceability.models import ConsumerProduct
from traceability.services import qr_parse


def product_for_scan(*, qr_code: str) -> ConsumerProduct | None:
    """The product and all the scan page shows, in one query: lot, producer, site, this unit's
    review (if any) and the lot's stored review statistics. None for an unknown code."""
    if qr_parse(qr_code) is None:
        return None
    try:
        return ConsumerProduct.objects.select_related(
            "lot__gaveur", "lot__site", "lot__review_stats", "feedback"
        ).get(qr_code=qr_code)
    except ConsumerProduct.DoesNotExist:
        return None
