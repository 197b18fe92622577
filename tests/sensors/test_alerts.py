"""Quality alerts: one unresolved alert per (station, rule), counted in place, safe under
concurrent writers."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from sensors.alerts import alert_acknowledge, alert_resolve
from sensors.models import QualityAlert, QualityThreshold
from sensors.schemas import Reading, parse_message
from sensors.services import SampleInput, ingest_samples
from tests.factories import make_device, make_lot, make_staff
from tests.support.stations import ingest, message


@pytest.fixture(autouse=True)
def no_thresholds(db):
    QualityThreshold.objects.all().delete()


def _items(*sample_ids: str, **changes) -> list[SampleInput]:
    texts = [message(s, **changes) for s in sample_ids]
    return [
        SampleInput(reading=Reading.from_message(parse_message(t, max_bytes=10**6)), payload=t)
        for t in texts
    ]


@pytest.mark.django_db
def test_a_station_without_a_lot_has_one_no_lot_alert_whose_count_grows():
    make_device()
    ingest(message("N1"))
    first = QualityAlert.objects.get()
    ingest_samples(items=_items("N2", "N3", "N4"), allow_unregistered=True)
    ingest(message("N2"))  # a resent sample is not counted again

    alert = QualityAlert.objects.get()
    assert (alert.pk, alert.rule, alert.occurrences) == (first.pk, "no_lot", 4)
    assert alert.sample.sample_id == "N1"  # the first sample that raised it
    assert alert.last_seen_at > first.last_seen_at
    assert "N4" in alert.message  # the latest sample's words


@pytest.mark.django_db
def test_threshold_alerts_are_one_per_station_and_rule_too():
    lot = make_lot()
    make_device(device_id="ESP32_LL_02")
    QualityThreshold.objects.create(metric="fusion_score", operator="lt", value=0.8)
    ingest_samples(items=_items("T1", "T2", lot_id=lot.id), allow_unregistered=True)
    ingest_samples(
        items=_items("U1", lot_id=lot.id, device_id="ESP32_LL_02"), allow_unregistered=True
    )

    counts = dict(QualityAlert.objects.values_list("device_id", "occurrences"))
    assert counts == {"ESP32_LL_01": 2, "ESP32_LL_02": 1}


@pytest.mark.django_db
def test_an_acknowledged_alert_keeps_counting_and_a_resolved_one_gives_way_to_a_new_one():
    make_device()
    staff = make_staff()
    ingest(message("R1"))
    alert_acknowledge(alert=QualityAlert.objects.get(), user=staff)
    ingest(message("R2"))
    alert = QualityAlert.objects.get()
    assert (alert.status, alert.occurrences) == ("acknowledged", 2)

    alert_resolve(alert=alert, user=staff)
    ingest(message("R3"))
    assert list(
        QualityAlert.objects.order_by("created_at").values_list("status", "occurrences")
    ) == [
        ("resolved", 2),
        ("open", 1),
    ]


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_count_into_one_alert():
    make_device()
    batches = [_items(*(f"C{w}_{n}" for n in range(5))) for w in range(4)]
    barrier = threading.Barrier(len(batches))
    errors: list[BaseException] = []
    statuses: list[str] = []

    def write(items: list[SampleInput]) -> None:
        try:
            barrier.wait(10)
            for item in items:  # one transaction per sample: many chances to collide
                statuses.extend(
                    r.status for r in ingest_samples(items=[item], allow_unregistered=True)
                )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert not errors and statuses == ["saved"] * 20
    alert = QualityAlert.objects.get()
    assert alert.occurrences == 20
