"""Migration sensors/0008: per-sample alerts of a station and rule merge into their oldest one."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from sensors.models import QualityAlert
from tests.factories import make_sample

BEFORE = ("sensors", "0007_descriptive_fields_255")
AFTER = ("sensors", "0008_alerts_one_per_station_rule")


def _migrate(target: tuple[str, str] | None) -> None:
    """Migrate to ``target``, or (None) to every app's latest migration (for the tests after)."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target] if target else executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_unresolved_per_sample_alerts_merge_into_the_oldest_with_their_count():
    samples = [make_sample() for _ in range(4)]
    try:
        _migrate(BEFORE)
        with connection.cursor() as cursor:
            for n, (sample, status) in enumerate(
                zip(samples, ["open", "acknowledged", "open", "resolved"], strict=True)
            ):
                cursor.execute(
                    "INSERT INTO sensors_qualityalert (sample_id, device_id, rule, metric, value, "
                    "severity, message, status, created_at) VALUES (%s, 'ESP32_LL_01', 'no_lot', "
                    "'lot', '', 'critical', %s, %s, now() - make_interval(mins => %s))",
                    [sample.pk, f"m{n}", status, 10 - n],
                )
        _migrate(AFTER)
    finally:
        _migrate(None)

    rows = list(
        QualityAlert.objects.order_by("id").values_list("sample_id", "status", "occurrences")
    )
    assert rows == [(samples[0].pk, "open", 3), (samples[3].pk, "resolved", 1)]
    kept = QualityAlert.objects.get(status="open")
    assert kept.last_seen_at > kept.created_at  # the newest merged alert's time
