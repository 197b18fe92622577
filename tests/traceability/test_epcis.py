"""EPCIS 2.0 events of a product's life: schema, event hash IDs, filters, export round trip."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
from django.core.management import call_command
from django.utils import timezone
from epcis_event_hash_generator import hash_generator, json_to_py

from gaveurs.models import Site
from tests.factories import make_device, make_lot, make_sample, make_staff
from traceability.gs1 import epcis
from traceability.gs1.event_hash import event_hash_id, event_prehash
from traceability.models import ConsumerProduct
from traceability.services import product_register

SCHEMA = json.loads(
    (Path(__file__).parent / "schemas" / "EPCIS-JSON-Schema.json").read_text(encoding="utf-8")
)
VALIDATOR = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
EAN13 = "4006381333931"
GLN = "4012345000009"


def document(events, *, query=False):
    return json.loads("".join(epcis.document_chunks(events, query=query)))


def assert_valid(doc):
    errors = sorted(VALIDATOR.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]


def register(lot, site_code, n, **sample_kw):
    device = make_device(device_id=f"ESP32_{site_code}_01", site=lot.site)
    products = []
    for i in range(n):
        sample = make_sample(
            lot=lot,
            device=device,
            site_code=site_code,
            spectral_fat_quality_index=0.81,
            spectral_oxidation_index=0.12 + i / 100,
            **sample_kw,
        )
        products.append(
            product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code=site_code)
        )
    return [ConsumerProduct.objects.get(product_id=p.product_id) for p in products]


@pytest.fixture
def gs1_lot(db):
    site = Site.objects.create(code="GS", name="Ferme GS1", gtin=EAN13, gln=GLN)
    lot = make_lot(site=site, code="GS2601001", dead_count=3)
    return lot, register(lot, "GS", 3)


@pytest.fixture
def plain_lot(db):
    site = Site.objects.create(code="NG", name="Ferme sans GS1")
    lot = make_lot(site=site, code="NG2601001")
    return lot, register(lot, "NG", 2)


def all_events(**kw):
    return [event for _, event in epcis.events(epcis.EventFilter(**kw))]


def test_every_event_kind_validates_against_the_epcis_2_schema(gs1_lot, plain_lot):
    lot, products = gs1_lot
    events = all_events()
    kinds = {(e["type"], e.get("bizStep"), e.get("action")) for e in events}
    assert ("TransformationEvent", None, None) in kinds
    assert ("ObjectEvent", "inspecting", "OBSERVE") in kinds
    assert ("ObjectEvent", "commissioning", "ADD") in kinds
    assert any(k[1] and k[1].endswith("BizStep-feeding") for k in kinds)
    site = epcis.site_ids(lot.site)
    recall = epcis.recall_event(
        units=[site.unit(serial="AB", product_id="x")], site=site, when=timezone.now()
    )
    for doc in (document(events), document(events, query=True), document([recall])):
        assert_valid(doc)


def test_a_document_that_breaks_the_schema_is_caught(gs1_lot):
    """The validator is live: a wrong disposition, a missing action, an identifier that is not
    a URI and a time that is not a date-time are each reported."""
    good = all_events(event_types=("ObjectEvent",))[0]
    assert {"uri", "date-time"} <= set(VALIDATOR.format_checker.checkers)
    for change in (
        {"disposition": "not-a-disposition"},
        {"action": None},
        {"readPoint": {"id": "not a uri"}},
        {"eventTime": "yesterday"},
    ):
        event = {**good, **change}
        event = {k: v for k, v in event.items() if v is not None}
        assert list(VALIDATOR.iter_errors(document([event]))), change


def test_the_inspection_carries_one_sensor_report_per_measured_quantity(gs1_lot):
    lot, products = gs1_lot
    inspections = [e for e in all_events() if e.get("bizStep") == "inspecting"]
    assert len(inspections) == len(products)
    event = inspections[0]
    assert event["disposition"] == "conformant"
    assert event["epcList"] == [f"https://id.gs1.org/01/0{EAN13}/21/{products[0].gs1_serial}"]
    assert event["readPoint"]["id"] == f"https://id.gs1.org/414/{GLN}/254/ESP32_GS_01"
    assert event["bizLocation"]["id"] == f"https://id.gs1.org/414/{GLN}"
    (element,) = event["sensorElementList"]
    reports = element["sensorReport"]
    methods = {r["dataProcessingMethod"].rsplit("/", 1)[1]: r for r in reports}
    assert set(methods) == {
        "fusionScore",
        "tofVolume",
        "surfaceUniformity",
        "spectralFreshness",
        "fatQuality",
        "oxidation",
    }
    assert methods["tofVolume"] == {
        "type": "Volume",
        "deviceID": "http://localhost:8000/id/station/ESP32_GS_01",
        "dataProcessingMethod": "http://localhost:8000/voc/sqal/tofVolume",
        "value": 125000.0,
        "uom": "MMQ",
    }
    assert methods["fusionScore"]["value"] == 87.0 and methods["fusionScore"]["uom"] == "P1"
    assert methods["fatQuality"]["type"] == "Dimensionless"
    assert all(r["deviceID"].endswith("/id/station/ESP32_GS_01") for r in reports)


def test_a_non_compliant_inspection_is_non_conformant(db):
    site = Site.objects.create(code="NC", name="NC")
    lot = make_lot(site=site)
    sample = make_sample(lot=lot, site_code="NC", is_compliant=False, fusion_grade="C")
    site_ids = epcis.site_ids(site)
    event = epcis.inspection_event(
        unit=site_ids.unit(serial="A", product_id="FG_NC_20260101_0001"),
        site=site_ids,
        when=sample.time,
        device_id=sample.device_id,
        sample={"is_compliant": False, "fusion_grade": "C", "fusion_score": 0.5},
    )
    assert event["disposition"] == "non_conformant"
    assert_valid(document([event]))


def test_units_and_sites_without_gs1_keys_get_our_own_uris(plain_lot):
    lot, products = plain_lot
    events = all_events(lot="NG2601001")
    (transformation,) = [e for e in events if e["type"] == "TransformationEvent"]
    assert transformation["outputEPCList"] == [
        f"http://localhost:8000/id/product/{p.product_id}" for p in products
    ]
    assert transformation["inputQuantityList"] == [
        {"epcClass": "http://localhost:8000/id/lot/NG2601001", "quantity": 2}
    ]
    assert transformation["bizLocation"]["id"] == "http://localhost:8000/id/site/NG"
    inspection = next(e for e in events if e.get("bizStep") == "inspecting")
    assert inspection["readPoint"]["id"] == "http://localhost:8000/id/site/NG/station/ESP32_NG_01"


def test_event_ids_match_the_gs1_reference_hash_generator(gs1_lot, plain_lot):
    lot, _ = gs1_lot
    site = epcis.site_ids(lot.site)
    events = all_events() + [
        epcis.recall_event(
            units=[site.unit(serial="AB12", product_id="x")], site=site, when=timezone.now()
        )
    ]
    doc = document(events)
    reference = hash_generator.epcis_hashes_from_events(
        json_to_py.event_list_from_epcis_document_json(json.loads(json.dumps(doc)))
    )
    ours = [e["eventID"] for e in events]
    assert len(set(ours)) == len(ours)
    assert ours == reference, [
        event_prehash(e, epcis.namespaces())
        for e, a, b in zip(events, ours, reference, strict=True)
        if a != b
    ][:2]


def test_the_event_hash_ignores_key_order_and_list_order(gs1_lot):
    event = next(e for e in all_events() if e.get("bizStep") == "inspecting")
    shuffled = dict(reversed(list(event.items())))
    element = dict(shuffled["sensorElementList"][0])
    element["sensorReport"] = list(reversed(element["sensorReport"]))
    shuffled["sensorElementList"] = [element]
    assert event_hash_id(shuffled, epcis.namespaces()) == event["eventID"]


def test_filters_select_by_lot_product_site_type_and_time(gs1_lot, plain_lot):
    lot, products = gs1_lot
    assert {e.get("bizLocation", {}).get("id") for e in all_events(site="NG")} == {
        "http://localhost:8000/id/site/NG"
    }
    one = all_events(product=products[1].product_id)
    unit = f"https://id.gs1.org/01/0{EAN13}/21/{products[1].gs1_serial}"
    assert len(one) == 3  # its day's transformation, its inspection, its commissioning
    assert all(unit in e.get("epcList", e.get("outputEPCList", [])) for e in one)
    only = all_events(lot="GS2601001", event_types=("TransformationEvent",))
    assert [e["type"] for e in only] == ["TransformationEvent"]
    future = timezone.now() + timedelta(days=1)
    assert all_events(since=future) == []
    early = all_events(lot="GS2601001", until=lot.planned_feeding_end + timedelta(seconds=1))
    assert [e["bizStep"].rsplit("/", 1)[1] for e in early] == ["BizStep-feeding"]


def test_paging_with_the_cursor_returns_every_event_once_in_order(gs1_lot, plain_lot):
    every = list(epcis.events(epcis.EventFilter()))
    seen, after = [], None
    while True:
        page = []
        for key, event in epcis.events(epcis.EventFilter(after=after)):
            page.append((key, event))
            if len(page) == 2:
                break
        if not page:
            break
        seen += page
        after = epcis.EventKey.from_token(page[-1][0].token())
    assert [e["eventID"] for _, e in seen] == [e["eventID"] for _, e in every]


def test_export_epcis_for_a_lot_lists_every_unit_and_its_inspection(gs1_lot, plain_lot, tmp_path):
    lot, products = gs1_lot
    out = io.StringIO()
    call_command("export_epcis", "--lot", "GS2601001", stdout=out)
    doc = json.loads(out.getvalue())
    assert_valid(doc)
    events = doc["epcisBody"]["eventList"]
    units = {f"https://id.gs1.org/01/0{EAN13}/21/{p.gs1_serial}" for p in products}
    outputs = {u for e in events if e["type"] == "TransformationEvent" for u in e["outputEPCList"]}
    inspected = {e["epcList"][0] for e in events if e.get("bizStep") == "inspecting"}
    commissioned = {e["epcList"][0] for e in events if e.get("bizStep") == "commissioning"}
    assert outputs == inspected == commissioned == units
    assert not any("NG2601001" in json.dumps(e) for e in events)


def test_export_epcis_by_site_since_a_date_and_its_errors(gs1_lot, plain_lot):
    out = io.StringIO()
    call_command("export_epcis", "--site", "NG", "--since", "2000-01-01", stdout=out)
    events = json.loads(out.getvalue())["epcisBody"]["eventList"]
    assert events and all("/id/site/NG" in e["bizLocation"]["id"] for e in events)
    tomorrow = (timezone.now() + timedelta(days=2)).date().isoformat()
    out = io.StringIO()
    call_command("export_epcis", "--site", "NG", "--since", tomorrow, stdout=out)
    assert json.loads(out.getvalue())["epcisBody"]["eventList"] == []
    from django.core.management.base import CommandError

    for args in (
        [],
        ["--lot", "GS2601001", "--site", "NG"],
        ["--site", "NG", "--since", "yesterday"],
        ["--lot", "NOPE"],
        ["--site", "ZZ"],
    ):
        with pytest.raises(CommandError):
            call_command("export_epcis", *args, stdout=io.StringIO())


# --- GET /api/epcis/events ------------------------------------------------------------------

EVENTS = "/api/epcis/events"


@pytest.fixture
def staff(db):
    return make_staff("inspecteur", "traceability.view_consumerproduct")


def bearer(user, scopes):
    from traceability.auth import api_token_create

    _, clear = api_token_create(user=user, name="retailer", scopes=scopes)
    return {"HTTP_AUTHORIZATION": f"Bearer {clear}"}


def test_the_api_needs_a_token_with_the_epcis_read_scope(client, staff, gs1_lot):
    response = client.get(EVENTS)
    assert response.status_code == 401
    response = client.get(EVENTS, **bearer(staff, []))
    assert response.status_code == 403
    assert response.json() == {
        "success": False,
        "error": "insufficient_scope",
        "field": None,
        "rule": "scope",
        "detail": "this token lacks the scope epcis:read",
    }
    # the scope, but not the permission to view products (events name unit serials)
    clerk = make_staff("comptable")
    response = client.get(EVENTS, **bearer(clerk, ["epcis:read"]))
    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"
    client.force_login(staff)  # a staff session is not a token
    assert client.get(EVENTS).status_code == 401
    staff.is_staff = False
    staff.save()
    assert client.get(EVENTS, **bearer(staff, ["epcis:read"])).status_code == 401


def test_the_api_answers_a_valid_query_document_filtered_by_lot(client, staff, gs1_lot, plain_lot):
    lot, products = gs1_lot
    response = client.get(EVENTS, {"lot": "GS2601001"}, **bearer(staff, ["epcis:read"]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/ld+json")
    assert response["GS1-EPCIS-Version"] == "2.0.0"
    doc = response.json()
    assert_valid(doc)
    assert doc["type"] == "EPCISQueryDocument"
    events = doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert [e["eventID"] for e in events] == [e["eventID"] for e in all_events(lot="GS2601001")]
    assert "Link" not in response


def test_the_api_pages_with_a_next_link_until_every_event_is_read(
    client, staff, gs1_lot, plain_lot
):
    headers = bearer(staff, ["epcis:read"])
    url, seen = f"{EVENTS}?perPage=4&eventType=ObjectEvent", []
    while url:
        response = client.get(url, **headers)
        assert response.status_code == 200
        seen += response.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        link = response.get("Link")
        url = link[link.index("/api/") : link.index(">")] if link else None
        assert not link or link.endswith('rel="next"')
    expected = all_events(event_types=("ObjectEvent",))
    assert len(expected) > 8
    assert [e["eventID"] for e in seen] == [e["eventID"] for e in expected]


@pytest.mark.parametrize(
    "query, field",
    [
        ({"perPage": "0"}, "perPage"),
        ({"perPage": "1001"}, "perPage"),
        ({"perPage": "١٢"}, "perPage"),
        ({"eventType": "AggregationEvent"}, "eventType"),
        ({"GE_eventTime": "yesterday"}, "GE_eventTime"),
        ({"lot": "L" * 51}, "lot"),
        ({"site": "ll"}, "site"),
        ({"nextPageToken": "1.9.0.0"}, "nextPageToken"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(client, staff, db, query, field):
    response = client.get(EVENTS, query, **bearer(staff, ["epcis:read"]))
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_parameter" and body["field"] == field
    assert body["detail"].startswith(field + ":")


def test_a_nul_byte_in_the_query_is_400_before_any_view(client, staff, db):
    response = client.get(EVENTS, {"lot": "A\x00B"}, **bearer(staff, ["epcis:read"]))
    assert response.status_code == 400
    assert response.json()["rule"] == "no_nul"


def test_the_api_filters_by_time_range_site_and_type(client, staff, gs1_lot, plain_lot):
    headers = bearer(staff, ["epcis:read"])
    future = (timezone.now() + timedelta(days=1)).isoformat()
    response = client.get(EVENTS, {"GE_eventTime": future}, **headers)
    assert response.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"] == []
    response = client.get(EVENTS, {"site": "NG", "eventType": "TransformationEvent"}, **headers)
    events = response.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert [e["type"] for e in events] == ["TransformationEvent"]


def test_read_points_fall_back_to_the_site_when_a_station_id_does_not_fit_ai_254(db):
    from traceability.gs1 import identifiers as ids

    assert ids.read_point_uri(code="GS", gln=GLN, device_id="ESP32_GS_01") == (
        f"https://id.gs1.org/414/{GLN}/254/ESP32_GS_01"
    )
    too_long = "STATION_" + "X" * 30
    assert ids.read_point_uri(code="GS", gln=GLN, device_id=too_long) == (
        f"https://id.gs1.org/414/{GLN}"
    )
    # a GLN with a wrong check digit is not used: our own URI instead
    assert ids.site_uri(code="GS", gln="4012345000008") == "http://localhost:8000/id/site/GS"
    assert ids.unit_uri(gtin=None, serial="AB", product_id="FG_GS_20260101_0001") == (
        "http://localhost:8000/id/product/FG_GS_20260101_0001"
    )


def test_documents_are_written_one_event_at_a_time_never_whole(gs1_lot):
    """document_chunks pulls events lazily: each chunk is out before the next event is built."""
    built: list[int] = []

    def lazily():
        for n, (_, event) in enumerate(epcis.events(epcis.EventFilter(lot="GS2601001"))):
            built.append(n)
            yield event

    chunks = epcis.document_chunks(lazily())
    next(chunks)  # the opening: no event built yet
    assert built == []
    next(chunks)
    assert built == [0]
    next(chunks)
    assert built == [0, 1]
    rest = "".join(chunks)
    assert rest.endswith("]}}\n") and len(built) > 2


def test_a_recall_and_a_withdrawal_are_events_of_the_lots_affected_units(gs1_lot, plain_lot):
    from traceability.recalls import recall_declare

    lot, products = gs1_lot
    other_lot, _ = plain_lot
    common = {
        "reason": "Listeria",
        "instructions_fr": "Ne pas consommer.",
        "instructions_en": "Do not eat.",
        "starts_at": timezone.now(),
    }
    recall_declare(kind="recall", reference="RC-E1", scope="lots", lot_ids=[lot.pk], **common)
    recall_declare(
        kind="withdrawal",
        reference="RC-E2",
        scope="products",
        product_ids=[products[1].product_id],
        **common,
    )

    recalls = [e for e in all_events() if e.get("gt:recallKind")]

    assert [(e["disposition"], e["gt:recallReference"]) for e in recalls] == [
        ("recalled", "RC-E1"),
        ("non_sellable_other", "RC-E2"),
    ]
    assert len(recalls[0]["epcList"]) == 3 and len(recalls[1]["epcList"]) == 1
    assert all(e["bizStep"] == "holding" and e["action"] == "OBSERVE" for e in recalls)
    assert not [e for e in all_events(lot=other_lot.code) if e.get("gt:recallKind")]
    only = [e for e in all_events(product=products[0].product_id) if e.get("gt:recallKind")]
    assert len(only) == 1 and len(only[0]["epcList"]) == 1
    assert_valid(document(recalls))
