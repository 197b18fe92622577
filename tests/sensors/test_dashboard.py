"""The staff live dashboard, its websocket feed, and the SQAL admin pages."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from sensors.models import Device, QualityAlert, SensorSample
from sensors.services import device_authenticate, device_token_hash
from tests.factories import make_device, make_lot, make_sample, make_staff
from tests.support.stations import exchange, fixture_text, open_station, run

FLAT = fixture_text("sensor_data_flat.json")
MATRIX = json.loads(FLAT)["vl53l8ch"]["distance_matrix"]


def staff_client(*, is_staff: bool = True, superuser: bool = True) -> tuple[Client, object]:
    User = get_user_model()
    user = User.objects.create_user(
        "qualite", password="x-long-password-1", is_staff=is_staff, is_superuser=superuser
    )
    client = Client()
    client.force_login(user)
    return client, user


@pytest.mark.django_db
def test_the_dashboard_needs_a_staff_login():
    response = Client().get("/sqal/live/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client, _ = staff_client(is_staff=False, superuser=False)
    assert client.get("/sqal/live/").status_code == 302


@pytest.mark.django_db
def test_the_dashboard_shows_last_sample_per_station_grade_counts_and_open_alerts():
    lot = make_lot()
    make_sample(sample_id="OLD", fusion_grade="B", fusion_score=0.6, lot=lot)
    last = make_sample(
        sample_id="NEWEST",
        distance_matrix=MATRIX,
        spectral_channels=[1329, 2102, 1951, 8152, 3655, 2348, 3662, 2364, 5000, 800],
        lot=lot,
    )
    QualityAlert.objects.create(
        sample=last,
        lot=lot,
        device_id="ESP32_LL_01",
        rule="fusion_score<0.9",
        metric="x",
        value="0.87",
        message="m",
    )
    client, _ = staff_client()

    html = client.get("/sqal/live/").content.decode()

    assert 'data-sample="NEWEST"' in html and 'data-sample="OLD"' not in html
    assert "· OLD</li>" in html  # earlier samples are listed under the newest
    assert html.count("<rect") >= 64 + 10  # 8×8 heatmap and 10 spectral bars
    assert 'data-grade="A+">A+ : <b>1</b>' in html and 'data-grade="B">B : <b>1</b>' in html
    assert "fusion_score&lt;0.9" in html and lot.code in html


@pytest.mark.django_db(transaction=True)
def test_staff_see_samples_arrive_on_the_live_websocket(daphne):
    from sensors.services import device_issue_token

    token = device_issue_token(device=make_device())
    client, _ = staff_client()
    cookie = f"sessionid={client.cookies['sessionid'].value}"

    async def scenario():
        live = await connect(
            daphne.url + "live/", additional_headers={"Cookie": cookie}, open_timeout=10
        )
        station = await open_station(daphne.url, token)
        ack = await exchange(station, FLAT)
        update = json.loads(await asyncio.wait_for(live.recv(), 10))
        await station.close()
        await live.close()
        return ack, update

    ack, update = run(scenario())

    assert ack["status"] == "saved"
    assert update["type"] == "update"
    (station,) = update["stations"]
    assert station["device_id"] == "ESP32_LL_01"
    assert "MG-261124-9595-018" in station["html"] and station["html"].count("<rect") >= 74
    assert update["grade_counts"] == {"A": 1}
    assert any("no_lot" in alert for alert in update["alerts"])


@pytest.mark.django_db(transaction=True)
def test_the_live_websocket_refuses_anonymous_visitors(daphne):
    with pytest.raises(InvalidStatus):
        run(connect(daphne.url + "live/", open_timeout=10))


@pytest.mark.django_db(transaction=True)
def test_staff_without_the_sample_permission_get_neither_the_page_nor_the_feed(daphne):
    client = Client()
    client.force_login(make_staff("sans-droits"))
    assert client.get("/sqal/live/").status_code == 403
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    with pytest.raises(InvalidStatus):
        run(connect(daphne.url + "live/", additional_headers={"Cookie": cookie}, open_timeout=10))

    allowed = Client()
    allowed.force_login(make_staff("qualite-live", "sensors.view_sensorsample"))
    assert allowed.get("/sqal/live/").status_code == 200


@pytest.mark.django_db
def test_adding_a_station_in_admin_shows_its_token_once_and_stores_only_its_hash():
    client, _ = staff_client()
    response = client.post(
        "/admin/sensors/device/add/",
        {"device_id": "ESP32_LL_07", "name": "Ligne B", "is_active": "on", "location": ""},
        follow=True,
    )
    assert response.status_code == 200
    token = re.search(r"<code>(sqal_[\w-]+)</code>", response.content.decode()).group(1)
    device = Device.objects.get(device_id="ESP32_LL_07")
    assert device.token_hash == device_token_hash(token) and token not in device.token_hash
    assert device_authenticate(token=token, allow_unregistered=False) == device
    again = client.get(f"/admin/sensors/device/{device.pk}/change/").content.decode()
    assert token not in again


@pytest.mark.django_db
def test_regenerating_a_token_in_admin_revokes_the_old_one():
    client, _ = staff_client()
    device = make_device()
    from sensors.services import device_issue_token

    old = device_issue_token(device=device)
    client.post(
        "/admin/sensors/device/",
        {"action": "regenerate_tokens", "_selected_action": [device.pk]},
        follow=True,
    )
    device.refresh_from_db()
    assert device.token_hash and device.token_hash != device_token_hash(old)


@pytest.mark.django_db
def test_the_sample_admin_page_shows_the_heatmap_and_spectrum_read_only():
    sample = make_sample(
        distance_matrix=MATRIX,
        reflectance_matrix=MATRIX,
        spectral_channels=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        payload={"type": "sensor_data"},
    )
    client, _ = staff_client()
    page = client.get(f"/admin/sensors/sensorsample/{sample.pk}/change/").content.decode()
    assert 'class="sqal-heatmap"' in page and 'class="sqal-spectrum"' in page
    assert page.count("<rect") >= 64 * 2 + 10
    assert 'name="fusion_score"' not in page  # no editable input
    listing = client.get("/admin/sensors/sensorsample/?q=" + sample.sample_id)
    assert listing.status_code == 200 and sample.sample_id in listing.content.decode()
    assert client.get("/admin/sensors/sensorsample/?fusion_grade__exact=A%2B").status_code == 200
    assert SensorSample.objects.count() == 1


@pytest.mark.django_db
def test_thresholds_are_editable_and_alerts_listed_in_admin():
    client, _ = staff_client()
    assert client.get("/admin/sensors/qualitythreshold/").status_code == 200
    assert client.get("/admin/sensors/qualityalert/").status_code == 200
    assert client.get("/admin/sensors/qualitythreshold/add/").status_code == 200


def _station_event(score: float) -> dict:
    return {
        "device_id": "ESP32_LL_01",
        "sample_id": "S-1",
        "time": "2026-11-25T10:00:00+00:00",
        "fusion_grade": "A",
        "fusion_score": score,
        "is_compliant": True,
        "lot_code": "LL2600001",
        "site_code": "LL",
        "distance_matrix": MATRIX,
        "spectral_channels": [1329, 2102, 1951, 8152, 3655, 2348, 3662, 2364, 5000, 800],
        "recent": [],
    }


@pytest.mark.parametrize(
    ("scope", "language"),
    [
        ({"headers": [(b"accept-language", b"en-GB,en;q=0.9")], "cookies": {}}, "en"),
        ({"headers": [(b"accept-language", b"fr-FR")], "cookies": {}}, "fr"),
        ({"headers": [(b"accept-language", b"en")], "cookies": {"django_language": "fr"}}, "fr"),
        ({"headers": [], "cookies": {}}, "fr"),
    ],
)
def test_a_dashboard_connection_keeps_the_language_its_page_was_served_in(scope, language):
    from sensors.live import language_from_scope

    assert language_from_scope(scope) == language


@pytest.mark.django_db
@pytest.mark.parametrize(("accept", "number"), [("en", "0.822"), ("fr", "0,822")])
def test_live_updates_format_numbers_like_the_page_they_update(accept, number):
    from sensors.live import language_from_scope, render_update

    lot = make_lot()
    make_sample(sample_id="FIRST", fusion_score=0.8216, lot=lot)
    client, _ = staff_client()
    page = client.get("/sqal/live/", HTTP_ACCEPT_LANGUAGE=accept).content.decode()
    language = language_from_scope({"headers": [(b"accept-language", accept.encode())]})

    update = json.loads(
        render_update(
            {"stations": [_station_event(0.8216)], "alerts": [], "grade_counts": {"A": 1}},
            language=language,
        )
    )

    assert f"<span>{number}</span>" in page
    assert f"<span>{number}</span>" in update["stations"][0]["html"]


@pytest.mark.django_db
def test_station_ids_with_spaces_accents_and_markup_are_shown_escaped_in_admin_and_dashboard():
    device_id = 'Ligne B "Étoile" <b>'
    device = make_device(device_id=device_id)
    sample = make_sample(device=device, sample_id="LB-1", distance_matrix=MATRIX)
    QualityAlert.objects.create(
        sample=sample, device_id=device_id, rule="no_lot", metric="lot", message="m"
    )
    client, _ = staff_client()

    page = client.get("/sqal/live/").content.decode()
    assert 'data-device="Ligne B &quot;Étoile&quot; &lt;b&gt;"' in page
    assert '<b>"' not in page and "Ligne B &quot;Étoile&quot; &lt;b&gt; · LB-1" in page
    changelist = client.get("/admin/sensors/device/").content.decode()
    assert "Ligne B &quot;Étoile&quot; &lt;b&gt;" in changelist
    assert client.get(f"/admin/sensors/device/{device.pk}/change/").status_code == 200
    samples = client.get("/admin/sensors/sensorsample/", {"q": "Étoile"}).content.decode()
    assert "LB-1" in samples
    assert client.get(f"/admin/sensors/sensorsample/{sample.pk}/change/").status_code == 200
    alerts = client.get("/admin/sensors/qualityalert/").content.decode()
    assert "Ligne B &quot;Étoile&quot; &lt;b&gt;" in alerts


@pytest.mark.django_db
def test_the_station_admin_form_applies_the_protocols_station_id_rule():
    client, _ = staff_client()
    ok = client.post(
        "/admin/sensors/device/add/",
        {"device_id": "  Poste Étoile 2 ", "is_active": "on"},
        follow=True,
    )
    assert ok.status_code == 200 and Device.objects.filter(device_id="Poste Étoile 2").exists()
    refused = client.post(
        "/admin/sensors/device/add/", {"device_id": "A\u200bB", "is_active": "on"}
    )
    assert refused.status_code == 200 and "invisible character" in refused.content.decode()
    assert not Device.objects.filter(device_id="A\u200bB").exists()


def _alert(device_id: str, rule: str, *, occurrences: int, minutes_ago: int, **kw):
    from datetime import timedelta

    from django.utils import timezone

    device = make_device(device_id=device_id)
    return QualityAlert.objects.create(
        sample=make_sample(device=device),
        device_id=device_id,
        rule=rule,
        metric="x",
        message="m",
        occurrences=occurrences,
        last_seen_at=timezone.now() - timedelta(minutes=minutes_ago),
        **kw,
    )


@pytest.mark.django_db
def test_the_dashboard_groups_open_alerts_by_station_newest_first_with_counts():
    _alert("ESP32_LL_01", "no_lot", occurrences=87, minutes_ago=1, severity="critical")
    _alert("ESP32_LL_01", "fusion_score<0.45", occurrences=3, minutes_ago=5)
    _alert("ESP32_LL_02", "no_lot", occurrences=12, minutes_ago=30)
    _alert("ESP32_LL_03", "no_lot", occurrences=5, minutes_ago=0, status="acknowledged")
    _alert("ESP32_LL_04", "no_lot", occurrences=9, minutes_ago=0, status="resolved")
    client, _ = staff_client()

    html = client.get("/sqal/live/").content.decode()

    needs = html[html.index('id="sqal-needs"') : html.index('id="sqal-counts"')]
    order = re.findall(r'class="sqal-alert-group[^"]*" data-device="([^"]+)"', needs)
    # Unacknowledged first, newest first; acknowledged after; resolved not at all.
    assert order == ["ESP32_LL_01", "ESP32_LL_02", "ESP32_LL_03"]
    assert '<span class="sqal-group-total">90 ' in needs
    assert '<span id="sqal-needs-count">2</span>' in needs
    assert needs.count('name="resolve"') == 4 and needs.count('name="acknowledge"') == 3


@pytest.mark.django_db
def test_staff_with_the_permission_acknowledge_and_resolve_from_the_dashboard_with_csrf():
    alert = _alert("ESP32_LL_01", "no_lot", occurrences=4, minutes_ago=1)
    viewer = make_staff("viewer", "sensors.view_sensorsample")
    handler = make_staff("handler", "sensors.view_sensorsample", "sensors.change_qualityalert")

    client = Client()  # CSRF checks off: the permission alone refuses
    client.force_login(viewer)
    page = client.get("/sqal/live/").content.decode()
    assert 'name="resolve"' not in page
    assert client.post(f"/sqal/live/alerts/{alert.pk}/resolve/").status_code == 403
    alert.refresh_from_db()
    assert alert.status == "open"

    client = Client(enforce_csrf_checks=True)
    client.force_login(handler)
    page = client.get("/sqal/live/").content.decode()
    assert f'action="/sqal/live/alerts/{alert.pk}/acknowledge/"' in page
    assert client.post(f"/sqal/live/alerts/{alert.pk}/acknowledge/").status_code == 403  # no CSRF
    token = client.cookies["csrftoken"].value
    done = client.post(f"/sqal/live/alerts/{alert.pk}/acknowledge/", {"csrfmiddlewaretoken": token})
    assert done.status_code == 302 and done["Location"] == "/sqal/live/"
    alert.refresh_from_db()
    assert (alert.status, alert.handled_by) == ("acknowledged", handler)
    client.post(f"/sqal/live/alerts/{alert.pk}/resolve/", {"csrfmiddlewaretoken": token})
    alert.refresh_from_db()
    assert alert.status == "resolved"
    assert client.get(f"/sqal/live/alerts/{alert.pk}/resolve/").status_code == 405
    assert "Rien à traiter : aucune alerte ouverte." in client.get("/sqal/live/").content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("watched", [True, False])
def test_dashboard_updates_are_read_and_sent_only_when_a_dashboard_listens(watched):
    from unittest import mock

    from channels.db import database_sync_to_async
    from channels.layers import get_channel_layer
    from django.db import connections

    from sensors import live
    from tests.support.stations import ingest, message

    result = ingest(message("WATCH_1"))  # no lot: it raises an alert, so the groups change
    assert result.status == "saved" and result.alerts

    async def flush_once():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        if watched:
            await layer.group_add(live.GROUP, channel)
        try:
            feed = live.LiveFeed()
            with mock.patch.object(live, "needs_state", wraps=live.needs_state) as needs:
                feed.note([result])
                await feed.flush()
            received = None
            if watched:
                received = await asyncio.wait_for(layer.receive(channel), 5)
            return needs.call_count, received
        finally:
            await layer.group_discard(live.GROUP, channel)
            # The alert groups were read on the sync thread: close its database connection.
            await database_sync_to_async(connections.close_all)()

    reads, received = asyncio.run(flush_once())
    if watched:
        assert reads == 1
        assert received["type"] == "live.update"
        assert [s["sample_id"] for s in received["stations"]] == ["WATCH_1"]
    else:
        # In-memory layer, nobody in the group: no alert-groups query, nothing sent.
        assert reads == 0 and received is None
