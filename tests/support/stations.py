"""Talking to the station protocol in tests: the fixture messages, message builders, a station's
websocket client, and ingestion called as the consumer calls it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from websockets.asyncio.client import connect

from sensors.examples import nested_example
from sensors.schemas import Reading, parse_message
from sensors.services import IngestResult, ingest_sample

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


def message(sample_id: str = "ESP32_LL_01_0001", **changes) -> str:
    """The flat ESP32 fixture message with another sample id, fusion fields or top-level fields."""
    m = json.loads(fixture_text("sensor_data_flat.json"))
    m["sample_id"] = sample_id
    fusion = changes.pop("fusion", {})
    m["fusion"].update(fusion)
    m.update(changes)
    return json.dumps(m)


def nested(sample_id: str = "ESP32_LL_01_N0001", **changes) -> dict:
    """The fixture message in the nested form."""
    flat = json.loads(fixture_text("sensor_data_flat.json"))
    return nested_example(flat, sample_id=sample_id, **changes)


def ingest(
    text: str, *, allow_unregistered: bool = True, authenticated: bool = False
) -> IngestResult:
    """Parse a message and store it, as the websocket consumer does."""
    reading = Reading.from_message(parse_message(text, max_bytes=10**6))
    return ingest_sample(
        reading=reading,
        payload=text,
        allow_unregistered=allow_unregistered,
        authenticated=authenticated,
    )


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def open_station(url: str, token: str | None = None, **kw):
    """Connect like a station: no Origin header, token as a bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ws = await connect(url, additional_headers=headers, max_size=None, open_timeout=10, **kw)
    greeting = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert greeting["type"] == "connection_established"
    return ws


async def exchange(ws, message: str | dict) -> dict:
    await ws.send(message if isinstance(message, str) else json.dumps(message))
    return json.loads(await asyncio.wait_for(ws.recv(), 20))
