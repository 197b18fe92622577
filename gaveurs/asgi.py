"""ASGI entry point: HTTP through Django, websockets through Channels (served by Daphne)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gaveurs.settings")

# Django must be set up before the consumers (and their models) are imported.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.signals import request_finished  # noqa: E402
from django.db import connections  # noqa: E402

from gaveurs.logs import asgi_with_request_id  # noqa: E402
from gaveurs.routing import origin_validator, websocket_urlpatterns  # noqa: E402


def close_request_connections(**kwargs) -> None:
    """Close the database connections of an HTTP request when it finishes.

    Django gives each ASGI request a context, hence a connection, of its own: one kept open for
    reuse (CONN_MAX_AGE) is never reused, and stays open until PostgreSQL runs out of connections
    (bench/soak.py: 57 idle connections after 12 s of 60 clients; Django's docs: disable
    persistent connections under ASGI). The websocket writers' threads keep theirs. A connection
    inside a transaction (a test's) is left alone.
    """
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close()


request_finished.connect(close_request_connections)


def bounded_http(app, limit: int):
    """``app`` with at most ``limit`` requests in it at once (settings.ASGI_HTTP_CONCURRENCY);
    the others wait here, in the event loop, holding no thread and no database connection."""
    if limit <= 0:
        return app
    import asyncio

    semaphore = asyncio.Semaphore(limit)

    async def bounded(scope, receive, send):
        async with semaphore:
            await app(scope, receive, send)

    return bounded


application = ProtocolTypeRouter(
    {
        # Every log line of a request, Django's own included, carries its id (gaveurs/logs.py).
        "http": bounded_http(asgi_with_request_id(django_asgi_app), settings.ASGI_HTTP_CONCURRENCY),
        # Browsers from other sites are refused; stations (no Origin header) use their token.
        "websocket": origin_validator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
