"""The GS1-Conformant resolver: class, lot and unit levels, link types, linksets, the resolver
description, 400 and 404 rules, headers and languages; nothing public leads to a unit."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from biip.gs1_digital_link_uris import GS1DigitalLinkURI

from gaveurs.models import Site
from tests.factories import make_lot, make_sample
from traceability.models import ConsumerProduct
from traceability.services import product_register

EAN13 = "4006381333931"
GTIN14 = "0" + EAN13
LINKSET_SCHEMA = json.loads(
    (Path(__file__).parent / "schemas" / "gs1-linkset-schema.json").read_text(encoding="utf-8")
)
VOC = "https://gs1.org/voc/"


@pytest.fixture
def products(db):
    site = Site.objects.create(code="GS", name="Ferme GS1", region="Landes", gtin=EAN13)
    lot = make_lot(site=site, code="GS2601001")
    registered = []
    for _ in range(3):
        sample = make_sample(lot=lot, site_code="GS")
        registered.append(
            product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="GS")
        )
    make_lot(site=site, code="GS2601002")  # still feeding: no units, not shown or resolved
    return [ConsumerProduct.objects.get(product_id=r.product_id) for r in registered]


def linkset_of(client, path, **headers):
    response = client.get(path, {"linkType": "all"}, **headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/linkset+json")
    body = response.json()
    jsonschema.validate(body, LINKSET_SCHEMA)
    return body["linkset"][0]


def test_every_level_parses_with_biip_and_redirects_to_its_default_link(client, products):
    unit = products[0]
    cases = {
        f"/01/{GTIN14}": "/produit/" + GTIN14,
        f"/01/{GTIN14}/10/GS2601001": f"/produit/{GTIN14}/lot/GS2601001",
        f"/01/{GTIN14}/10/GS2601001/21/{unit.gs1_serial}": f"/p/{unit.qr_code}",
        f"/01/{GTIN14}/21/{unit.gs1_serial}": f"/p/{unit.qr_code}",
    }
    for path, target in cases.items():
        parsed = GS1DigitalLinkURI.parse("https://id.example.org" + path)
        assert parsed.element_strings[0].value == GTIN14
        response = client.get(path)
        assert response.status_code == 307, path
        assert response["Location"] == "http://localhost:8000" + target
        assert 'rel="linkset"' in response["Link"]
        assert response["Access-Control-Allow-Origin"] == "*"


def test_the_class_and_lot_pages_render_in_french_and_english(client, products):
    for path in (f"/produit/{GTIN14}", f"/produit/{GTIN14}/lot/GS2601001"):
        fr = client.get(path, HTTP_ACCEPT_LANGUAGE="fr")
        en = client.get(path, HTTP_ACCEPT_LANGUAGE="en")
        assert fr.status_code == en.status_code == 200
        assert "Foie gras de canard" in fr.content.decode()
        assert "Duck foie gras" in en.content.decode()
        assert "<script" not in fr.content.decode() and "style=" not in fr.content.decode()
    page = client.get(f"/produit/{GTIN14}/lot/GS2601001").content.decode()
    assert "Landes" in page and "3 sur 3" in page
    classes = client.get(f"/produit/{GTIN14}").content.decode()
    assert "GS2601001" in classes and "GS2601002" not in classes


def test_the_lot_and_class_levels_reveal_no_serial_qr_code_or_unit_page(client, products):
    public = [
        client.get(f"/produit/{GTIN14}").content.decode(),
        client.get(f"/produit/{GTIN14}/lot/GS2601001").content.decode(),
        client.get(f"/01/{GTIN14}", {"linkType": "all"}).content.decode(),
        client.get(f"/01/{GTIN14}/10/GS2601001", {"linkType": "all"}).content.decode(),
    ]
    for level in (f"/01/{GTIN14}", f"/01/{GTIN14}/10/GS2601001"):
        for link_type in ("gs1:pip", "gs1:review", "gs1:traceability", "all", "gs1:defaultLink"):
            response = client.get(level, {"linkType": link_type})
            public += [response.get("Location", ""), response.get("Link", "")]
    text = "\n".join(public)
    assert "/p/" not in text and "SQAL_" not in text
    for product in products:
        assert product.gs1_serial not in text
        assert product.qr_code not in text
        assert product.product_id not in text


def test_link_types_select_a_link_and_unoffered_ones_fall_back_to_the_default(client, products):
    unit = products[0]
    path = f"/01/{GTIN14}/10/GS2601001/21/{unit.gs1_serial}"
    scan = f"http://localhost:8000/p/{unit.qr_code}"
    expected = {
        "gs1:pip": scan,
        f"{VOC}pip": scan,
        "gs1:review": scan + "#reviews-title",
        "gs1:defaultLink": scan,
        "gs1:recallStatus": scan,  # not offered (no recalls yet): default link
        "gs1:certificationInfo": scan,  # not offered: default link
        "nonsense": scan,
    }
    for link_type, location in expected.items():
        response = client.get(path, {"linkType": link_type})
        assert response.status_code == 307
        assert response["Location"] == location, link_type
    assert client.get(path, {"linkType": "gs1:pip\x00"}).status_code == 400  # NUL: middleware
    traceability = client.get(path, {"linkType": "gs1:traceability"})["Location"]
    assert traceability == f"http://localhost:8000/api/epcis/events?product={unit.product_id}"
    lot = client.get(f"/01/{GTIN14}/10/GS2601001", {"linkType": "gs1:traceability"})
    assert lot["Location"] == "http://localhost:8000/api/epcis/events?lot=GS2601001"
    assert client.get(f"/01/{GTIN14}", {"linkType": "gs1:review"})["Location"].endswith(
        f"/produit/{GTIN14}"
    )


def test_linksets_validate_against_gs1s_schema_at_every_level(client, products):
    unit = products[0]
    entry = linkset_of(client, f"/01/{GTIN14}/10/GS2601001/21/{unit.gs1_serial}")
    assert entry["anchor"] == f"http://localhost:8000/01/{GTIN14}/10/GS2601001/21/{unit.gs1_serial}"
    assert {k.removeprefix(VOC) for k in entry if k.startswith(VOC)} == {
        "defaultLink",
        "pip",
        "review",
        "traceability",
    }
    entry = linkset_of(client, f"/01/{GTIN14}/10/GS2601001")
    assert {k.removeprefix(VOC) for k in entry if k.startswith(VOC)} == {
        "defaultLink",
        "pip",
        "traceability",
    }
    entry = linkset_of(client, f"/01/{GTIN14}")
    assert entry[VOC + "pip"][0]["hreflang"] == ["fr", "en"]
    accepted = client.get(f"/01/{GTIN14}", HTTP_ACCEPT="application/linkset+json")
    assert accepted.status_code == 200 and accepted.json()["linkset"][0] == entry


def test_the_linkset_titles_follow_accept_language(client, products):
    fr = linkset_of(client, f"/01/{GTIN14}/10/GS2601001", HTTP_ACCEPT_LANGUAGE="fr")
    en = linkset_of(client, f"/01/{GTIN14}/10/GS2601001", HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.9")
    assert fr["itemDescription"] == "Foie gras de canard, lot GS2601001"
    assert en["itemDescription"] == "Duck foie gras, lot GS2601001"
    response = client.get(f"/01/{GTIN14}", HTTP_ACCEPT_LANGUAGE="en")
    assert "Accept-Language" in response["Vary"]


def test_the_link_header_lists_the_linkset_and_each_link(client, products):
    link = client.get(f"/01/{GTIN14}/10/GS2601001")["Link"]
    assert (
        f'<http://localhost:8000/01/{GTIN14}/10/GS2601001?linkType=all>; rel="linkset"; '
        'type="application/linkset+json"'
    ) in link
    assert f'rel="{VOC}pip"' in link and f'rel="{VOC}defaultLink"' in link
    # every link has a title; non-ASCII titles also as RFC 8288 title*
    assert link.count("title=") == link.count("rel=") == 4
    assert 'title="Lot GS2601001 : origine, gavage et controle qualite"' in link
    assert "title*=UTF-8''Lot%20GS2601001%20%3A%20origine" in link


def test_the_query_string_is_passed_on_when_redirecting(client, products):
    unit = products[0]
    response = client.get(f"/01/{GTIN14}/21/{unit.gs1_serial}?foo=bar&linkType=gs1:review")
    assert response["Location"] == f"http://localhost:8000/p/{unit.qr_code}?foo=bar#reviews-title"
    response = client.get(f"/01/{GTIN14}/10/GS2601001?17=261231&linkType=gs1:traceability")
    assert response["Location"].endswith("/api/epcis/events?lot=GS2601001&17=261231")


def test_plain_json_is_served_to_clients_that_ask_for_it(client, products):
    response = client.get(f"/01/{GTIN14}?linkType=all", HTTP_ACCEPT="application/json")
    assert response["Content-Type"].startswith("application/json")
    assert list(response.json()) == ["linkset"]


def test_the_resolver_description_is_well_known(client, db):
    response = client.get("/.well-known/gs1resolver")
    assert response.status_code == 200
    body = response.json()
    assert body["resolverRoot"] == "http://localhost:8000"
    assert body["supportedPrimaryKeys"] == ["01"]
    assert body["supportedLinkType"][0]["prefix"] == "gs1:"


def test_head_and_cors_preflight_are_answered(client, products):
    assert client.head(f"/01/{GTIN14}").status_code == 307
    response = client.options(f"/01/{GTIN14}")
    assert response.status_code == 204
    assert "OPTIONS" in response["Access-Control-Allow-Methods"]
    assert client.post(f"/01/{GTIN14}").status_code == 405


@pytest.mark.parametrize(
    "path, reason",
    [
        ("/01/4006381333932", "check digit"),
        ("/01/40063813339", "GTIN"),
        (f"/01/{EAN13}/17/261231", "AI '17'"),
        (f"/01/{EAN13}/22/ABC", "AI '22'"),
        (f"/01/{EAN13}/21/ABC/10/L1", "order"),
        (f"/01/{EAN13}/10/L1/10/L2", "order"),
        (f"/01/{EAN13}/10", "no value"),
        (f"/01/{EAN13}/10/{'L' * 21}", "character set 82"),
        (f"/01/{EAN13}/10/A%00B", "NUL"),  # refused by gaveurs/middleware.py before the view
        (f"/01/{EAN13}/10/{'L' * 300}", "over 200"),
        (f"/01/{EAN13}/21/%C3%A9t%C3%A9", "character set 82"),
        (f"/01/{EAN13}/10/A%0AB", "character set 82"),
        (f"/01/{EAN13}/10/L1/foo", "no value"),  # GS1's test suite appends /foo
    ],
)
def test_syntax_errors_are_400_with_the_reason(client, db, path, reason):
    response = client.get(path)
    assert response.status_code == 400
    assert reason in response.content.decode()


def test_unknown_identifiers_are_404(client, products):
    for path in [
        "/01/036000291452",  # valid GTIN, no site
        f"/01/{GTIN14}/10/NOLOT",
        f"/01/{GTIN14}/10/GS2601002",  # a lot with no unit
        f"/01/{GTIN14}/21/{'0' * 20}",
        f"/01/{GTIN14}/10/GS2601002/21/{products[0].gs1_serial}",  # serial of another lot
        "/produit/036000291452",
        f"/produit/{GTIN14}/lot/NOLOT",
    ]:
        assert client.get(path).status_code == 404, path


def _declare_recall(lot, **kw):
    from django.utils import timezone

    from traceability.recalls import recall_declare

    return recall_declare(
        kind="recall",
        reference="RC-GS1",
        reason="Listeria",
        instructions_fr="Ne pas consommer.",
        instructions_en="Do not eat.",
        starts_at=timezone.now(),
        scope="lots",
        lot_ids=[lot.pk],
        **kw,
    )


def test_a_recalled_unit_and_its_lot_gain_a_recall_status_link(client, products):
    unit = products[0]
    _declare_recall(unit.lot)
    path = f"/01/{GTIN14}/10/GS2601001/21/{unit.gs1_serial}"
    scan = f"http://localhost:8000/p/{unit.qr_code}"

    entry = linkset_of(client, path)
    assert entry[VOC + "recallStatus"][0]["href"] == scan + "#recall-banner"
    response = client.get(path, {"linkType": "gs1:recallStatus"})
    assert response.status_code == 307 and response["Location"] == scan + "#recall-banner"
    # The GS1 Digital Link leads to the same page, which shows the recall first.
    page = client.get(client.get(path)["Location"].removeprefix("http://localhost:8000"))
    assert 'data-testid="recall-banner"' in page.content.decode()

    lot_entry = linkset_of(client, f"/01/{GTIN14}/10/GS2601001")
    assert lot_entry[VOC + "recallStatus"][0]["href"].endswith("#recall")
    lot_url = client.get(f"/01/{GTIN14}/10/GS2601001")["Location"]
    lot_page = client.get(lot_url.removeprefix("http://localhost:8000")).content.decode()
    assert 'data-testid="recall"' in lot_page and "RC-GS1" in lot_page
    assert unit.qr_code not in lot_page
