"""The station protocol at /ws/sensors/ through a real Daphne server and websocket clients."""

from __future__ import annotations

import asyncio
import copy
import json

import pytest
from websockets.exceptions import InvalidStatus

from sensors.models import Device, SensorSample
from tests.factories import make_device, make_lot, make_site
from tests.support.stations import exchange, fixture_text, nested, open_station, run

pytestmark = pytest.mark.django_db(transaction=True)

FLAT = fixture_text("sensor_data_flat.json")
HELLO = fixture_text("esp32_hello.json")


def flat(**changes) -> dict:
    message = json.loads(FLAT)
    message.update(changes)
    return message


def test_the_esp32_fixture_message_is_acked_and_stored_field_for_field(daphne, station):
    _, token = station

    async def scenario():
        ws = await open_station(daphne.url, token)
        hello = await exchange(ws, HELLO)
        ack = await exchange(ws, FLAT)
        await ws.close()
        return hello, ack

    hello, ack = run(scenario())

    assert hello["type"] == "hello_ack"
    assert ack == {
        "type": "ack",
        "sample_id": "MG-261124-9595-018",
        "status": "saved",
        "fusion_score": 0.7845454815755486,
        "fusion_grade": "A",
    }
    s = SensorSample.objects.get()
    raw = json.loads(FLAT)
    tof, spec = raw["vl53l8ch"], raw["as7341"]
    assert (s.device_id, s.sample_id, s.site_code) == ("ESP32_LL_01", "MG-261124-9595-018", "LL")
    assert s.time.isoformat() == "2026-11-24T00:55:04.436441+00:00"
    assert s.distance_matrix == tof["distance_matrix"]
    assert s.reflectance_matrix == tof["reflectance_matrix"]
    assert s.amplitude_matrix == tof["amplitude_matrix"]
    assert s.ambient_matrix == tof["ambient_matrix"]
    assert s.status_matrix == tof["status_matrix"]
    assert s.tof_volume_mm3 == tof["volume_mm3"]
    assert s.tof_surface_uniformity == tof["surface_uniformity"] == 0.85
    assert (s.tof_quality_score, s.tof_grade) == (tof["quality_score"], "REJECT")
    assert s.spectral_channels == [1329, 2102, 1951, 8152, 3655, 2348, 3662, 2364, 5000, 800]
    assert s.spectral_freshness_index == spec["freshness_index"]
    assert s.spectral_fat_quality_index == spec["fat_quality_index"]
    assert s.spectral_oxidation_index == spec["oxidation_index"]
    assert (s.spectral_quality_score, s.spectral_grade) == (spec["quality_score"], "A+")
    assert (s.fusion_score, s.fusion_grade) == (0.7845454815755486, "A")
    assert s.is_compliant is True  # no fusion.is_compliant: grade != REJECT
    assert s.fill_conformity is False  # fusion.foie_gras_metrics.is_compliant
    assert (s.lot_abattage, s.eleveur, s.provenance) == (
        "LOT-20261124--018",
        "Ferme Martin",
        "Périgord, France",
    )
    assert (s.firmware_version, s.temperature_c, s.humidity_percent) == (
        "1.0.0",
        raw["meta"]["temperature_c"],
        45.0,
    )
    assert s.payload == raw  # the whole message, histogram included
    assert s.lot is None
    assert s.alerts.filter(rule="no_lot").exists()


def test_the_nested_form_is_accepted_with_its_lot_and_site(daphne, station):
    _, token = station
    lot = make_lot()

    async def scenario():
        ws = await open_station(daphne.url, token)
        ack = await exchange(ws, nested(lot_id=lot.id, site_code="LL"))
        await ws.close()
        return ack

    ack = run(scenario())

    assert ack["status"] == "saved" and ack["fusion_grade"] == "A+"
    s = SensorSample.objects.get()
    assert (s.lot_id, s.tof_volume_mm3, s.spectral_quality_score) == (lot.id, 98000.0, 0.86)
    assert s.ambient_matrix is None and s.is_compliant is True


def _matrix_7_rows() -> dict:
    m = flat()
    m["vl53l8ch"]["distance_matrix"] = m["vl53l8ch"]["distance_matrix"][:7]
    return m


def _matrix_7_cols() -> dict:
    m = flat()
    m["vl53l8ch"]["reflectance_matrix"][2] = m["vl53l8ch"]["reflectance_matrix"][2][:7]
    return m


def _set(path: str, value) -> dict:
    m = flat()
    *parents, last = path.split(".")
    node = m
    for key in parents:
        node = node[key]
    node[last] = value
    return m


def _drop(path: str) -> dict:
    m = flat()
    *parents, last = path.split(".")
    node = m
    for key in parents:
        node = node[key]
    del node[last]
    return m


BAD_INPUTS = {
    "not JSON": ('{"type": "sensor_data", "sample_id": "X1", ', "invalid_json", None),
    "wrong type": (_set("vl53l8ch.volume_mm3", "big"), "validation_error", "vl53l8ch.volume_mm3"),
    "7 rows": (_matrix_7_rows(), "validation_error", "vl53l8ch.distance_matrix"),
    "7 columns": (_matrix_7_cols(), "validation_error", "vl53l8ch.reflectance_matrix[2]"),
    "out of range": (_set("fusion.final_score", 1.4), "validation_error", "fusion.final_score"),
    "unknown grade": (_set("fusion.final_grade", "Z"), "validation_error", "fusion.final_grade"),
    "missing field": (_drop("fusion.final_grade"), "validation_error", "fusion.final_grade"),
    "missing channel": (_drop("as7341.channels.NIR"), "validation_error", "as7341.channels.NIR"),
    "unknown type": ({"type": "firmware_update", "sample_id": "X1"}, "unknown_type", "type"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_an_error_naming_field_and_rule_and_nothing_is_stored(daphne, station, case):
    _, token = station
    message, code, field = BAD_INPUTS[case]

    async def scenario():
        ws = await open_station(daphne.url, token)
        error = await exchange(ws, message)
        pong = await exchange(ws, {"type": "ping"})  # the connection stays open
        await ws.close()
        return error, pong

    error, pong = run(scenario())

    assert error["type"] == "error" and error["code"] == code, error
    assert set(error) >= {"code", "detail", "sample_id"}
    if field:
        assert error["field"] == field
        assert error["detail"].startswith(field + ":")
        assert error["rule"] and f"({error['rule']})" in error["detail"] or code == "unknown_type"
    if isinstance(message, dict) and message.get("type") == "sensor_data":
        assert error["sample_id"] == "MG-261124-9595-018"
    assert pong["type"] == "pong"
    assert SensorSample.objects.count() == 0


def test_nan_is_refused_where_it_is_even_outside_the_stored_fields(daphne, station):
    _, token = station
    in_field = FLAT.replace('"final_score": 0.7845454815755486', '"final_score": NaN')
    m = flat()
    m["vl53l8ch_raw"]["bins_matrix"][1][2][3] = float("nan")
    in_histogram = json.dumps(m)

    async def scenario():
        ws = await open_station(daphne.url, token)
        first = await exchange(ws, in_field)
        second = await exchange(ws, in_histogram)
        await ws.close()
        return first, second

    first, second = run(scenario())

    assert (first["code"], first["field"], first["rule"]) == (
        "validation_error",
        "fusion.final_score",
        "finite_number",
    )
    assert second["field"] == "vl53l8ch_raw.bins_matrix[1][2][3]"
    assert second["rule"] == "finite_number"
    assert SensorSample.objects.count() == 0


def test_a_message_over_the_size_limit_is_refused_and_the_connection_stays_open(daphne, station):
    _, token = station
    m = flat()
    m["padding"] = "x" * (512 * 1024)

    async def scenario():
        ws = await open_station(daphne.url, token)
        error = await exchange(ws, m)
        ack = await exchange(ws, FLAT)
        await ws.close()
        return error, ack

    error, ack = run(scenario())

    assert error["code"] == "message_too_large" and error["rule"] == "max_bytes"
    assert error["sample_id"] == "MG-261124-9595-018"
    assert ack["status"] == "saved"
    assert SensorSample.objects.count() == 1


def test_ping_and_heartbeat_are_answered_never_with_an_error(daphne, station):
    _, token = station

    async def scenario():
        ws = await open_station(daphne.url, token)
        pong = await exchange(ws, {"type": "ping"})
        beat = await exchange(ws, {"type": "heartbeat", "device_id": "ESP32_LL_01"})
        await ws.close()
        return pong, beat

    pong, beat = run(scenario())
    assert pong["type"] == "pong" and beat["type"] == "heartbeat_ack"


def test_a_resent_sample_is_acked_as_duplicate_and_stored_once(daphne, station):
    _, token = station

    async def scenario():
        ws = await open_station(daphne.url, token)
        first = await exchange(ws, FLAT)
        second = await exchange(ws, FLAT)
        await ws.close()
        ws = await open_station(daphne.url, token)
        third = await exchange(ws, FLAT)
        await ws.close()
        return first, second, third

    first, second, third = run(scenario())

    assert first["status"] == "saved"
    assert second["status"] == third["status"] == "duplicate"
    assert second["fusion_grade"] == "A" and second["fusion_score"] == first["fusion_score"]
    assert SensorSample.objects.count() == 1


def test_two_stations_send_at_once_and_each_gets_its_own_acks(daphne, db):
    from sensors.services import device_issue_token

    tokens = {
        d: device_issue_token(device=make_device(device_id=d))
        for d in ("ESP32_LL_01", "ESP32_MG_02")
    }

    async def station_run(device_id: str, token: str):
        ws = await open_station(daphne.url, token)
        for n in range(15):
            await ws.send(json.dumps(nested(f"{device_id}_{n:04d}", device_id=device_id)))
        acks = [json.loads(await ws.recv()) for _ in range(15)]
        await ws.close()
        return acks

    async def scenario():
        return await asyncio.gather(*(station_run(d, t) for d, t in tokens.items()))

    results = run(scenario())

    for device_id, acks in zip(tokens, results, strict=True):
        assert {a["status"] for a in acks} == {"saved"}
        assert sorted(a["sample_id"] for a in acks) == [f"{device_id}_{n:04d}" for n in range(15)]
    assert SensorSample.objects.filter(device_id="ESP32_LL_01").count() == 15
    assert SensorSample.objects.filter(device_id="ESP32_MG_02", site_code="MG").count() == 15


@pytest.mark.parametrize("token", [None, "sqal_not-a-real-token"])
def test_an_unknown_station_is_refused_at_the_handshake(daphne, db, token):
    with pytest.raises(InvalidStatus) as refused:
        run(open_station(daphne.url, token))
    assert refused.value.response.status_code == 403


def test_a_station_cannot_send_for_another_station(daphne, station):
    _, token = station

    async def scenario():
        ws = await open_station(daphne.url, token)
        error = await exchange(ws, nested("X_1", device_id="ESP32_LL_09"))
        await ws.close()
        return error

    error = run(scenario())
    assert (error["code"], error["field"]) == ("device_mismatch", "device_id")
    assert SensorSample.objects.count() == 0


def test_a_browser_page_of_another_site_is_refused(daphne, station):
    _, token = station
    with pytest.raises(InvalidStatus):
        run(open_station(daphne.url, token, origin="http://evil.example"))


def test_a_token_in_the_url_is_refused(daphne, station):
    _, token = station
    with pytest.raises(InvalidStatus):
        run(open_station(daphne.url + f"?token={token}"))
    assert SensorSample.objects.count() == 0


def test_old_firmware_may_send_its_token_in_the_url_where_staff_allow_it(settings):
    from sensors.consumers import _token_from_scope
    from sensors.services import DeviceRefused

    scope = {"headers": [], "query_string": b"token=gt_abc"}
    with pytest.raises(DeviceRefused):
        _token_from_scope(scope)
    settings.SQAL_ALLOW_QUERY_TOKEN = True
    assert _token_from_scope(scope) == "gt_abc"


def test_the_greeting_says_something_a_person_can_read(daphne, station):
    _, token = station

    async def greeting():
        from websockets.asyncio.client import connect

        ws = await connect(daphne.url, additional_headers={"Authorization": f"Bearer {token}"})
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        await ws.close()
        return frame

    frame = run(greeting())
    assert frame["type"] == "connection_established"
    assert frame["message"].startswith("Connexion établie")


def test_the_whole_browser_origin_is_compared_not_only_the_host(daphne, station):
    _, token = station
    own = daphne.http  # http://127.0.0.1:<port>, where the dashboard page is served
    port = own.rsplit(":", 1)[1]

    async def accepted() -> None:
        ws = await open_station(daphne.url, token, origin=own)
        await ws.close()

    run(accepted())
    for origin in [
        own.replace("http://", "https://"),  # another scheme
        f"http://127.0.0.1:{int(port) + 1}",  # another port of the same host
        "http://127.0.0.1",
        "null",
    ]:
        with pytest.raises(InvalidStatus):
            run(open_station(daphne.url, token, origin=origin))


def test_a_lot_id_that_does_not_exist_is_refused(daphne, station):
    _, token = station

    async def scenario():
        ws = await open_station(daphne.url, token)
        error = await exchange(ws, nested(lot_id=999999))
        await ws.close()
        return error

    error = run(scenario())
    assert error["code"] == "unknown_lot" and "lot_id" in error["detail"]
    assert SensorSample.objects.count() == 0


def _send(daphne, token, message):
    async def scenario():
        ws = await open_station(daphne.url, token)
        reply = await exchange(ws, message)
        await ws.close()
        return reply

    return run(scenario())


def test_a_station_cannot_write_into_another_sites_lot(daphne, station):
    _, token = station
    other_site_lot = make_lot(site=make_site(code="MG"))

    error = _send(daphne, token, nested("X_MG_1", lot_id=other_site_lot.id))

    assert (error["code"], error["field"], error["rule"]) == (
        "lot_not_allowed",
        "lot_id",
        "lot_site",
    )
    assert "MG" in error["detail"] and "LL" in error["detail"]
    assert SensorSample.objects.count() == 0


def test_a_station_with_an_assigned_lot_cannot_name_another_lot(daphne, station):
    device, token = station
    assigned, other = make_lot(), make_lot()
    device.assigned_lot = assigned
    device.save()

    error = _send(daphne, token, nested("X_LL_1", lot_id=other.id))
    assert (error["code"], error["rule"]) == ("lot_not_allowed", "assigned_lot")
    ack = _send(daphne, token, nested("X_LL_2", lot_id=assigned.id))
    assert ack["type"] == "ack" and ack["status"] == "saved"
    assert list(SensorSample.objects.values_list("sample_id", "lot_id")) == [
        ("X_LL_2", assigned.id)
    ]


def test_staff_can_let_a_shared_station_write_into_other_sites_lots(daphne, station):
    device, token = station
    device.lots_of_any_site = True
    device.save()
    other_site_lot = make_lot(site=make_site(code="MG"))

    ack = _send(daphne, token, nested("X_MG_2", lot_id=other_site_lot.id))

    assert ack["type"] == "ack" and ack["status"] == "saved"
    assert SensorSample.objects.get().lot_id == other_site_lot.id


def test_a_slaughter_lot_code_of_another_site_is_not_used(daphne, station):
    _, token = station
    other_site_lot = make_lot(site=make_site(code="MG"))

    ack = _send(daphne, token, flat(sample_id="X_MG_3", lot_abattage=other_site_lot.code))

    assert ack["type"] == "ack"
    assert SensorSample.objects.get().lot_id is None  # no lot: staff are alerted (no_lot)


def test_copy_is_not_shared_between_cases():
    assert copy.deepcopy(BAD_INPUTS["7 rows"][0]) is not BAD_INPUTS["7 rows"][0]


def test_a_station_id_with_a_space_and_accents_is_acked_and_stored_verbatim(daphne, db):
    from sensors.services import device_issue_token

    device_id = "ESP32 Ligne B — Périgueux"
    token = device_issue_token(device=make_device(device_id=device_id))

    async def scenario():
        ws = await open_station(daphne.url, token)
        hello = await exchange(ws, {"type": "esp32_hello", "device_id": device_id})
        ack = await exchange(ws, flat(device_id=device_id, sample_id="LB-0001"))
        resent = await exchange(ws, flat(device_id=device_id, sample_id="LB-0001"))
        await ws.close()
        return hello, ack, resent

    hello, ack, resent = run(scenario())

    assert hello["type"] == "hello_ack" and hello["device_id"] == device_id
    assert (ack["type"], ack["status"]) == ("ack", "saved")
    assert resent["status"] == "duplicate"  # still one row per (station, sample id)
    sample = SensorSample.objects.get()
    assert (sample.device_id, sample.sample_id) == (device_id, "LB-0001")


@pytest.mark.parametrize(
    ("device_id", "rule"),
    [("   ", "device_id_blank"), ("ESP32\tB", "printable"), ("x" * 65, "string_too_long")],
)
def test_a_station_id_that_is_blank_invisible_or_too_long_is_refused_naming_the_rule(
    daphne, db, device_id, rule
):
    from sensors.services import device_issue_token

    token = device_issue_token(device=make_device(device_id="ESP32_LL_07"))
    error = _send(daphne, token, flat(device_id=device_id))
    assert (error["code"], error["field"], error["rule"]) == ("validation_error", "device_id", rule)
    assert SensorSample.objects.count() == 0


def test_a_long_location_is_acked_and_stored_and_a_longer_one_truncated_with_a_warning(
    daphne, station
):
    device, token = station
    hello = json.loads(HELLO)

    async def scenario():
        ws = await open_station(daphne.url, token)
        first = await exchange(ws, {**hello, "location": "L" * 200})
        stored_200 = await asyncio.to_thread(lambda: Device.objects.get(pk=device.pk).location)
        warning = await exchange(ws, {**hello, "location": "M" * 300})
        second = json.loads(await asyncio.wait_for(ws.recv(), 20))
        await ws.close()
        return first, stored_200, warning, second

    first, stored_200, warning, second = run(scenario())

    assert first["type"] == "hello_ack" and stored_200 == "L" * 200
    assert (warning["type"], warning["code"], warning["field"], warning["rule"]) == (
        "warning",
        "truncated",
        "location",
        "max_length",
    )
    assert "truncated" in warning["detail"] and warning["detail"].startswith("location:")
    assert second["type"] == "hello_ack"
    assert Device.objects.get(pk=device.pk).location == "M" * 255


def test_a_sample_is_never_refused_for_its_descriptive_fields(daphne, station):
    _, token = station
    m = flat(eleveur="E" * 250, provenance="P" * 400, lot_abattage="A" * 256)
    m["meta"]["firmware_version"] = "F" * 300

    async def scenario():
        ws = await open_station(daphne.url, token)
        await ws.send(json.dumps(m))
        frames = [json.loads(await asyncio.wait_for(ws.recv(), 20)) for _ in range(4)]
        await ws.close()
        return frames

    frames = run(scenario())

    warnings = [f for f in frames if f["type"] == "warning"]
    assert sorted(w["field"] for w in warnings) == [
        "lot_abattage",
        "meta.firmware_version",
        "provenance",
    ]
    assert {w["sample_id"] for w in warnings} == {"MG-261124-9595-018"}
    assert frames[-1]["type"] == "ack" and frames[-1]["status"] == "saved"
    s = SensorSample.objects.get()
    assert (s.eleveur, s.provenance, s.lot_abattage, s.firmware_version) == (
        "E" * 250,
        "P" * 255,
        "A" * 255,
        "F" * 255,
    )
    assert s.payload["provenance"] == "P" * 400  # the message as received is kept whole


def test_a_station_without_a_lot_raises_one_alert_whose_count_grows(daphne, station):
    from sensors.models import QualityAlert
    from tests.support.servers import wait_until

    _, token = station

    async def send(first: int, count: int):
        ws = await open_station(daphne.url, token)
        for n in range(first, first + count):
            await ws.send(json.dumps(flat(sample_id=f"NOLOT-{n:03d}")))
        acks = [json.loads(await asyncio.wait_for(ws.recv(), 20)) for _ in range(count)]
        await ws.close()
        return acks

    acks = run(send(0, 12))
    assert {a["status"] for a in acks} == {"saved"}
    alert = QualityAlert.objects.get(rule="no_lot")
    assert (alert.device_id, alert.occurrences, alert.status) == ("ESP32_LL_01", 12, "open")
    seen = alert.last_seen_at

    run(send(12, 3))
    alert = wait_until(
        lambda: QualityAlert.objects.filter(rule="no_lot", occurrences=15).first(),
        what="the count to grow",
    )
    assert QualityAlert.objects.filter(rule="no_lot").count() == 1
    assert alert.last_seen_at > seen
    assert SensorSample.objects.filter(lot__isnull=True).count() == 15
