"""Operations endpoints: health for load balancers and orchestrators, Prometheus metrics."""

from __future__ import annotations

from django.urls import path

from gaveurs import health, metrics

urlpatterns = [
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", metrics.metrics_view, name="metrics"),
]
