"""Helpers shared by the consumer-experience tests (scan page, feedback, API, browser)."""

from __future__ import annotations

from typing import Any

from feedback.services import feedback_submit
from tests.factories import make_lot, make_sample
from traceability.models import ConsumerProduct
from traceability.services import product_register

RATINGS = {
    "overall_rating": 5,
    "taste_rating": 5,
    "texture_rating": 4,
    "appearance_rating": 5,
    "value_rating": 4,
}


def make_product(lot: Any = None, **sample_kw: Any) -> ConsumerProduct:
    """A real product, registered by the PL/pgSQL function from a compliant sample."""
    lot = lot or make_lot()
    sample = make_sample(lot=lot, **sample_kw)
    registered = product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
    return ConsumerProduct.objects.get(product_id=registered.product_id)


def review(product: ConsumerProduct, **kw: Any) -> Any:
    return feedback_submit(qr_code=product.qr_code, **{**RATINGS, **kw})


def forged(code: str) -> str:
    """The same code with its signature's last hex digit changed."""
    return code[:-1] + ("0" if code[-1] != "0" else "1")
