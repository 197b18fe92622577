"""manage.py import_history FILE.csv: load historical lots, doses, SQAL results and ratings."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from optimizer.history import HistoryImportError, history_import


class Command(BaseCommand):
    help = (
        "Import a history CSV (layout: README, 'Importing history'). All or nothing: a file "
        "with an error loads nothing and each error names its line and column."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="the CSV file (UTF-8, comma separated, with a header)")

    def handle(self, *args, **options) -> None:
        path = Path(options["file"])
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise CommandError(f"{path}: no such file") from None
        except UnicodeDecodeError as exc:
            raise CommandError(f"{path}: not UTF-8 text ({exc})") from None
        try:
            counts = history_import(text=text, source=path.name)
        except HistoryImportError as exc:
            shown = exc.errors[:50]
            more = len(exc.errors) - len(shown)
            message = f"{path}: rejected, nothing was loaded.\n" + "\n".join(shown)
            if more:
                message += f"\n… and {more} more errors"
            raise CommandError(message) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {counts['lots']} lots, {counts['feeding_records']} feeding records, "
                f"{counts['products']} products, {counts['feedback']} reviews from {path}."
            )
        )
