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

from gaveurs.routing import origin_validator, websocket_urlpatterns  # noqa: E402


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
        "http": bounded_http(django_asgi_app, settings.ASGI_HTTP_CONCURRENCY),
        # Browsers from other sites are refused; stations (no Origin header) use their token.
        "websocket": origin_validator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
