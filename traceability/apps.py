from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TraceabilityConfig(AppConfig):
    name = "traceability"
    verbose_name = _("Traceability (consumer products)")

    def ready(self) -> None:
        # Django's documented place to connect receivers (apps are loaded by now).
        from sensors.signals import products_wanted
        from traceability.tasks import products_wanted_receiver

        products_wanted.connect(products_wanted_receiver, dispatch_uid="traceability.product")
