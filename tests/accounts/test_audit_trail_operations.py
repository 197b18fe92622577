"""The audit trail of the operations side: stations and their tokens, quality thresholds,
quality alerts (acknowledge, resolve: admin actions, the dashboard's endpoints, attaching a
station's samples to a lot) and optimised curve approval. Each change names who made it and
what changed; the history is read in the admin and can be neither edited nor deleted."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from optimizer.models import OptimizationRun, OptimizedCurve
from sensors.alerts import NO_LOT_RULE, alert_resolve
from sensors.models import Device, QualityAlert, QualityThreshold
from sensors.schemas import Hello
from sensors.services import device_hello, device_issue_token, station_samples_attach_lot
from tests.factories import make_device, make_lot, make_product, make_sample, make_site, make_staff
from traceability.models import ScanAlert

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin():
    user = get_user_model().objects.create_superuser("chef", "chef@example.org", "pw-audit-123")
    client = Client()
    client.force_login(user)
    return user, client


def changes(record) -> list[tuple[str, object, object]]:
    """(field, before, after) of a historical record against the one before it."""
    delta = record.diff_against(record.prev_record)
    return sorted((c.field, c.old, c.new) for c in delta.changes)


def latest(obj):
    return obj.history.order_by("-history_date", "-history_id").first()


def make_alert(**kw) -> QualityAlert:
    sample = make_sample()
    defaults = {
        "device_id": sample.device_id,
        "rule": "fusion_score<0.5",
        "metric": "fusion_score",
        "value": "0.41",
        "severity": QualityThreshold.Severity.CRITICAL,
        "message": "score bas",
    }
    defaults.update(kw)
    return QualityAlert.objects.create(sample=sample, **defaults)


def make_scan_alert() -> ScanAlert:
    return ScanAlert.objects.create(
        product=make_product(),
        threshold=50,
        scan_count=80,
        distinct_clients=60,
        raised_at=timezone.now(),
    )


def make_curve(version: int = 1, **kw) -> OptimizedCurve:
    run = OptimizationRun.objects.create(outcome="proposed", data_metrics={})
    doses = [{"day": 1, "morning_g": 180.0, "evening_g": 200.0}]
    return OptimizedCurve.objects.create(
        version=version,
        duration_days=1,
        doses=doses,
        predicted_rating=4.4,
        predicted_rating_std=0.2,
        run=run,
        **kw,
    )


def device_form(device: Device, **changes) -> dict:
    data = {
        "device_id": device.device_id,
        "name": device.name,
        "site": device.site_id or "",
        "location": device.location,
        "assigned_lot": device.assigned_lot_id or "",
        "is_active": "on" if device.is_active else "",
        "firmware_version": device.firmware_version,
        "mac_address": device.mac_address,
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


def test_a_station_change_in_the_admin_is_recorded_with_who_and_before_and_after(admin):
    user, client = admin
    device = make_device(device_id="ESP32_LL_07", name="Ligne 1", site=make_site())
    response = client.post(
        f"/admin/sensors/device/{device.pk}/change/", device_form(device, name="Ligne 2")
    )
    assert response.status_code == 302
    record = latest(device)
    assert (record.history_type, record.history_user) == ("~", user)
    assert changes(record) == [("name", "Ligne 1", "Ligne 2")]
    page = client.get(f"/admin/sensors/device/{device.pk}/history/").content.decode()
    assert "Ligne 2" in page and "chef" in page


def test_regenerating_a_station_token_is_recorded_but_its_greetings_are_not(admin):
    user, client = admin
    device = make_device(device_id="ESP32_LL_08")
    device_issue_token(device=device)
    before = device.token_hash
    client.post(
        "/admin/sensors/device/",
        {"action": "regenerate_tokens", "_selected_action": [device.pk]},
    )
    device.refresh_from_db()
    record = latest(device)
    assert record.history_user == user
    assert record.history_change_reason == "new token issued"
    assert (record.prev_record.token_hash, record.token_hash) == (before, device.token_hash)
    page = client.get(f"/admin/sensors/device/{device.pk}/history/").content.decode()
    assert "new token issued" in page

    count = device.history.count()
    device_hello(
        hello=Hello(type="esp32_hello", device_id=device.device_id, firmware_version="2.0.1"),
        authenticated=True,
        allow_unregistered=False,
    )
    device.refresh_from_db()
    assert device.firmware_version == "2.0.1" and device.history.count() == count


def test_a_quality_threshold_change_is_recorded(admin):
    user, client = admin
    threshold = QualityThreshold.objects.create(metric="fusion_score", operator="lt", value=0.5)
    response = client.post(
        f"/admin/sensors/qualitythreshold/{threshold.pk}/change/",
        {"metric": "fusion_score", "operator": "lt", "value": "0.55", "severity": "critical",
         "is_active": "on", "description": ""},
    )  # fmt: skip
    assert response.status_code == 302
    record = latest(threshold)
    assert record.history_user == user
    assert changes(record) == [
        ("severity", "warning", "critical"),
        ("value", 0.5, 0.55),
    ]


def test_acknowledging_and_resolving_alerts_in_the_admin_are_recorded(admin):
    user, client = admin
    alert = make_alert()
    client.post(
        "/admin/sensors/qualityalert/", {"action": "acknowledge", "_selected_action": [alert.pk]}
    )
    acknowledged = latest(alert)
    assert acknowledged.history_user == user
    assert ("status", "open", "acknowledged") in changes(acknowledged)

    client.post(
        "/admin/sensors/qualityalert/", {"action": "resolve", "_selected_action": [alert.pk]}
    )
    resolved = latest(alert)
    assert resolved.history_user == user
    assert ("status", "acknowledged", "resolved") in changes(resolved)
    assert resolved.handled_by_id == user.pk


def test_resolving_a_copied_label_alert_in_the_admin_is_recorded(admin):
    user, client = admin
    alert = make_scan_alert()
    response = client.post(
        f"/admin/traceability/scanalert/{alert.pk}/change/",
        {"is_resolved": "on", "resolution_note": "étiquette retirée du rayon"},
    )
    assert response.status_code == 302
    resolved = latest(alert)
    assert resolved.history_user == user
    assert ("is_resolved", False, True) in changes(resolved)
    assert ("resolution_note", "", "étiquette retirée du rayon") in changes(resolved)
    history = client.get(f"/admin/traceability/scanalert/{alert.pk}/history/")
    assert history.status_code == 200 and "chef" in history.content.decode()


def test_the_dashboard_endpoints_and_the_services_record_the_acting_user():
    quality = make_staff("qualite", "sensors.view_sensorsample", "sensors.change_qualityalert")
    client = Client()
    client.force_login(quality)
    alert = make_alert()
    assert client.post(f"/sqal/live/alerts/{alert.pk}/acknowledge/").status_code == 302
    assert client.post(f"/sqal/live/alerts/{alert.pk}/resolve/").status_code == 302
    types_users = list(
        alert.history.order_by("history_date").values_list("status", "history_user__username")
    )
    assert types_users == [("open", None), ("acknowledged", "qualite"), ("resolved", "qualite")]

    # Outside any request (a command, a task): the user the service is given.
    other = make_alert(rule="fusion_score<0.4")
    alert_resolve(alert=other, user=quality)
    assert latest(other).history_user == quality


def test_attaching_a_stations_samples_to_a_lot_records_who_resolved_its_alert():
    staff = make_staff("stations")
    device = make_device(device_id="ESP32_LL_09", site=make_site())
    alert = make_alert(rule=NO_LOT_RULE, metric="lot", device_id=device.device_id)
    station_samples_attach_lot(
        device=device, lot=make_lot(), since=None, until=None, assign=True, user=staff
    )
    record = latest(alert)
    assert (record.status, record.history_user) == ("resolved", staff)
    assert latest(device).history_user == staff  # the lot assigned to the station


def test_approving_an_optimised_curve_is_recorded_with_the_retired_one(admin):
    user, client = admin
    first, second = make_curve(1), make_curve(2)
    for curve in (first, second):
        client.post(
            "/admin/optimizer/optimizedcurve/",
            {"action": "approve", "_selected_action": [curve.pk]},
        )
    approved, retired = latest(second), latest(first)
    assert approved.history_user == user and retired.history_user == user
    assert ("status", "proposed", "approved") in changes(approved)
    assert ("status", "approved", "retired") in changes(retired)
    page = client.get(f"/admin/optimizer/optimizedcurve/{second.pk}/history/").content.decode()
    assert "chef" in page


@pytest.mark.parametrize(
    "path, make",
    [
        ("sensors/device", lambda: make_device(device_id="ESP32_LL_10")),
        (
            "sensors/qualitythreshold",
            lambda: QualityThreshold.objects.create(metric="fusion_score", value=0.5),
        ),
        ("sensors/qualityalert", make_alert),
        ("optimizer/optimizedcurve", make_curve),
        ("traceability/scanalert", make_scan_alert),
    ],
)
def test_staff_cannot_edit_or_delete_the_history(admin, path, make):
    _, client = admin
    obj = make()
    record = obj.history.get()
    url = f"/admin/{path}/{obj.pk}/history/{record.history_id}/"
    assert client.get(url).status_code == 200
    assert client.post(url, {}).status_code == 403
    assert obj.history.count() == 1
    app, model = path.split("/")
    for suffix in ["", f"{record.history_id}/change/", f"{record.history_id}/delete/"]:
        assert client.get(f"/admin/{app}/historical{model}/{suffix}").status_code == 404
