"""Product QR images (segno, cached on disk) and printable label sheets, as staff see them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from PIL import Image
from pyzbar.pyzbar import decode

from tests.factories import make_product, make_staff
from traceability import qr

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.PUBLIC_BASE_URL = "https://trace.example.fr"
    return tmp_path


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(make_staff("q", "traceability.view_consumerproduct"))
    return client


def decoded(png: bytes) -> list[str]:
    return [d.data.decode() for d in decode(Image.open(io.BytesIO(png)))]


def test_the_png_decodes_to_the_scan_page_url_a_phone_opens(staff_client):
    product = make_product(sample_id="ESP32_LL_01_1234")

    response = staff_client.get(f"/staff/products/{product.product_id}/qr.png")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert decoded(response.content) == [f"https://trace.example.fr/p/{product.qr_code}"]


def test_svg_is_served_with_a_long_private_cache_and_an_etag(staff_client):
    product = make_product()
    url = f"/staff/products/{product.product_id}/qr.svg"

    response = staff_client.get(url)

    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg")
    assert "immutable" in response["Cache-Control"] and "private" in response["Cache-Control"]
    again = staff_client.get(url, HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    assert again.content == b""


def test_download_sets_a_file_name_and_scale_changes_the_png_size(staff_client):
    product = make_product()
    base = f"/staff/products/{product.product_id}/qr.png"

    small = staff_client.get(base + "?scale=2")
    big = staff_client.get(base + "?scale=10&download=1")

    assert (
        Image.open(io.BytesIO(big.content)).size[0]
        == 5 * Image.open(io.BytesIO(small.content)).size[0]
    )
    assert big["Content-Disposition"] == f'attachment; filename="{product.product_id}-qr.png"'
    assert decoded(small.content) == decoded(big.content)
    assert staff_client.get(base + "?scale=big").status_code == 400


def test_images_are_rendered_once_then_read_from_the_cache(media, monkeypatch):
    code = make_product().qr_code
    first = qr.product_qr_image(code, kind="svg")
    assert len(list((media / "qr").rglob("*.svg"))) == 1

    def no_render(*args, **kwargs):
        raise AssertionError("rendered again")

    monkeypatch.setattr(qr, "_render", no_render)
    assert qr.product_qr_image(code, kind="svg") == first


def test_a_new_public_base_url_gives_a_new_image_not_a_stale_one(settings):
    code = make_product().qr_code
    old = qr.product_qr_image(code, kind="png")
    settings.PUBLIC_BASE_URL = "https://other.example.fr"

    new = qr.product_qr_image(code, kind="png")

    assert new.etag != old.etag
    assert decoded(new.content) == [f"https://other.example.fr/p/{code}"]


def test_only_staff_may_fetch_images_and_unknown_products_or_formats_are_404(
    staff_client, django_user_model
):
    client = Client()
    product = make_product()
    url = f"/staff/products/{product.product_id}/qr.svg"

    assert client.get(url).status_code == 302
    assert "/admin/login/" in client.get(url)["Location"]
    client.force_login(django_user_model.objects.create_user("consumer", password="x"))
    assert client.get(url).status_code == 302
    assert staff_client.get("/staff/products/FG_LL_20990101_0001/qr.svg").status_code == 404
    assert staff_client.get(f"/staff/products/{product.product_id}/qr.gif").status_code == 404


def test_the_label_sheet_puts_21_labels_on_each_a4_page(staff_client):
    products = [make_product(fusion_grade=g) for g in ["A+", "A", "B", "C"] * 6][:22]
    ids = ",".join(str(p.pk) for p in products)

    response = staff_client.get(f"/staff/products/labels/?ids={ids}")

    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('<section class="sheet">') == 2
    assert html.count('<div class="label"') == 22
    assert html.count("<svg") == 22
    # The page layout is a static stylesheet (no inline style: the content security policy).
    assert "traceability/labels.css" in html
    assert "size: A4" in Path(finders.find("traceability/labels.css")).read_text()
    for p in products:
        assert p.product_id in html and p.lot_code in html
    assert ">B</div>" in html and ">A+</div>" in html


def test_the_label_sheet_is_staff_only_and_rejects_malformed_ids(staff_client):
    assert Client().get("/staff/products/labels/?ids=1").status_code == 302
    assert staff_client.get("/staff/products/labels/?ids=1,x").status_code == 400
    empty = staff_client.get("/staff/products/labels/?ids=999999")
    assert empty.status_code == 200 and "<svg" not in empty.content.decode()
