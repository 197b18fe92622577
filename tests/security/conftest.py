"""Fixtures of the hostile-input tests: real products, a staff API token, an empty cache."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

from traceability.auth import api_token_create


@pytest.fixture(autouse=True)
def _empty_cache():
    """Rate-limit counters and cached pages live in the per-process cache."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def staff_token(db) -> str:
    user = get_user_model().objects.create_user(
        "staff-security", password="s3cret-pass-phrase", is_staff=True
    )
    return api_token_create(user=user, name="schemathesis")[1]
