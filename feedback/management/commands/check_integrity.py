"""`manage.py check_integrity`: recompute every stored aggregate from raw rows, report each
difference (exit status 1 when there is any)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from feedback.integrity import integrity_differences


class Command(BaseCommand):
    help = (
        "Recompute stored aggregates (lot review stats, scan counters, review flags, ledger "
        "leaves) from raw rows and report every difference."
    )

    def handle(self, *args, **options) -> None:
        found = integrity_differences()
        for line in found:
            self.stdout.write(line)
        if found:
            raise CommandError(f"{len(found)} differences")
        self.stdout.write(self.style.SUCCESS("Integrity: 0 differences."))
