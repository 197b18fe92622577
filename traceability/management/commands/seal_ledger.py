"""``manage.py seal_ledger``: append products not yet in the log, then sign a tree head.

``product_register`` seals each product it creates; this command seals products inserted by
other paths (history imports, fixtures) and signs a head over whatever is pending. Safe to run
at any time (cron), concurrently with registrations: appends take the ledger lock.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from traceability.ledger import ledger_seal_pending


class Command(BaseCommand):
    help = "Seal unsealed products in the tamper-evident ledger and sign a tree head."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-sign", action="store_true", help="append only, sign no head")

    def handle(self, *args, **options) -> None:
        result = ledger_seal_pending(sign=not options["no_sign"])
        head = f", signed head of size {result.head.tree_size}" if result.head else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"sealed {result.appended} product(s); log size {result.tree_size}{head}"
            )
        )
