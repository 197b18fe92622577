"""Server-rendered routes of the sensors app."""

from __future__ import annotations

from django.urls import path

from sensors import views

app_name = "sensors"
urlpatterns: list = [
    path("sqal/live/", views.dashboard, name="dashboard"),
    path(
        "sqal/live/alerts/<int:pk>/acknowledge/",
        views.alert_acknowledge,
        name="alert_acknowledge",
    ),
    path("sqal/live/alerts/<int:pk>/resolve/", views.alert_resolve, name="alert_resolve"),
]
