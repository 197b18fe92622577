"""Fixtures of the station protocol tests: a real Daphne server and a registered station."""

from __future__ import annotations

import pytest

from sensors.services import device_issue_token
from tests.factories import make_device
from tests.support.servers import DaphneServer, server_env, wait_for_sessions_to_close


@pytest.fixture(scope="module")
def daphne(django_db_setup, django_db_blocker):
    """A Daphne server refusing unregistered stations, shared by a test module."""
    with django_db_blocker.unblock():
        server = DaphneServer(server_env(SQAL_THROTTLE_RATE="200", SQAL_THROTTLE_BURST="400"))
    server.start()
    yield server
    server.stop()
    with django_db_blocker.unblock():
        wait_for_sessions_to_close()


@pytest.fixture
def station(db):
    """A registered station with a token: (device, token)."""
    device = make_device(device_id="ESP32_LL_01")
    return device, device_issue_token(device=device)
