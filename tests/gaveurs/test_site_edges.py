"""Site edges: the favicon, the canonical scan URL, the API docs offline."""

from __future__ import annotations

import pytest

from tests.factories import make_lot, make_sample
from tests.support.browser import chromium
from traceability.models import ConsumerProduct
from traceability.services import product_register


def test_the_favicon_is_served_at_the_root(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert response.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert "max-age" in response["Cache-Control"]


@pytest.mark.django_db
def test_every_page_names_its_icon(client):
    lot = make_lot()
    registered = product_register(
        lot_id=lot.id, sample_id=make_sample(lot=lot).sample_id, site_code="LL"
    )
    html = client.get(f"/p/{registered.qr_code}").content.decode()
    assert 'rel="icon"' in html and "favicon.ico" in html


@pytest.mark.django_db
def test_a_scan_url_with_a_trailing_slash_redirects_to_the_canonical_page(client):
    lot = make_lot()
    registered = product_register(
        lot_id=lot.id, sample_id=make_sample(lot=lot).sample_id, site_code="LL"
    )
    product = ConsumerProduct.objects.get(product_id=registered.product_id)
    response = client.get(f"/p/{product.qr_code}/?lang=en")
    assert response.status_code == 301
    assert response["Location"] == f"/p/{product.qr_code}?lang=en"
    assert client.get(response["Location"]).status_code == 200
    # An unknown code with a slash gets the same friendly 404 as without one.
    unknown = client.get("/p/SQAL_1_X_FG_LL_20260101_0001_0000000000000000/", follow=True)
    assert unknown.status_code == 404 and b"Traceback" not in unknown.content


@pytest.mark.integration
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_api_docs_load_in_chromium_with_no_request_leaving_the_site(live_server):
    requested: list[str] = []
    with chromium() as browser:
        page = browser.new_page()
        page.on("request", lambda r: requested.append(r.url))
        page.goto(f"{live_server.url}/api/docs")
        page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)
        operations = page.locator(".swagger-ui .opblock").count()
        title = page.locator(".swagger-ui .title").first.inner_text()
    assert operations >= 6
    assert "Gaveurs Trace API" in title
    outside = [u for u in requested if not u.startswith((live_server.url, "data:"))]
    assert outside == []
