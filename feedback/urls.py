"""Server-rendered routes of the feedback app: the consumer product page and its review form."""

from __future__ import annotations

from django.urls import path
from django.views.generic import RedirectView

from feedback import views

app_name = "feedback"
urlpatterns: list = [
    path("p/<str:qr_code>", views.scan, name="scan"),
    # A scan URL typed or pasted with a trailing slash: the canonical page, not a 404.
    path(
        "p/<str:qr_code>/",
        RedirectView.as_view(pattern_name="feedback:scan", permanent=True, query_string=True),
    ),
    path("p/<str:qr_code>/avis", views.submit, name="submit"),
]
