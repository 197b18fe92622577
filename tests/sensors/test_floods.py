"""Cheap floods over a real Daphne: heartbeats are throttled, and a station token opens a bounded
number of connections; both are refused with an error frame naming the rule."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from sensors.services import device_issue_token
from tests.factories import make_device
from tests.support.servers import DaphneServer, server_env, wait_for_sessions_to_close
from tests.support.stations import exchange, open_station, run

pytestmark = pytest.mark.django_db(transaction=True)

HEARTBEAT_BURST = 3
MAX_CONNECTIONS = 2


@pytest.fixture(scope="module")
def daphne(django_db_setup, django_db_blocker):
    """A Daphne whose heartbeat bucket refills once in 1,000 s: a burst, then refusals."""
    with django_db_blocker.unblock():
        server = DaphneServer(
            server_env(
                SQAL_HEARTBEAT_RATE="0.001",
                SQAL_HEARTBEAT_BURST=str(HEARTBEAT_BURST),
                SQAL_MAX_CONNECTIONS_PER_STATION=str(MAX_CONNECTIONS),
            )
        )
    server.start()
    yield server
    server.stop()
    with django_db_blocker.unblock():
        wait_for_sessions_to_close()


@pytest.fixture
def token(db):
    return device_issue_token(device=make_device(device_id="ESP32 Ligne B"))


def test_a_heartbeat_flood_is_refused_with_a_clear_error_and_samples_still_pass(daphne, token):
    async def scenario():
        ws = await open_station(daphne.url, token)
        for _ in range(40):
            await ws.send(json.dumps({"type": "heartbeat", "device_id": "ESP32 Ligne B"}))
        frames = [json.loads(await asyncio.wait_for(ws.recv(), 20)) for _ in range(40)]
        pong = await exchange(ws, {"type": "ping"})
        await ws.close()
        return frames, pong

    frames, pong = run(scenario())

    acks = [f for f in frames if f["type"] == "heartbeat_ack"]
    errors = [f for f in frames if f["type"] == "error"]
    assert len(acks) == HEARTBEAT_BURST and len(errors) == 40 - HEARTBEAT_BURST
    assert {(e["code"], e["rule"]) for e in errors} == {("rate_limited", "heartbeat_throttle")}
    assert "heartbeats" in errors[0]["detail"] and errors[0]["retry_after"] > 0
    assert pong["type"] == "pong"  # other messages have their own bucket


def test_a_station_token_opens_a_bounded_number_of_connections(daphne, token):
    headers = {"Authorization": f"Bearer {token}"}

    async def attempt():
        """Open a connection: (its first frame, the connection, or None when it was closed)."""
        ws = await connect(daphne.url, additional_headers=headers, open_timeout=10)
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if frame["type"] == "connection_established":
            return frame, ws
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        return frame, None, ws.close_code

    async def scenario():
        held = [await open_station(daphne.url, token) for _ in range(MAX_CONNECTIONS)]
        frame, _, code = await attempt()
        pong = await exchange(held[0], {"type": "ping"})  # the open ones are untouched
        await held[0].close()
        # A closed connection frees its place once the server has seen the close: poll for it.
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            retry = await attempt()
            if retry[1] is not None or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        for ws in (held[1], retry[1]):
            if ws is not None:
                await ws.close()
        return frame, code, pong, retry[0]

    frame, code, pong, retried = run(scenario())

    assert (frame["type"], frame["code"], frame["rule"]) == (
        "error",
        "too_many_connections",
        "max_connections_per_station",
    )
    assert "ESP32 Ligne B" in frame["detail"] and code == 4429
    assert pong["type"] == "pong"
    assert retried["type"] == "connection_established"
