"""Websocket routes of every app, gathered for the ASGI application, and their origin check."""

from __future__ import annotations

from urllib.parse import urlparse, urlsplit

from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.urls import path

from sensors.consumers import LiveDashboardConsumer, SensorConsumer

websocket_urlpatterns: list = [
    path("ws/sensors/", SensorConsumer.as_asgi()),
    path("ws/sensors/live/", LiveDashboardConsumer.as_asgi()),
]


class BrowserOriginValidator(OriginValidator):
    """Refuses cross-site browser connections; lets through clients that send no Origin.

    Browsers always send Origin on a websocket handshake, so a page of another site is refused
    (cross-site websocket hijacking). Stations (ESP32, simulators) send none and authenticate
    with their token instead; channels' own validator would refuse them.

    The whole origin is compared (scheme, host and port), not only the host: a page served on
    ``http://`` or on another port of the same host is another origin. Allowed: the origin the
    connection itself came to (``ws`` → ``http``, ``wss`` → ``https``, its Host header),
    ``PUBLIC_BASE_URL`` and ``CSRF_TRUSTED_ORIGINS``; the host must be allowed too.
    """

    async def __call__(self, scope, receive, send):
        origin = None
        for name, value in scope.get("headers", []):
            if name == b"origin":
                origin = urlparse(value.decode("latin1"))
        if origin is None or (
            super().valid_origin(origin)
            and f"{origin.scheme}://{origin.netloc}".lower() in trusted_websocket_origins(scope)
        ):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


def trusted_websocket_origins(scope: dict) -> set[str]:
    origins = {_origin_of(o) for o in settings.CSRF_TRUSTED_ORIGINS}
    origins.add(_origin_of(settings.PUBLIC_BASE_URL))
    host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin1").lower()
    if host:
        scheme = "https" if scope.get("scheme") == "wss" else "http"
        origins.add(f"{scheme}://{host}")
    return origins - {""}


def origin_validator(application):
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return BrowserOriginValidator(application, allowed_hosts)
