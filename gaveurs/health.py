"""Health endpoints for load balancers and orchestrators (django-health-check).

``/health/live``: 200 as long as the process answers; touches no dependency (a database outage
must not make an orchestrator restart every web process).
``/health/ready``: the database, the Celery broker, the channel layer and the cache, each probed
and reported on its own: 200 when all pass, 503 naming the failing components otherwise. The
database and cache probes are django-health-check's; the broker and channel-layer ones are
written on its ``HealthCheck`` base (it has none that fits: its Celery check needs a running
worker, which a web process does not).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import uuid

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from health_check.base import HealthCheck
from health_check.checks import Cache, Database
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView
from sqlalchemy import text


@dataclasses.dataclass
class Broker(HealthCheck):
    """Opens (and closes) a connection to the Celery broker of ``CELERY_BROKER_URL``."""

    timeout: datetime.timedelta = dataclasses.field(
        default=datetime.timedelta(seconds=3), repr=False
    )

    def run(self) -> None:
        from gaveurs.celery import app

        seconds = self.timeout.total_seconds()
        try:
            with app.connection_for_write(connect_timeout=seconds) as conn:
                conn.ensure_connection(
                    max_retries=1, interval_start=0, interval_step=0, timeout=seconds
                )
                # The embedded transport (kombu's SQLAlchemy) connects lazily: ask it a query.
                session = getattr(conn.default_channel, "session", None)
                if session is not None:
                    session.execute(text("SELECT 1"))
                    session.commit()
        except Exception as exc:  # kombu raises its transports' own errors
            raise ServiceUnavailable(f"broker unreachable ({type(exc).__name__})") from exc


@dataclasses.dataclass
class ChannelLayer(HealthCheck):
    """Sends a message to a new channel of the default channel layer and reads it back."""

    timeout: datetime.timedelta = dataclasses.field(
        default=datetime.timedelta(seconds=3), repr=False
    )

    async def run(self) -> None:
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is None:
            raise ServiceUnavailable("no channel layer configured")
        probe = uuid.uuid4().hex
        try:
            channel = await layer.new_channel("health.")
            await layer.send(channel, {"type": "health.probe", "probe": probe})
            message = await asyncio.wait_for(layer.receive(channel), self.timeout.total_seconds())
        except TimeoutError as exc:
            raise ServiceUnavailable("channel layer did not deliver the probe") from exc
        except Exception as exc:
            raise ServiceUnavailable(f"channel layer unreachable ({type(exc).__name__})") from exc
        if message.get("probe") != probe:
            raise ServiceUnavailable("channel layer returned another message")


# Component name in the response -> the check that probes it.
COMPONENTS: dict[str, type[HealthCheck]] = {
    "database": Database,
    "broker": Broker,
    "channel_layer": ChannelLayer,
    "cache": Cache,
}


class ReadyView(HealthCheckView):
    """``{"status": "ok"|"fail", "components": {name: {"status", "time_ms", "error"?}}}``."""

    checks = tuple(COMPONENTS.values())

    async def get(self, request: HttpRequest, *args, **kwargs) -> JsonResponse:
        names = list(COMPONENTS)
        with self.get_executor() as executor:
            results = await asyncio.gather(
                *(check.get_result(executor) for check in self.get_checks())
            )
        components: dict[str, dict] = {}
        for name, result in zip(names, results, strict=True):
            entry: dict = {
                "status": "fail" if result.error else "ok",
                "time_ms": round(result.time_taken * 1000, 1),
            }
            if result.error:
                entry["error"] = str(result.error)
            components[name] = entry
        failing = [name for name, entry in components.items() if entry["status"] == "fail"]
        body = {"status": "fail" if failing else "ok", "components": components}
        if failing:
            body["failing"] = failing
        return JsonResponse(body, status=503 if failing else 200)


@never_cache
def live(request: HttpRequest) -> JsonResponse:
    """The process is up and serving requests; nothing else is asked."""
    return JsonResponse({"status": "ok"})


ready = ReadyView.as_view()
