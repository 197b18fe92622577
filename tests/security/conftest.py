"""Fixtures of the hostile-input tests: real products, a staff API token, an empty cache."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from tests.factories import make_staff
from traceability.auth import api_token_create


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
