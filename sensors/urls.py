"""Server-rendered routes of the sensors app."""

from __future__ import annotations

from django.urls import path

from sensors import views

app_name = "sensors"
urlpatterns: list = [
    path("sqal/live/", views.dashboard, name="dashboard"),
]
