"""Fixtures of the fault tests: servers of our own that a test may kill or restart."""

from __future__ import annotations

import pytest

from tests.support.fixtures import redis_server  # noqa: F401  (a fixture)
from tests.support.servers import DedicatedPostgres


@pytest.fixture(scope="module")
def dedicated_pg(tmp_path_factory):
    """A migrated PostgreSQL of this module's own, that a test may stop and start again."""
    pg = DedicatedPostgres(tmp_path_factory.mktemp("pg") / "data")
    try:
        pg.manage("migrate", "-v0")
        yield pg
    finally:
        pg.close()
