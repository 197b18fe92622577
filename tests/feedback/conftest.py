from __future__ import annotations

import pytest
from django.core.cache import cache

from feedback.pages import kept_pages


@pytest.fixture(autouse=True)
def _empty_cache():
    """Rate-limit counters live in the (per-process) cache: each test starts from zero."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _no_kept_pages():
    """Nor does any test find a page kept by this process (``feedback.pages.kept_pages``)."""
    kept_pages.clear()
    yield
    kept_pages.clear()
