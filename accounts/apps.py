from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    """Staff accounts and their roles (groups); the top layer, imported by no other app."""

    name = "accounts"
    verbose_name = _("Staff accounts")
