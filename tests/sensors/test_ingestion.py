"""sensors.services.ingest_samples: lots, sites, stations, duplicates, alerts, product requests."""

from __future__ import annotations

import dataclasses
import json
from unittest import mock

import pytest

from sensors.models import Device, QualityAlert, QualityThreshold, SensorSample
from sensors.schemas import Reading, parse_message
from sensors.services import SampleInput, device_issue_token, ingest_samples
from tests.factories import make_device, make_lot, make_site
from tests.support.stations import fixture_text, ingest, message

pytestmark = pytest.mark.django_db

FLAT = json.loads(fixture_text("sensor_data_flat.json"))


@pytest.fixture(autouse=True)
def no_thresholds():
    QualityThreshold.objects.all().delete()


def test_the_lot_id_in_the_message_comes_first():
    named, by_code = make_lot(), make_lot()
    make_device()
    result = ingest(message(lot_id=named.id, lot_abattage=by_code.code))
    assert result.status == "saved" and result.lot_id == named.id
    assert SensorSample.objects.get().lot == named


def test_a_lot_id_other_than_the_assigned_lot_is_refused_unless_staff_allowed_it():
    named, assigned = make_lot(), make_lot()
    device = make_device(assigned_lot=assigned)
    refused = ingest(message(lot_id=named.id))
    assert (refused.status, refused.error_code) == ("error", "lot_not_allowed")
    assert (refused.frame()["field"], refused.frame()["rule"]) == ("lot_id", "assigned_lot")
    assert not SensorSample.objects.exists()

    device.lots_of_any_site = True
    device.save()
    result = ingest(message(lot_id=named.id))
    assert result.status == "saved" and result.lot_id == named.id


def test_a_refused_lot_raises_one_critical_alert_for_staff_counted_in_place():
    foreign = make_lot(site=make_site(code="MG"))
    make_device()  # a station of site LL
    for sample_id in ("ESP32_LL_01_0001", "ESP32_LL_01_0002"):
        refused = ingest(message(sample_id=sample_id, lot_id=foreign.id))
        assert (refused.error_code, refused.frame()["rule"]) == ("lot_not_allowed", "lot_site")
    assert not SensorSample.objects.exists()  # refused, not stored ...
    alert = QualityAlert.objects.get()  # ... but staff are told, once per station and rule
    assert (alert.rule, alert.severity, alert.status) == ("lot_not_allowed", "critical", "open")
    assert (alert.device_id, alert.lot, alert.sample, alert.occurrences) == (
        "ESP32_LL_01",
        foreign,
        None,
        2,
    )
    assert "ESP32_LL_01_0002" in alert.message and "lot_site" in alert.message
    assert alert.last_seen_at >= alert.created_at

    # A resolved alert is closed: the next refusal opens a new one.
    alert.status = QualityAlert.Status.RESOLVED
    alert.save()
    ingest(message(sample_id="ESP32_LL_01_0003", lot_id=foreign.id))
    assert QualityAlert.objects.filter(rule="lot_not_allowed", status="open").count() == 1


def test_then_the_lot_staff_assigned_to_the_station():
    assigned, by_code = make_lot(), make_lot()
    make_device(assigned_lot=assigned)
    result = ingest(message(lot_abattage=by_code.code))
    assert result.lot_id == assigned.id


def test_then_the_lot_whose_code_is_the_slaughter_lot():
    by_code = make_lot(code="LL2611240018")
    result = ingest(message(lot_abattage="LL2611240018"))
    assert result.lot_id == by_code.id


def test_otherwise_no_lot_is_guessed_and_an_alert_says_no_product_can_be_made():
    make_lot()  # the latest lot exists, and must not be used
    with mock.patch("traceability.tasks.generate_qr_code_async.delay") as delay:
        result = ingest(message())
    assert result.status == "saved" and result.lot_id is None
    delay.assert_not_called()
    alert = QualityAlert.objects.get()
    assert (alert.rule, alert.sample.sample_id, alert.lot) == ("no_lot", "ESP32_LL_01_0001", None)
    assert "LOT-20261124--018" in alert.message


def test_a_compliant_sample_with_a_lot_asks_for_its_product_once_committed(
    django_capture_on_commit_callbacks,
):
    lot = make_lot()
    with mock.patch("traceability.tasks.generate_qr_code_async.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            result = ingest(message(lot_id=lot.id))
            delay.assert_not_called()  # nothing is published before the commit
    assert result.product_requested and callbacks
    delay.assert_called_once_with(lot_id=lot.id, sample_id="ESP32_LL_01_0001", site_code="LL")


@pytest.mark.parametrize(
    ("tasks_per_batch", "messages"),
    [(1, [[1, 2, 3]]), (2, [[1, 2], [3]]), (4, [[1], [2], [3]])],
)
def test_a_batch_asks_for_its_products_once_committed_in_a_message_per_worker_process(
    django_capture_on_commit_callbacks, settings, tasks_per_batch, messages
):
    settings.PRODUCT_TASKS_PER_BATCH = tasks_per_batch  # the worker's processes
    lot = make_lot()
    texts = [message(f"ESP32_LL_01_{n:04d}", lot_id=lot.id) for n in range(1, 4)]
    texts.append(message("R1", lot_id=lot.id, fusion={"final_grade": "REJECT", "final_score": 0.3}))
    texts.append(texts[0])  # the same sample twice in the batch: one product asked for
    items = [
        SampleInput(reading=Reading.from_message(parse_message(t, max_bytes=10**6)), payload=t)
        for t in texts
    ]
    with (
        mock.patch("traceability.tasks.generate_qr_codes_async.delay") as many,
        mock.patch("traceability.tasks.generate_qr_code_async.delay") as one,
    ):
        with django_capture_on_commit_callbacks(execute=True):
            results = ingest_samples(items=items, allow_unregistered=True)
            many.assert_not_called()  # nothing is published before the commit
    assert [r.product_requested for r in results] == [True, True, True, False, False]
    one.assert_not_called()
    assert many.call_args_list == [
        mock.call(
            requests=[
                {"lot_id": lot.id, "sample_id": f"ESP32_LL_01_{n:04d}", "site_code": "LL"}
                for n in chunk
            ]
        )
        for chunk in messages
    ]


@pytest.mark.parametrize(
    "fusion",
    [
        {"final_grade": "REJECT", "final_score": 0.3},
        {"final_grade": "A", "final_score": 0.8, "is_compliant": False},
    ],
)
def test_a_rejected_or_non_compliant_sample_asks_for_no_product(
    fusion, django_capture_on_commit_callbacks
):
    lot = make_lot()
    with mock.patch("traceability.tasks.generate_qr_code_async.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            result = ingest(message(lot_id=lot.id, fusion=fusion))
    assert result.status == "saved" and not result.product_requested
    delay.assert_not_called()


def test_the_site_comes_from_the_station_record_before_its_id():
    make_device(device_id="ESP32_LL_01", site=make_site(code="MG"))
    assert ingest(message()).site_code == "MG"
    assert SensorSample.objects.get().site_code == "MG"


def test_an_unregistered_station_is_created_in_development_with_the_site_of_its_id():
    site = make_site(code="LL")
    result = ingest(message(), allow_unregistered=True)
    assert result.status == "saved" and result.site_code == "LL"
    assert Device.objects.get(device_id="ESP32_LL_01").site == site


def test_an_unregistered_station_is_refused_otherwise():
    result = ingest(message(), allow_unregistered=False)
    assert (result.status, result.error_code) == ("error", "unknown_device")
    assert result.frame()["type"] == "error"
    assert not SensorSample.objects.exists() and not Device.objects.exists()


def test_a_station_with_a_token_must_use_it():
    device_issue_token(device=make_device())
    refused = ingest(message(), allow_unregistered=True, authenticated=False)
    accepted = ingest(message(), allow_unregistered=True, authenticated=True)
    assert refused.error_code == "device_auth_required"
    assert accepted.status == "saved"


def test_a_disabled_station_is_refused():
    make_device(is_active=False)
    assert ingest(message()).error_code == "device_inactive"


def test_thresholds_staff_edit_raise_alerts_naming_sample_lot_rule_and_value():
    lot = make_lot()
    QualityThreshold.objects.create(metric="fusion_score", operator="lt", value=0.8)
    QualityThreshold.objects.create(metric="fusion_grade", grade="B", severity="critical")
    QualityThreshold.objects.create(metric="spectral_oxidation_index", operator="gt", value=0.5)

    ingest(message("S1", lot_id=lot.id))  # score 0.7845, grade A, oxidation 0.109

    alert = QualityAlert.objects.get()
    assert (alert.sample.sample_id, alert.lot, alert.rule, alert.value) == (
        "S1",
        lot,
        "fusion_score<0.8",
        "0.7845",
    )
    assert lot.code in alert.message and "S1" in alert.message

    QualityThreshold.objects.filter(metric="fusion_score").update(value=0.7)
    ingest(message("S2", lot_id=lot.id, fusion={"final_grade": "B", "final_score": 0.65}))
    rules = set(QualityAlert.objects.filter(sample__sample_id="S2").values_list("rule", flat=True))
    assert rules == {"fusion_score<0.7", "fusion_grade<=B"}


def test_a_disabled_threshold_raises_nothing():
    QualityThreshold.objects.create(
        metric="fusion_score", operator="lt", value=0.9, is_active=False
    )
    ingest(message(lot_id=make_lot().id))
    assert not QualityAlert.objects.exists()


def test_one_batch_stores_each_sample_once_and_reports_duplicates():
    texts = [message("B1"), message("B2"), message("B1")]
    items = [
        SampleInput(reading=Reading.from_message(parse_message(t, max_bytes=10**6)), payload=t)
        for t in texts
    ]
    first = ingest_samples(items=items, allow_unregistered=True)
    again = ingest_samples(items=items[:1], allow_unregistered=True)
    assert [r.status for r in first] == ["saved", "saved", "duplicate"]
    assert first[2].pk == first[0].pk
    assert again[0].status == "duplicate" and again[0].fusion_grade == "A"
    assert SensorSample.objects.count() == 2


def test_a_row_the_database_refuses_does_not_sink_the_rest_of_its_batch():
    good, bad = message("G1"), message("X1")
    # Validation would refuse it; here it reaches the database, whose check constraint
    # (sqal_fusion_score_range) refuses the row.
    bad_reading = dataclasses.replace(
        Reading.from_message(parse_message(bad, max_bytes=10**6)), fusion_score=1.5
    )
    items = [
        SampleInput(
            reading=Reading.from_message(parse_message(good, max_bytes=10**6)), payload=good
        ),
        SampleInput(reading=bad_reading, payload=bad),
    ]
    results = ingest_samples(items=items, allow_unregistered=True)
    assert [r.status for r in results] == ["saved", "error"]
    assert results[1].error_code == "storage_error"
    assert list(SensorSample.objects.values_list("sample_id", flat=True)) == ["G1"]


def test_a_nul_character_is_refused_by_validation():
    from sensors.schemas import ProtocolError

    text = message().replace('"eleveur": "Ferme Martin"', '"eleveur": "Ferme \\u0000"')
    with pytest.raises(ProtocolError) as refused:
        parse_message(text, max_bytes=10**6)
    assert refused.value.rule == "no_nul"


def test_the_alert_of_a_refused_sample_is_listed_and_opened_in_admin(admin_client):
    foreign = make_lot(site=make_site(code="MG"))
    make_device()
    ingest(message(lot_id=foreign.id))
    alert = QualityAlert.objects.get(rule="lot_not_allowed")
    listing = admin_client.get("/admin/sensors/qualityalert/?rule=lot_not_allowed")
    assert listing.status_code == 200 and foreign.code in listing.content.decode()
    page = admin_client.get(f"/admin/sensors/qualityalert/{alert.pk}/change/")
    assert page.status_code == 200 and "lot_site" in page.content.decode()
