"""ASGI entry point for ``bench/scan.py --server daphne``: same URLs and trivial view."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gaveurs.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

import bench._scan_site  # noqa: E402,F401  (sets ROOT_URLCONF to the bench URLs)

app = get_asgi_application()
