"""manage.py purge_expired: rows past their retention period go, fresh ones stay."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from axes.models import AccessFailureLog, AccessLog
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_results.models import TaskResult

from accounts.retention import expired_purge
from feedback.integrity import scan_counter_differences
from tests.factories import make_product
from traceability.models import (
    DailySalt,
    ForgedScanAttempt,
    ProductScanClient,
    ProductScanStats,
    ScanEvent,
)
from traceability.scans import ClientOrigin, client_hash, scan_record

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


@pytest.fixture
def retention(settings):
    settings.RETENTION_SCAN_EVENTS_DAYS = 30
    settings.RETENTION_FORGED_ATTEMPTS_DAYS = 10
    settings.RETENTION_TASK_RESULTS_DAYS = 7
    settings.RETENTION_LOGS_DAYS = 20
    return settings


def rows() -> dict[str, set]:
    return {
        "scans": set(ScanEvent.objects.values_list("client_hash", flat=True)),
        "forged": set(ForgedScanAttempt.objects.values_list("code", flat=True)),
        "tasks": set(TaskResult.objects.values_list("task_id", flat=True)),
        "logins": set(AccessLog.objects.values_list("username", flat=True)),
        "failures": set(AccessFailureLog.objects.values_list("username", flat=True)),
        "salts": set(DailySalt.objects.values_list("day", flat=True)),
    }


def seed() -> None:
    """For each kind, rows just past their period ("old") and just within it ("new")."""
    now = timezone.now()
    product = make_product()
    for label, age in [("old1", 31), ("old2", 45), ("old3", 400), ("new", 29)]:
        ScanEvent.objects.create(
            product=product, scanned_at=now - age * DAY, channel="page", client_hash=label
        )
    for label, age in [("old", 11), ("new", 9)]:
        ForgedScanAttempt.objects.create(code=label, attempted_at=now - age * DAY, channel="api")
    for label, age in [("old", 8), ("new", 6)]:
        TaskResult.objects.create(task_id=label, status="SUCCESS")
        TaskResult.objects.filter(task_id=label).update(date_done=now - age * DAY)
    for model in (AccessLog, AccessFailureLog):
        for label, age in [("old", 21), ("new", 19)]:
            entry = model.objects.create(username=label, ip_address="192.0.2.1", user_agent="x")
            model.objects.filter(pk=entry.pk).update(attempt_time=now - age * DAY)
    today = timezone.now().astimezone(UTC).date()  # client-hash days are UTC days
    for day in (today - 2 * DAY, today - DAY, today):
        DailySalt.objects.create(day=day, salt=bytes(32))


def test_it_removes_expired_rows_keeps_fresh_ones_and_says_what_it_removed(retention):
    seed()
    out = io.StringIO()
    call_command("purge_expired", "--batch-size", "2", stdout=out)
    assert rows() == {
        "scans": {"new"},
        "forged": {"new"},
        "tasks": {"new"},
        "logins": {"new"},
        "failures": {"new"},
        "salts": {timezone.now().astimezone(UTC).date()},
    }
    report = out.getvalue()
    assert "scan events (before " in report and ": 3 removed" in report  # 2 batches of 2
    assert "forged-code attempts" in report and "client-hash salts of past days" in report
    assert report.strip().endswith("total: 9 removed")


def test_a_dry_run_counts_and_removes_nothing(retention):
    seed()
    before = rows()
    out = io.StringIO()
    call_command("purge_expired", "--dry-run", stdout=out)
    assert rows() == before
    assert "scan events" in out.getvalue() and "3 would be removed" in out.getvalue()
    assert out.getvalue().strip().endswith("total: 9 would be removed (dry run)")


def test_it_deletes_set_based_not_row_by_row(retention):
    seed()
    now = timezone.now()
    product = ScanEvent.objects.first().product
    ScanEvent.objects.bulk_create(
        ScanEvent(product=product, scanned_at=now - 100 * DAY, channel="page") for _ in range(500)
    )
    with CaptureQueriesContext(connection) as queries:
        call_command("purge_expired", stdout=io.StringIO())
    deletes = [q["sql"] for q in queries if q["sql"].startswith("DELETE")]
    # one statement per kind (each batch under its limit), not one per row
    assert len(deletes) == 8, deletes
    assert ScanEvent.objects.count() == 1


def test_a_batch_size_below_one_is_refused():
    with pytest.raises(CommandError, match="--batch-size"):
        call_command("purge_expired", "--batch-size", "0")


def test_scan_counters_still_check_against_the_events_left_after_a_purge(retention):
    now = timezone.now()
    product = make_product()
    times = {"a": now - 40 * DAY, "b": now - 35 * DAY, "c": now - DAY}
    for client, when in times.items():
        ScanEvent.objects.create(
            product=product, scanned_at=when, channel="page", client_hash=client
        )
    stats = ProductScanStats.objects.create(
        product=product,
        scan_count=3,
        distinct_clients=3,
        first_scanned_at=times["a"],
        last_scanned_at=times["c"],
    )
    assert scan_counter_differences() == []
    call_command("purge_expired", stdout=io.StringIO())
    assert ScanEvent.objects.count() == 1
    assert scan_counter_differences() == []  # the lifetime counters keep the purged scans
    ProductScanStats.objects.filter(pk=stats.pk).update(scan_count=0)
    assert len(scan_counter_differences()) == 1  # fewer than the events left: still found


def test_past_days_client_pairs_go_and_the_distinct_count_stays(retention):
    """A (unit, client hash) pair only counts distinct clients within its day: the scan
    statement dates it, and the purge removes past days' pairs, never the counts."""
    product = make_product()
    for address in ("192.0.2.1", "192.0.2.2"):
        origin = ClientOrigin(client_hash=client_hash(address=address))
        scan_record(qr_code=product.qr_code, channel="page", origin=origin)
    today = timezone.now().astimezone(UTC).date()
    assert set(ProductScanClient.objects.values_list("day", flat=True)) == {today}
    call_command("purge_expired", stdout=io.StringIO())
    assert ProductScanClient.objects.count() == 2  # today's pairs still deduplicate today
    ProductScanClient.objects.filter(client_hash=client_hash(address="192.0.2.1")).update(
        day=today - DAY
    )
    out = io.StringIO()
    call_command("purge_expired", stdout=out)
    assert "(unit, client hash) pairs of past days" in out.getvalue()
    assert list(ProductScanClient.objects.values_list("day", flat=True)) == [today]
    assert ProductScanStats.objects.get(product=product).distinct_clients == 2
    # the same client scanning again today is still one client
    origin = ClientOrigin(client_hash=client_hash(address="192.0.2.2"))
    scan_record(qr_code=product.qr_code, channel="page", origin=origin)
    assert ProductScanStats.objects.get(product=product).distinct_clients == 2


def test_a_purge_just_after_local_midnight_keeps_the_salt_in_use(retention):
    """Client-hash days are UTC days: at 00:30 in Paris it is still yesterday in UTC, and that
    day's salt is the one in use."""
    paris_half_past_midnight = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)  # 00:30 on the 2nd
    in_use = paris_half_past_midnight.date()
    DailySalt.objects.create(day=in_use - DAY, salt=bytes(32))
    DailySalt.objects.create(day=in_use, salt=bytes(32))
    expired_purge(now=paris_half_past_midnight)
    assert list(DailySalt.objects.values_list("day", flat=True)) == [in_use]
