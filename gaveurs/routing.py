"""Websocket routes of every app, gathered for the ASGI application, and their origin check."""

from __future__ import annotations

from channels.security.websocket import OriginValidator
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
    """

    def valid_origin(self, parsed_origin) -> bool:
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)


def origin_validator(application):
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return BrowserOriginValidator(application, allowed_hosts)
