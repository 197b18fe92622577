from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Staff accounts and their roles (groups); the top layer, imported by no other app."""

    name = "accounts"
    verbose_name = "Staff accounts"
