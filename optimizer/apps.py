from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OptimizerConfig(AppConfig):
    name = "optimizer"
    verbose_name = _("Feeding curve optimizer")
