"""GS1 Digital Link: /01/<GTIN>/10/<lot>/21/<serial> resolves to the product's scan page."""

from __future__ import annotations

import pytest

from gaveurs.models import Site
from tests.factories import make_lot, make_sample
from traceability import qr
from traceability.services import product_register

EAN13 = "4006381333931"  # a real, correctly checked EAN-13


@pytest.mark.parametrize("gtin", [EAN13, "036000291452", "96385074", "0" + EAN13])
def test_valid_gtins_of_every_length_normalise_to_14_digits(gtin):
    assert qr.gtin_normalize(gtin) == gtin.zfill(14)


@pytest.mark.parametrize(
    "gtin", ["4006381333932", "40063813339", "40063813339a1", "", "٤٠٠٦٣٨١٣٣٣٩٣١"]
)
def test_wrong_check_digits_and_malformed_gtins_are_refused(gtin):
    with pytest.raises(qr.Gs1PathError):
        qr.gtin_normalize(gtin)


@pytest.fixture
def product(db):
    site = Site.objects.create(code="GS", name="GS1 site", gtin=EAN13)
    lot = make_lot(site=site, code="GS2601001")
    sample = make_sample(lot=lot)
    return product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="GS")


def test_the_digital_link_redirects_to_the_scan_page(client, product):
    for gtin in ["0" + EAN13, EAN13]:
        response = client.get(f"/01/{gtin}/10/GS2601001/21/{product.product_id}")
        assert response.status_code == 302
        assert response["Location"] == f"/p/{product.qr_code}"


def test_the_product_path_helper_builds_a_link_that_resolves(client, product):
    path = qr.gs1_digital_link_path(gtin=EAN13, lot_code="GS2601001", product_id=product.product_id)
    assert path == f"/01/0{EAN13}/10/GS2601001/21/{product.product_id}"
    assert client.get(path)["Location"] == f"/p/{product.qr_code}"
    assert qr.gs1_digital_link_path(gtin="", lot_code="X", product_id="Y") is None


@pytest.mark.parametrize(
    "path",
    [
        "/01/",
        "/01",
        f"/01/{EAN13}",
        "/01/4006381333932/10/GS2601001/21/FG_GS_20260101_0001",
        "/01/ABC/10/GS2601001/21/FG_GS_20260101_0001",
        f"/01/{EAN13}/17/GS2601001/21/FG_GS_20260101_0001",
        f"/01/{EAN13}/10/{'L' * 21}/21/FG_GS_20260101_0001",
        f"/01/{EAN13}/10/GS2601001/21/FG%20GS",
        f"/01/{EAN13}/10/GS2601001/21/FG_GS_20260101_0001/extra",
    ],
)
def test_malformed_paths_are_400_and_say_what_is_wrong(client, db, path):
    response = client.get(path)
    assert response.status_code == 400
    assert "GS1" in response.content.decode()


def test_unknown_products_lots_and_gtins_are_404(client, product):
    other_gtin = "036000291452"
    Site.objects.create(code="NG", name="No GTIN site")
    for path in [
        f"/01/{EAN13}/10/GS2601001/21/FG_GS_20990101_0009",
        f"/01/{EAN13}/10/OTHERLOT/21/{product.product_id}",
        f"/01/{other_gtin}/10/GS2601001/21/{product.product_id}",
    ]:
        assert client.get(path).status_code == 404, path
