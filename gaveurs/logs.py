"""Request ids and log formats: every log line a request or a websocket frame causes names it.

1. The WSGI and ASGI entry points (``wsgi_with_request_id``, ``asgi_with_request_id``) take the
   id from ``X-Request-ID`` when ``REQUEST_ID_TRUST_HEADER`` says a trusted proxy sets it (and
   it is a sane token), else make one, and keep it in a context variable for all of Django's
   handling. ``RequestIdMiddleware`` (first in MIDDLEWARE) returns it in the response's
   ``X-Request-ID`` header and writes one access line per request (``gaveurs.request``;
   ``LOG_REQUESTS``). No database access, no header copy.
2. Websocket consumers call ``frame_request_id()`` around each frame they handle: the lines of
   that frame, and of the tasks it starts (an ack sent later), carry the frame's id.
3. ``RequestIdFilter`` puts the current id on every record (``-`` outside a request), so both
   formats print it; ``JsonFormatter`` writes one JSON object per line (``LOG_FORMAT=json``, the
   default when ``DJANGO_ENV=production``).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

HEADER = "X-Request-ID"
_META_KEY = "HTTP_X_REQUEST_ID"
# What a proxy's id may look like (uuids, hex, nginx's $request_id, AWS trace ids...): anything
# else is replaced, so a client cannot write arbitrary text into the logs.
_SANE_ID = re.compile(r"^[A-Za-z0-9._:=+/-]{1,128}$")

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
access_logger = logging.getLogger("gaveurs.request")


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return _request_id.get()


@contextlib.contextmanager
def bound_request_id(request_id: str | None = None) -> Iterator[str]:
    """The lines logged inside this block (and in tasks started from it) carry ``request_id``."""
    value = request_id or new_request_id()
    token = _request_id.set(value)
    try:
        yield value
    finally:
        _request_id.reset(token)


def frame_request_id() -> contextlib.AbstractContextManager[str]:
    """A fresh id for one websocket frame (see the module docstring, point 2)."""
    return bound_request_id(None)


def request_id_from(meta: dict) -> str:
    """The id a trusted proxy sent in ``X-Request-ID``, else a new one."""
    if settings.REQUEST_ID_TRUST_HEADER:
        sent = meta.get(_META_KEY, "")
        if sent and _SANE_ID.match(sent):
            return sent
    return new_request_id()


def wsgi_with_request_id(app: Callable) -> Callable:
    """The WSGI application with the request id bound around all of Django's handling (its
    "Not Found" and error lines come after the middleware has returned)."""

    def application(environ: dict, start_response: Callable) -> Any:
        with bound_request_id(request_id_from(environ)):
            return app(environ, start_response)

    return application


def asgi_with_request_id(app: Callable) -> Callable:
    """The same for an ASGI HTTP application."""

    async def application(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        meta = {}
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                meta[_META_KEY] = value.decode("latin1")
                break
        with bound_request_id(request_id_from(meta)):
            await app(scope, receive, send)

    return application


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.log_requests = settings.LOG_REQUESTS

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Bound already by the WSGI or ASGI entry point; not under the test client.
        request_id = _request_id.get() or request_id_from(request.META)
        request.request_id = request_id
        token = _request_id.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[HEADER] = request_id
            if self.log_requests:
                access_logger.info(
                    "%s %s %s",
                    request.method,
                    request.path,
                    response.status_code,
                    extra={
                        "method": request.method,
                        "path": request.path,
                        "status": response.status_code,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            return response
        finally:
            _request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (the current one, or ``-``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get() or "-"
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: time, level, logger, message, request_id and any ``extra``."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault(
            "fmt", ["asctime", "levelname", "name", "message", "request_id", "process"]
        )
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level"})
        kwargs.setdefault("timestamp", False)
        super().__init__(*args, **kwargs)
