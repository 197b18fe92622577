"""Server-rendered routes of the feedback app."""

from __future__ import annotations

from django.urls import path

from feedback import views

app_name = "feedback"
urlpatterns: list = [
    path("p/<str:qr_code>/avis", views.submit, name="submit"),
]
