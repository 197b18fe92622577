"""Root URL configuration."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from gaveurs import health, metrics
from gaveurs.api import api

urlpatterns = [
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("traceability.urls")),
    path("", include("feedback.urls")),
    path("", include("sensors.urls")),
    path("", include("optimizer.urls")),
]
