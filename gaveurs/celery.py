"""The Celery application. Configuration comes from Django settings (CELERY_* names)."""

from __future__ import annotations

import os

from celery import Celery

from gaveurs import broker  # noqa: F401  (registers the embedded "gtsqla" transport)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gaveurs.settings")

app = Celery("gaveurs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
