"""GS1 Digital Link: /01/<GTIN>/10/<lot>/21/<serial> resolves to the product's scan page."""

from __future__ import annotations

import re

import pytest

from gaveurs.models import Site
from optimizer.history import history_import
from tests.factories import make_lot, make_sample
from traceability import qr
from traceability.models import ConsumerProduct
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
    registered = product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="GS")
    return ConsumerProduct.objects.get(product_id=registered.product_id)


def test_the_digital_link_redirects_to_the_scan_page(client, product):
    for gtin in ["0" + EAN13, EAN13]:
        response = client.get(f"/01/{gtin}/10/GS2601001/21/{product.gs1_serial}")
        assert response.status_code == 307  # GS1-Conformant Resolver: temporary redirect
        assert response["Location"] == f"http://localhost:8000/p/{product.qr_code}"


def test_the_product_path_helper_builds_a_link_that_resolves(client, product):
    path = qr.gs1_digital_link_path(gtin=EAN13, lot_code="GS2601001", serial=product.gs1_serial)
    assert path == f"/01/0{EAN13}/10/GS2601001/21/{product.gs1_serial}"
    assert client.get(path)["Location"] == f"http://localhost:8000/p/{product.qr_code}"
    assert qr.gs1_digital_link_path(gtin="", lot_code="X", serial="Y") is None


def test_every_product_gets_a_random_80_bit_serial_unrelated_to_its_product_id(db):
    site = Site.objects.create(code="GS", name="GS1 site", gtin=EAN13)
    lot = make_lot(site=site, code="GS2601001")
    for _ in range(40):
        sample = make_sample(lot=lot)
        product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="GS")
    products = list(ConsumerProduct.objects.filter(lot=lot).order_by("product_id"))
    serials = [p.gs1_serial for p in products]
    assert len(set(serials)) == 40
    assert all(re.fullmatch(r"[0-9A-F]{20}", s) for s in serials)
    assert not any(p.product_id in p.gs1_serial or p.gs1_serial in p.qr_code for p in products)
    # 80 random bits: over 40 serials every hex digit shows up at about 1/16 in each position;
    # a serial that were a counter or a hash prefix of the id would not spread like this.
    assert len({s[i] for s in serials for i in range(20)}) == 16
    assert sorted(serials) != serials or sorted(serials, reverse=True) != serials


def test_the_sequential_product_id_no_longer_resolves(client, product):
    response = client.get(f"/01/{EAN13}/10/GS2601001/21/{product.product_id}")
    assert response.status_code == 404
    assert product.qr_code not in response.content.decode()


def test_stepping_or_guessing_serials_from_public_data_finds_no_product(client, product):
    """What a scan page shows (lot code, product id, dates, GTIN) gives no path to a signed code."""
    site = Site.objects.get(code="GS")
    for _ in range(20):
        sample = make_sample(lot=product.lot)
        product_register(lot_id=product.lot_id, sample_id=sample.sample_id, site_code="GS")
    known = list(ConsumerProduct.objects.filter(lot=product.lot))
    pid = product.product_id
    prefix, seq = pid.rsplit("_", 1)
    guesses = {f"{prefix}_{int(seq) + step:04d}" for step in range(-5, 30)}
    guesses |= {p.product_id for p in known} | {p.sqal_sample_id[:20] for p in known}
    guesses |= {f"{n:020X}" for n in range(0, 50)} | {f"{n}" for n in range(1, 50)}
    guesses |= {p.gs1_serial[:-1] + ("0" if p.gs1_serial[-1] != "0" else "1") for p in known}
    guesses -= {p.gs1_serial for p in known}
    for guess in sorted(guesses):
        # with the lot, and without it (/01/<gtin>/21/<serial> resolves units too)
        for path in (f"/10/{product.lot_code}/21/{guess}", f"/21/{guess}"):
            response = client.get(f"/01/{site.gtin}{path}")
            assert response.status_code in (400, 404), guess
            assert "Location" not in response


def test_products_written_outside_the_sql_function_get_a_serial_too(db):
    text = (
        "lot_code,site_code,gaveur_last_name,gaveur_first_name,feeding_start,duck_count,"
        "dead_count,day01_morning_g,day01_evening_g,sample_id,fusion_score\n"
        "HX01,GS,Dupont,Jean,2026-01-05,100,2,200,220,HX-S1,0.9\n"
        "HX01,GS,Dupont,Jean,2026-01-05,100,2,200,220,HX-S2,0.8\n"
    )
    history_import(text=text)
    serials = list(
        ConsumerProduct.objects.filter(lot_code="HX01").values_list("gs1_serial", flat=True)
    )
    assert len(serials) == 2 and len(set(serials)) == 2
    assert all(re.fullmatch(r"[0-9A-F]{20}", s) for s in serials)


@pytest.mark.parametrize(
    "path",
    [
        "/01/",
        "/01",
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


def test_the_label_prints_the_random_serial_not_the_product_id(admin_client, product):
    response = admin_client.get(f"/staff/products/labels/?ids={product.pk}")
    html = response.content.decode()
    assert f"/01/0{EAN13}/10/GS2601001/21/{product.gs1_serial}" in html
    assert f"/21/{product.product_id}" not in html
