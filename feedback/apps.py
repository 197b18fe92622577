from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class FeedbackConfig(AppConfig):
    name = "feedback"
    verbose_name = _("Consumer feedback")

    def ready(self) -> None:
        # Django's documented place to connect receivers (apps are loaded by now).
        from feedback.tasks import head_signed_receiver, product_registered_receiver
        from traceability.signals import head_signed, product_registered

        head_signed.connect(head_signed_receiver, dispatch_uid="feedback.scan_pages")
        product_registered.connect(
            product_registered_receiver, dispatch_uid="feedback.scan_pages_registered"
        )
