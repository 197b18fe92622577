"""Create a staff API token: ``manage.py create_api_token <username> --name "ERP export"``.

Prints the token once; only its hash is stored.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from traceability.auth import SCOPES, api_token_create


class Command(BaseCommand):
    help = "Create an API token for a staff user (Authorization: Bearer <token>)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="API client", help="What or who uses the token.")
        parser.add_argument(
            "--scope",
            action="append",
            default=[],
            choices=sorted(SCOPES),
            help="Grant a scope (repeatable): "
            + "; ".join(f"{name}: {what}" for name, what in SCOPES.items()),
        )

    def handle(
        self, *args: Any, username: str, name: str, scope: list[str], **options: Any
    ) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        if not (user.is_active and user.is_staff):
            raise CommandError(f"{username!r} must be an active staff user to use the API")
        _, clear = api_token_create(user=user, name=name, scopes=scope)
        self.stdout.write(clear)
