from __future__ import annotations

from django.apps import AppConfig


class SensorsConfig(AppConfig):
    name = "sensors"
    verbose_name = "SQAL quality control"
