"""Acks after commit across a server crash, and per-connection throttling, with real servers."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from sensors.models import SensorSample
from sensors.services import device_issue_token
from tests.factories import make_device
from tests.support.servers import DaphneServer, server_env
from tests.support.stations import exchange, fixture_text, nested, open_station, run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

FLAT = fixture_text("sensor_data_flat.json")


@pytest.fixture
def token(db):
    return device_issue_token(device=make_device(device_id="ESP32_LL_01"))


def _wait_for_row(timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not SensorSample.objects.exists():
        assert time.monotonic() < deadline, "the sample was never committed"
        time.sleep(0.02)


def test_server_killed_after_commit_before_the_ack_is_read_then_resent_stores_once(token):
    server = DaphneServer(server_env()).start()
    try:

        async def send_only():
            ws = await open_station(server.url, token)
            await ws.send(FLAT)
            return ws

        async def scenario():
            ws = await send_only()
            await asyncio.to_thread(_wait_for_row)
            server.kill()  # the station never reads its ack
            ws.transport.abort()

        run(scenario())
        server.start()

        async def resend():
            ws = await open_station(server.url, token)
            ack = await exchange(ws, FLAT)
            await ws.close()
            return ack

        ack = run(resend())
    finally:
        server.stop()
    assert ack["type"] == "ack" and ack["status"] == "duplicate"
    assert SensorSample.objects.count() == 1


def test_server_killed_right_after_the_send_then_resent_stores_exactly_once(token):
    server = DaphneServer(server_env()).start()
    try:

        async def scenario():
            ws = await open_station(server.url, token)
            await ws.send(FLAT)
            server.kill()
            ws.transport.abort()

        run(scenario())
        server.start()

        async def resend():
            ws = await open_station(server.url, token)
            ack = await exchange(ws, FLAT)
            await ws.close()
            return ack

        ack = run(resend())
    finally:
        server.stop()
    assert ack["status"] in ("saved", "duplicate")
    assert SensorSample.objects.count() == 1


def test_a_flooding_station_is_throttled_without_starving_another(db):
    flooder = device_issue_token(device=make_device(device_id="ESP32_LL_01"))
    calm = device_issue_token(device=make_device(device_id="ESP32_LL_02"))
    server = DaphneServer(server_env(SQAL_THROTTLE_RATE="5", SQAL_THROTTLE_BURST="10")).start()

    def sample(device_id: str, n: int) -> str:
        return json.dumps(nested(f"{device_id}_{n:04d}", device_id=device_id))

    async def flood():
        ws = await open_station(server.url, flooder)
        for n in range(150):
            await ws.send(sample("ESP32_LL_01", n))
        await ws.send(json.dumps({"type": "heartbeat", "device_id": "ESP32_LL_01"}))
        frames = [json.loads(await asyncio.wait_for(ws.recv(), 30)) for _ in range(151)]
        assert [f["type"] for f in frames].count("heartbeat_ack") == 1  # never throttled
        frames = [f for f in frames if f["type"] != "heartbeat_ack"]
        await ws.close()
        return frames

    async def steady():
        ws = await open_station(server.url, calm)
        latencies, acks = [], []
        for n in range(5):
            started = time.monotonic()
            acks.append(await exchange(ws, sample("ESP32_LL_02", n)))
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.1)
        await ws.close()
        return acks, latencies

    async def scenario():
        return await asyncio.gather(flood(), steady())

    try:
        (frames, (acks, latencies)) = run(scenario())
    finally:
        server.stop()

    limited = [f for f in frames if f.get("code") == "rate_limited"]
    saved = [f for f in frames if f.get("status") == "saved"]
    assert len(limited) > 75 and len(saved) >= 10 and len(limited) + len(saved) == 150
    assert all(f["retry_after"] > 0 for f in limited), limited[:2]
    assert all(f["sample_id"].startswith("ESP32_LL_01_") for f in limited), limited[:2]
    assert SensorSample.objects.filter(device_id="ESP32_LL_01").count() == len(saved)
    assert [a["status"] for a in acks] == ["saved"] * 5
    assert max(latencies) < 3.0, latencies
