"""Root URL configuration."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from gaveurs import views
from gaveurs.api import api

urlpatterns = [
    # First: the consumer pages (``p/...``) are the hot path, and Django tries the patterns in
    # order; none of the others starts with ``p/``.
    path("", include("feedback.urls")),
    path("favicon.ico", views.favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("gaveurs.ops_urls")),
    path("", include("traceability.urls")),
    path("", include("sensors.urls")),
]
