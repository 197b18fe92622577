from __future__ import annotations

from django.apps import AppConfig


class GaveursConfig(AppConfig):
    name = "gaveurs"
    verbose_name = "Production (gavage)"
