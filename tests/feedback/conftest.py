from __future__ import annotations

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _empty_cache():
    """Rate-limit counters live in the (per-process) cache: each test starts from zero."""
    cache.clear()
    yield
    cache.clear()
