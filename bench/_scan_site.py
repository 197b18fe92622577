"""WSGI entry point for bench/scan.py: the project's URLs plus a trivial Django view.

The trivial view goes through the same server, settings and middleware as the scan page, so
the ratio of their rates measures what the scan page itself costs.
"""

from __future__ import annotations

import os
import re

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gaveurs.settings")

from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

settings.ROOT_URLCONF = __name__


def trivial(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


def trivial_db(request: HttpRequest) -> HttpResponse:
    """The trivial view plus one database round trip (the floor of any page that counts)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return HttpResponse("ok", content_type="text/plain")


def trivial_scan_write(request: HttpRequest, qr_code: str) -> HttpResponse:
    """The trivial view plus the scan page's own scan write, as the page makes it: the code's
    format and signature, then the one statement that resolves it, stores the scan event (in
    the request's language) and bumps the counter; no page. The floor of a page that counts
    every scan durably."""
    from traceability.http import client_origin
    from traceability.models import ScanChannel
    from traceability.scans import product_scan

    outcome = product_scan(
        qr_code=qr_code,
        channel=ScanChannel.PAGE,
        origin=client_origin(request),
        language=getattr(request, "LANGUAGE_CODE", ""),
    )
    if outcome.status != "ok":
        return HttpResponse("unknown", content_type="text/plain", status=404)
    return HttpResponse("ok", content_type="text/plain")


application = get_wsgi_application()


_TABLE = re.compile(r'(?:FROM|INTO|UPDATE|JOIN)\s+"?([a-z_]+)', re.IGNORECASE)


def _statement_tag(sql: str) -> str:
    """A statement's verb and first table (``SELECT:consumer_products``): which queries a
    request made, in a word each."""
    verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
    table = _TABLE.search(sql)
    return f"{verb}:{table.group(1) if table else '-'}"


class RequestLog:
    """With ``BENCH_REQUEST_LOG`` (a folder): one line per request, per server process, of what
    the request cost inside the application: ``<X-Bench-Id header> <method> <path kind>
    <status> <wall ms> <thread CPU ms> <queries> <database wall ms> <each query's verb:table>``.
    The client compares the wall time with its own latency for the same id: the rest is time
    spent waiting before the application got the request (the server's queue, the client's own
    event loop)."""

    def __init__(self, app, folder: str) -> None:
        self.app = app
        self.folder = folder
        self.out = None

    def __call__(self, environ, start_response):
        import time

        from django.db import connection

        if self.out is None:
            self.out = open(  # noqa: SIM115  (one per process, open until it ends)
                os.path.join(self.folder, f"requests.{os.getpid()}.log"), "a", buffering=1
            )
        stats = {"n": 0, "db": 0.0, "sql": []}

        def timed(execute, sql, params, many, context):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                stats["n"] += 1
                stats["db"] += time.perf_counter() - started
                stats["sql"].append(_statement_tag(sql))

        status = ["-"]

        def start(code, headers, exc_info=None):
            status[0] = code.split(" ", 1)[0]
            return start_response(code, headers, exc_info)

        wall, cpu = time.perf_counter(), time.thread_time()
        with connection.execute_wrapper(timed):
            body = b"".join(self.app(environ, start))
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        path = environ.get("PATH_INFO", "")
        kind = path.split("/")[1] if path.count("/") > 1 else path
        if path.startswith("/p/"):
            kind = "p/avis" if path.endswith("/avis") else "p"
        self.out.write(
            f"{environ.get('HTTP_X_BENCH_ID', '-')} {environ.get('REQUEST_METHOD')} {kind} "
            f"{status[0]} {wall * 1000:.3f} {cpu * 1000:.3f} {stats['n']} "
            f"{stats['db'] * 1000:.3f} {','.join(stats['sql']) or '-'}\n"
        )
        return [body]


if os.environ.get("BENCH_REQUEST_LOG"):
    application = RequestLog(application, os.environ["BENCH_REQUEST_LOG"])

from gaveurs.urls import urlpatterns as project_urlpatterns  # noqa: E402

urlpatterns = [
    path("bench/trivial", trivial),
    path("bench/trivial-db", trivial_db),
    path("bench/trivial-scan-write/<str:qr_code>", trivial_scan_write),
    *project_urlpatterns,
]
