"""``manage.py purge_expired [--dry-run] [--batch-size N]``: remove the rows past their
retention period (accounts.retention; periods in settings, RETENTION_*). Run it daily."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts.retention import DEFAULT_BATCH_SIZE, expired_purge


class Command(BaseCommand):
    help = "Remove scan events, forged-code attempts, task results and logs past retention."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be removed; remove nothing."
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Rows deleted per statement (default {DEFAULT_BATCH_SIZE}).",
        )

    def handle(self, *args: Any, dry_run: bool, batch_size: int, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        verb = "would be removed" if dry_run else "removed"
        total = 0
        for purged in expired_purge(dry_run=dry_run, batch_size=batch_size):
            before = timezone.localtime(purged.before).strftime("%Y-%m-%d %H:%M")
            self.stdout.write(f"{purged.name} (before {before}): {purged.count} {verb}")
            total += purged.count
        self.stdout.write(f"total: {total} {verb}{' (dry run)' if dry_run else ''}")
