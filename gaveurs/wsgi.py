"""WSGI entry point (the consumer pages can be served by a WSGI server)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gaveurs.settings")

_django = get_wsgi_application()

from gaveurs.logs import wsgi_with_request_id  # noqa: E402

# Every log line of a request, Django's own included, carries its id (gaveurs/logs.py).
application = wsgi_with_request_id(_django)
