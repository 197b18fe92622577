"""Server-rendered routes of the traceability app."""

from __future__ import annotations

app_name = "traceability"
urlpatterns: list = []
