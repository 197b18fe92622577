"""Migration sensors/0004: jsonb payloads become zstd JSON text in a bytea, and back."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from sensors.models import SensorSample
from tests.factories import make_sample

BEFORE = ("sensors", "0003_default_thresholds")
AFTER = ("sensors", "0004_payload_zstd_bytea")


def _migrate(target: tuple[str, str] | None) -> None:
    """Migrate to ``target``, or (None) to every app's latest migration: later migrations of
    sensors (0005 onwards) must be applied again for the tests that run after this one."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target] if target else executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_existing_payloads_survive_the_migration_both_ways():
    messages = [
        {"type": "sensor_data", "sample_id": f"S{n}", "values": [1.5, n], "text": "Foie gras é"}
        for n in range(3)
    ]
    ids = [make_sample(payload=message).pk for message in messages]
    try:
        _migrate(BEFORE)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_typeof(payload)::text, payload::text FROM sqal_sensor_samples "
                "WHERE id = ANY(%s) ORDER BY id",
                [ids],
            )
            rows = cursor.fetchall()
        assert [kind for kind, _ in rows] == ["jsonb"] * 3
        assert [json.loads(text) for _, text in rows] == messages
    finally:
        _migrate(AFTER)
        _migrate(None)

    assert [SensorSample.objects.get(pk=pk).payload for pk in ids] == messages
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT pg_typeof(payload)::text, substring(payload from 1 for 4) "
            "FROM sqal_sensor_samples WHERE id = ANY(%s)",
            [ids],
        )
        assert cursor.fetchall() == [("bytea", b"\x28\xb5\x2f\xfd")]  # one zstd frame each
