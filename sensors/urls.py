"""Server-rendered routes of the sensors app."""

from __future__ import annotations

app_name = "sensors"
urlpatterns: list = []
