"""``manage.py create_staff_user NAME --role quality|analyst|station-admin``: a staff account in
one role. Prints a generated password once unless ``--password-stdin`` reads one."""

from __future__ import annotations

import secrets
import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts.roles import ROLES


class Command(BaseCommand):
    help = "Create a staff account in one role (quality, analyst or station-admin)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=sorted(ROLES))
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password-stdin", action="store_true", help="Read the password from stdin."
        )

    def handle(self, *args: Any, username: str, role: str, email: str, **options: Any) -> None:
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            raise CommandError(f"a user named {username!r} already exists")
        group = Group.objects.filter(name=ROLES[role]).first()
        if group is None:
            raise CommandError(f"the role group {ROLES[role]!r} is missing: run manage.py migrate")
        generated = not options["password_stdin"]
        password = secrets.token_urlsafe(15) if generated else sys.stdin.readline().rstrip("\n")
        user = User(username=username, email=email, is_staff=True)
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        with transaction.atomic():
            user.set_password(password)
            user.save()
            user.groups.add(group)
        self.stdout.write(f"{username} ({ROLES[role]})" + (f": {password}" if generated else ""))
