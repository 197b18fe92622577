"""`manage.py ensure_admin`: create the development admin account once and print its login."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create (once) a superuser for development and print its login."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument(
            "--password-file",
            default=str(Path(settings.BASE_DIR) / ".run" / "admin-password"),
            help="where the generated password is kept (git-ignored)",
        )

    def handle(self, *args, username: str, password_file: str, **options) -> None:
        if settings.PRODUCTION:
            raise CommandError("ensure_admin is for development; use createsuperuser in production")
        path = Path(password_file)
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first()
        if user is None or not path.exists():
            password = secrets.token_urlsafe(12)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(password)
            path.chmod(0o600)
            if user is None:
                user_model.objects.create_superuser(username, f"{username}@localhost", password)
            else:
                user.set_password(password)
                user.save(update_fields=["password"])
        password = path.read_text().strip()
        self.stdout.write(f"Admin login: {username} / {password}")
