"""Fixtures of the deployment tests."""

from __future__ import annotations

from tests.support.fixtures import redis_server  # noqa: F401  (a fixture)
