"""Retention: what is removed, and when (docs/privacy.md; the periods are settings).

``expired_purge`` deletes, for each kind of row kept for a limited time, the rows older than its
period, set-based: ``DELETE … WHERE pk IN (SELECT pk … LIMIT batch)`` repeated until a batch
comes back short, each batch its own short transaction (no per-row loop, no long lock). Its home
is the top layer because it spans apps: scans (traceability), Celery results and staff login
logs (third-party apps).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from axes.models import AccessFailureLog, AccessLog
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Model, QuerySet
from django.utils import timezone
from django_celery_results.models import GroupResult, TaskResult

from traceability.models import DailySalt, ForgedScanAttempt, ProductScanClient, ScanEvent

DEFAULT_BATCH_SIZE = 5000


@dataclass(frozen=True)
class Expiry:
    """One kind of row kept for a limited time: rows whose ``field`` is before the cutoff."""

    name: str
    model: type[Model]
    field: str
    # None: rows of past client-hash days. Those days are UTC dates (traceability.scans
    # .client_hash), so the cutoff is today's UTC midnight, not the local one: a purge run just
    # after local midnight must not remove the salt still in use.
    days_setting: str | None

    def cutoff(self, now: datetime) -> datetime:
        if self.days_setting is None:
            return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return now - timedelta(days=getattr(settings, self.days_setting))

    def expired(self, now: datetime) -> QuerySet:
        cutoff = self.cutoff(now)
        if self.days_setting is None:
            cutoff = cutoff.date()
        return self.model.objects.filter(**{f"{self.field}__lt": cutoff})


EXPIRIES = [
    Expiry("scan events", ScanEvent, "scanned_at", "RETENTION_SCAN_EVENTS_DAYS"),
    Expiry(
        "forged-code attempts", ForgedScanAttempt, "attempted_at", "RETENTION_FORGED_ATTEMPTS_DAYS"
    ),
    Expiry("Celery task results", TaskResult, "date_done", "RETENTION_TASK_RESULTS_DAYS"),
    Expiry("Celery group results", GroupResult, "date_done", "RETENTION_TASK_RESULTS_DAYS"),
    Expiry("staff login logs", AccessLog, "attempt_time", "RETENTION_LOGS_DAYS"),
    Expiry("staff failed-login logs", AccessFailureLog, "attempt_time", "RETENTION_LOGS_DAYS"),
    # The scan path deletes past days' salts when it makes a day's salt, so after a day without
    # scans the last one stays: that day's hashes become unlinkable only once it is gone.
    Expiry("client-hash salts of past days", DailySalt, "day", None),
    # Pairs only count distinct clients within their day (a client's hash changes every day).
    Expiry("(unit, client hash) pairs of past days", ProductScanClient, "day", None),
]


@dataclass(frozen=True)
class Purged:
    name: str
    before: datetime  # rows older than this were (or, in a dry run, would be) removed
    count: int


def _delete_in_batches(queryset: QuerySet, batch_size: int) -> int:
    model = queryset.model
    quote = connection.ops.quote_name
    pk = model._meta.pk
    pk_fields = getattr(pk, "fields", None) or [pk]  # a composite key lists its fields
    key = ", ".join(quote(field.column) for field in pk_fields)
    select, params = (
        queryset.order_by()
        .values(*(field.attname for field in pk_fields))[:batch_size]
        .query.sql_with_params()
    )
    sql = f"DELETE FROM {quote(model._meta.db_table)} WHERE ({key}) IN ({select})"
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
            deleted = cursor.rowcount
        total += deleted
        if deleted < batch_size:
            return total


def expired_purge(
    *, dry_run: bool = False, batch_size: int = DEFAULT_BATCH_SIZE, now: datetime | None = None
) -> list[Purged]:
    """Remove every expired row (or only count them, ``dry_run``); one ``Purged`` per kind."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    now = now or timezone.now()
    done = []
    for expiry in EXPIRIES:
        expired = expiry.expired(now)
        count = expired.count() if dry_run else _delete_in_batches(expired, batch_size)
        done.append(Purged(name=expiry.name, before=expiry.cutoff(now), count=count))
    return done
