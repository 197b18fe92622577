"""``manage.py verify_ledger``: check the tamper-evident log against the rows; exit 1 on findings.

Recomputes every leaf from the product rows as they are now, rebuilds the tree, checks every
stored node, every signed head (signature and root) and the consistency between consecutive
heads, names each product whose record changed after sealing, and lists unsealed products.
The outcome is stored (LedgerVerification) and shown to staff in admin.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from traceability.ledger import ledger_verify


class Command(BaseCommand):
    help = "Verify the tamper-evident ledger; non-zero exit when anything is wrong."

    def handle(self, *args, **options) -> None:
        result = ledger_verify()
        for finding in result.findings:
            self.stdout.write(f"[{finding['kind']}] {finding['detail']}")
        if not result.ok:
            raise CommandError(f"ledger verification failed: {result.summary}", returncode=1)
        self.stdout.write(self.style.SUCCESS(result.summary))
