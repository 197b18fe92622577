"""Server-rendered routes of the optimizer app."""

from __future__ import annotations

app_name = "optimizer"
urlpatterns: list = []
