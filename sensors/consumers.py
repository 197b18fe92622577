"""Websocket consumers: stations at /ws/sensors/, the staff dashboard at /ws/sensors/live/.

The station consumer is thin: it authenticates the connection, bounds the connections per station
(SQAL_MAX_CONNECTIONS_PER_STATION, per process), throttles samples, pings and heartbeats (two
token buckets per connection), validates each frame (``frames.parse_frame``:
``schemas.parse_message``, with a fast path for the samples it accepts) and hands samples to the
batcher; the ack is sent when the sample's own transaction has committed. A station may send the
next samples before the previous acks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from gaveurs.logs import frame_request_id
from sensors import live, services
from sensors.batching import batcher
from sensors.frames import parse_frame
from sensors.schemas import (
    FieldWarning,
    Heartbeat,
    Hello,
    Ping,
    ProtocolError,
    Reading,
    sample_id_of,
)

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = "1"
_HEARTBEAT = re.compile(r'^\s*\{\s*"type"\s*:\s*"heartbeat"')


class TokenBucket:
    """``rate`` messages per second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0 when a message may pass now, else the seconds until it could."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate if self.rate > 0 else 60.0


def _token_from_scope(scope: dict[str, Any]) -> str | None:
    """A station token from ``Authorization: Bearer``, ``X-Device-Token``, or ``?token=`` where
    SQAL_ALLOW_QUERY_TOKEN allows it (raises DeviceRefused otherwise)."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, credential = value.decode("latin1").partition(" ")
            if scheme.lower() in ("bearer", "token") and credential.strip():
                return credential.strip()
        if name == b"x-device-token" and value.strip():
            return value.decode("latin1").strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    token = query.get("token", [""])[0].strip()
    if token and not settings.SQAL_ALLOW_QUERY_TOKEN:
        # Not an anonymous station either: a token was sent, in the wrong place.
        raise services.DeviceRefused(
            "token_in_url", "send the station token in Authorization: Bearer, not in the URL"
        )
    return token or None


# Open station connections of this server process, by station id (SensorConsumer).
_open_connections: dict[str, int] = {}


class FrameDispatch:
    """A websocket consumer's dispatch without Channels' per-frame thread hop.

    Channels closes stale database connections before every message, a hop to the sync thread
    and back. A consumer whose frames never touch the ORM directly (the batch writers own their
    connections; connect and hello go through database_sync_to_async, which does it) skips that
    hop: it cost as much as the rest of a sensor frame's handling. Each frame gets a request id
    of its own, carried by its log lines and its ack task. Mixed in before the Channels base
    class (``bench/ingest.py``'s echo ceiling uses it too, so both pay the same dispatch).
    """

    async def dispatch(self, message: dict[str, Any]) -> None:
        with frame_request_id():
            if message["type"] == "websocket.receive":
                await self.websocket_receive(message)  # type: ignore[attr-defined]
            else:
                await super().dispatch(message)  # type: ignore[misc]


class SensorConsumer(FrameDispatch, AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.device = None
        self.closed = False
        self.pending: set[asyncio.Task] = set()
        self.in_flight = asyncio.Semaphore(max(1, settings.SQAL_MAX_IN_FLIGHT))
        self.bucket = TokenBucket(settings.SQAL_THROTTLE_RATE, settings.SQAL_THROTTLE_BURST)
        self.heartbeats = TokenBucket(settings.SQAL_HEARTBEAT_RATE, settings.SQAL_HEARTBEAT_BURST)
        self.counted: str | None = None
        try:
            self.device = await database_sync_to_async(services.device_authenticate)(
                token=_token_from_scope(self.scope),
                allow_unregistered=settings.SQAL_ALLOW_UNREGISTERED_DEVICES,
            )
        except services.DeviceRefused as exc:
            logger.info("station refused at handshake: %s", exc.detail)
            await self.close(code=4401)  # before accept: the handshake gets HTTP 403
            return
        await self.accept()
        if self.device is not None and not self._count_connection(self.device.device_id):
            limit = settings.SQAL_MAX_CONNECTIONS_PER_STATION
            logger.warning("station %s refused: %d connections open", self.device.device_id, limit)
            # Accepted only to say why (a handshake refusal is a bare HTTP 403), then closed.
            await self.send_json(
                ProtocolError(
                    "too_many_connections",
                    f"station {self.device.device_id} already has {limit} open connections "
                    f"(max_connections_per_station); close one before opening another",
                    rule="max_connections_per_station",
                ).frame()
            )
            await self.close(code=4429)
            return
        await self.send_json(
            {
                "type": "connection_established",
                # The ESP32 client logs this line ("Backend says: ...").
                "message": "Connexion établie avec Gaveurs Trace : envoyez vos mesures.",
                "protocol_version": PROTOCOL_VERSION,
                "server_time": timezone.now().isoformat(),
                "device_id": self.device.device_id if self.device else None,
                "authenticated": self.device is not None,
                "max_message_bytes": settings.SQAL_MAX_MESSAGE_BYTES,
            }
        )

    async def disconnect(self, code: int) -> None:
        self.closed = True
        if self.counted is not None:
            left = _open_connections.get(self.counted, 1) - 1
            if left > 0:
                _open_connections[self.counted] = left
            else:
                _open_connections.pop(self.counted, None)
            self.counted = None

    def _count_connection(self, device_id: str) -> bool:
        """Count this connection for its station, unless the station has reached
        SQAL_MAX_CONNECTIONS_PER_STATION (then False: the newest connection is the one refused).
        Per server process: the event loop runs one consumer at a time between awaits, so the
        check and the count cannot interleave."""
        limit = settings.SQAL_MAX_CONNECTIONS_PER_STATION
        open_now = _open_connections.get(device_id, 0)
        if limit and open_now >= limit:
            return False
        _open_connections[device_id] = open_now + 1
        self.counted = device_id
        return True

    async def send_json(self, frame: dict[str, Any]) -> None:
        if not self.closed:
            await self.send(text_data=json.dumps(frame))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            try:
                text_data = (bytes_data or b"").decode()
            except UnicodeDecodeError:
                await self.send_json(
                    ProtocolError(
                        "invalid_json", "binary frames must be UTF-8 JSON", rule="utf8"
                    ).frame()
                )
                return
        if len(text_data) < 1024 and _HEARTBEAT.search(text_data):
            # Liveness frames have a bucket of their own: a station's samples never use up its
            # heartbeats (one every 30 s), and a flood of heartbeats is refused like any other.
            await self._heartbeat(text_data)
            return
        wait = self.bucket.take()
        if wait:
            await self.send_json(
                {
                    **ProtocolError(
                        "rate_limited",
                        f"too many messages on this connection (more than "
                        f"{settings.SQAL_THROTTLE_RATE:g}/s); resend after the delay",
                        sample_id=sample_id_of(text_data[:4096]),
                        rule="throttle",
                    ).frame(),
                    "retry_after": math.ceil(wait * 1000) / 1000,
                }
            )
            return
        try:
            warnings: list[FieldWarning] = []
            message = parse_frame(
                text_data, max_bytes=settings.SQAL_MAX_MESSAGE_BYTES, warnings=warnings
            )
            for warning in warnings:  # accepted, but changed: say what and where
                await self.send_json(warning.frame(sample_id=getattr(message, "sample_id", None)))
            if isinstance(message, Reading):
                await self._sample(message, text_data)
            elif isinstance(message, Hello):
                await self._hello(message)
            elif isinstance(message, Heartbeat):
                await self._heartbeat(text_data)
            elif isinstance(message, Ping):
                await self.send_json({"type": "pong", "server_time": timezone.now().isoformat()})
        except ProtocolError as exc:
            await self.send_json(exc.frame())
        except Exception:  # keep the station connected; it will resend what was not acked
            logger.exception("could not handle a station message")
            await self.send_json(
                ProtocolError(
                    "internal_error",
                    "the server could not handle this message; resend it later",
                    sample_id=sample_id_of(text_data[:4096]),
                ).frame()
            )

    async def _heartbeat(self, text: str) -> None:
        wait = self.heartbeats.take()
        if wait:
            await self.send_json(
                {
                    **ProtocolError(
                        "rate_limited",
                        f"too many heartbeats on this connection (more than "
                        f"{settings.SQAL_HEARTBEAT_RATE:g}/s); one every 30 s is enough",
                        rule="heartbeat_throttle",
                    ).frame(),
                    "retry_after": math.ceil(wait * 1000) / 1000,
                }
            )
            return
        await self.send_json({"type": "heartbeat_ack", "server_time": timezone.now().isoformat()})

    def _check_identity(self, device_id: str, sample_id: str | None) -> None:
        if self.device is not None and device_id != self.device.device_id:
            raise ProtocolError(
                "device_mismatch",
                f"device_id: this connection belongs to {self.device.device_id}, "
                f"not {device_id} (token_device)",
                sample_id=sample_id,
                field="device_id",
                rule="token_device",
            )

    async def _hello(self, hello: Hello) -> None:
        self._check_identity(hello.device_id, None)
        try:
            device = await database_sync_to_async(services.device_hello)(
                hello=hello,
                authenticated=self.device is not None,
                allow_unregistered=settings.SQAL_ALLOW_UNREGISTERED_DEVICES,
            )
        except services.DeviceRefused as exc:
            raise ProtocolError(exc.code, exc.detail, field="device_id") from None
        await self.send_json(
            {
                "type": "hello_ack",
                "device_id": device.device_id,
                "site_code": services.site_code_for(
                    device=device, device_id=device.device_id, message_site_code=None
                ),
                "assigned_lot": device.assigned_lot_id,
                "server_time": timezone.now().isoformat(),
            }
        )

    async def _sample(self, reading: Reading, text: str) -> None:
        self._check_identity(reading.device_id, reading.sample_id)
        item = services.SampleInput(
            reading=reading,
            payload=text,
            authenticated=self.device is not None,
        )
        # Back-pressure: past SQAL_MAX_IN_FLIGHT unacknowledged samples, stop reading frames.
        await self.in_flight.acquire()
        task = asyncio.get_running_loop().create_task(self._store_and_ack(item))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _store_and_ack(self, item: services.SampleInput) -> None:
        try:
            result = await batcher().submit(item)
            frame = result.frame()
        except Exception:
            logger.exception("sample %s failed", item.reading.sample_id)
            frame = ProtocolError(
                "internal_error",
                "the server could not store this sample; resend it later",
                sample_id=item.reading.sample_id,
            ).frame()
        finally:
            self.in_flight.release()
        await self.send_json(frame)


class LiveDashboardConsumer(AsyncWebsocketConsumer):
    """Pushes committed samples, grade counts and alerts to logged-in staff."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_staff:
            await self.close(code=4403)
            return
        if not await database_sync_to_async(user.has_perm)(live.LIVE_PERMISSION):
            await self.close(code=4403)
            return
        self.language = live.language_from_scope(self.scope)
        self.can_handle = await database_sync_to_async(user.has_perm)(live.ALERT_PERMISSION)
        await self.channel_layer.group_add(live.GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(live.GROUP, self.channel_name)

    async def live_update(self, event: dict[str, Any]) -> None:
        await self.send(
            text_data=live.render_update(event, language=self.language, can_handle=self.can_handle)
        )
