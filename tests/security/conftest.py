"""Fixtures of the hostile-input tests: real products, a staff API token, an empty cache."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from tests.factories import make_lot, make_sample, make_staff
from traceability.auth import api_token_create
from traceability.models import ConsumerProduct
from traceability.services import product_register


def make_product(lot=None, **sample_kw) -> ConsumerProduct:
    """A real product, registered by the PL/pgSQL function from a compliant sample."""
    lot = lot or make_lot()
    sample = make_sample(lot=lot, **sample_kw)
    registered = product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
    return ConsumerProduct.objects.get(product_id=registered.product_id)


@pytest.fixture(autouse=True)
def _empty_cache():
    """Rate-limit counters and cached pages live in the per-process cache."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def staff_token(db) -> str:
    user = make_staff(
        "staff-security", "traceability.add_consumerproduct", "traceability.view_consumerproduct"
    )
    return api_token_create(user=user, name="schemathesis", scopes=["tasks:read", "tasks:write"])[1]
