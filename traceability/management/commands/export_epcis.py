"""``manage.py export_epcis --lot CODE | --site CODE [--since DATE] > events.jsonld``.

Writes the EPCIS 2.0 document of a lot or a site (traceability/gs1/epcis.py) to standard
output, one event at a time.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from gaveurs.models import Lot, Site
from traceability.gs1 import epcis


def _since(value: str) -> datetime:
    try:
        if len(value) == 10:
            moment = datetime.combine(date.fromisoformat(value), time.min)
        else:
            moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--since {value!r}: expected YYYY-MM-DD or an ISO 8601 time") from exc
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


class Command(BaseCommand):
    help = "Write the EPCIS 2.0 events (JSON-LD) of a lot or of a site to standard output."

    def add_arguments(self, parser: CommandParser) -> None:
        scope = parser.add_mutually_exclusive_group()
        scope.add_argument("--lot", help="a lot code")
        scope.add_argument("--site", help="a site code")
        parser.add_argument(
            "--since", help="only events at or after this date (YYYY-MM-DD, local time)"
        )

    def handle(
        self, *args: Any, lot: str | None, site: str | None, since: str | None, **options: Any
    ) -> None:
        if not lot and not site:
            raise CommandError("give --lot CODE or --site CODE")
        if lot and not Lot.objects.filter(code=lot).exists():
            raise CommandError(f"no lot with code {lot!r}")
        if site and not Site.objects.filter(code=site).exists():
            raise CommandError(f"no site with code {site!r}")
        flt = epcis.EventFilter(
            lot=lot or None, site=site or None, since=_since(since) if since else None
        )
        events = (event for _, event in epcis.events(flt))
        for chunk in epcis.document_chunks(events):
            self.stdout.write(chunk, ending="")
