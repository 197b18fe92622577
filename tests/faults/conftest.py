"""Fixtures of the fault tests: servers of our own that a test may kill or restart."""

from __future__ import annotations

import json

import pytest

from tests.support.fixtures import redis_server  # noqa: F401  (a fixture)
from tests.support.servers import DedicatedPostgres

SEED_STATIONS = """
import json
from sensors.services import device_issue_token
from tests.factories import make_device, make_lot
lot = make_lot()
tokens = {}
for n in range(1, %(count)d + 1):
    device = make_device(device_id=f"ESP32_LL_{n:02d}", assigned_lot=lot)
    tokens[device.device_id] = device_issue_token(device=device)
print(json.dumps({"lot_id": lot.id, "lot_code": lot.code, "tokens": tokens}))
"""


@pytest.fixture(scope="module")
def dedicated_pg(tmp_path_factory):
    """A migrated PostgreSQL of this module's own, that a test may stop and start again."""
    pg = DedicatedPostgres(tmp_path_factory.mktemp("pg") / "data")
    try:
        pg.manage("migrate", "-v0")
        yield pg
    finally:
        pg.close()


def seed_stations(pg: DedicatedPostgres, count: int) -> dict:
    """A lot and ``count`` stations assigned to it, with tokens, in ``pg``'s database."""
    out = pg.manage("shell", "-c", SEED_STATIONS % {"count": count})
    return json.loads(out.strip().splitlines()[-1])
