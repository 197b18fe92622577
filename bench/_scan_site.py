"""WSGI entry point for bench/scan.py: the project's URLs plus a trivial Django view.

The trivial view goes through the same server, settings and middleware as the scan page, so
the ratio of their rates measures what the scan page itself costs.
"""

from __future__ import annotations

import os

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
    """The trivial view plus the scan page's one statement (resolve the code, store the scan
    event, bump the counter): the floor of a page that counts every scan durably."""
    from traceability.http import client_origin
    from traceability.models import ScanChannel
    from traceability.scans import scan_record

    scan_record(qr_code=qr_code, channel=ScanChannel.PAGE, origin=client_origin(request))
    return HttpResponse("ok", content_type="text/plain")


application = get_wsgi_application()

from gaveurs.urls import urlpatterns as project_urlpatterns  # noqa: E402

urlpatterns = [
    path("bench/trivial", trivial),
    path("bench/trivial-db", trivial_db),
    path("bench/trivial-scan-write/<str:qr_code>", trivial_scan_write),
    *project_urlpatterns,
]
