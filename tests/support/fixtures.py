"""Shared pytest fixtures of the fault and deployment tests (imported by their conftest)."""

from __future__ import annotations

import pytest

from tests.support.servers import RedisServer


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    """A redis-server of this module's own (appendonly), on a free port."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()
