from __future__ import annotations

from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.utils.translation import gettext_lazy as _

from gaveurs.db_session import hand_qr_key


class GaveursConfig(AppConfig):
    name = "gaveurs"
    verbose_name = _("Production (gavage)")

    def ready(self) -> None:
        connection_created.connect(hand_qr_key, dispatch_uid="gaveurs.hand_qr_key")
