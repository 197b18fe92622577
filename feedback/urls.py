"""Server-rendered routes of the feedback app: the consumer product page and its review form."""

from __future__ import annotations

from django.urls import path

from feedback import views

app_name = "feedback"
urlpatterns: list = [
    path("p/<str:qr_code>", views.scan, name="scan"),
    path("p/<str:qr_code>/avis", views.submit, name="submit"),
]
