"""The product class and lot pages on a phone, in headless Chromium: accessible, no sideways
scrolling, no CSP violation."""

from __future__ import annotations

import pytest

from gaveurs.models import Site
from tests.factories import make_lot, make_sample
from tests.support.browser import chromium
from traceability.services import product_register

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

PHONE = {"width": 360, "height": 740}
GTIN14 = "04006381333931"


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def phone(browser):
    context = browser.new_context(
        viewport=PHONE, locale="fr-FR", device_scale_factor=2, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def test_the_class_and_lot_pages_are_accessible_on_a_phone(live_server, phone, settings):
    from axe_playwright_python.sync_playwright import Axe

    settings.PUBLIC_BASE_URL = live_server.url  # the resolver redirects to absolute URLs

    site = Site.objects.create(code="GS", name="Ferme GS1", region="Landes", gtin=GTIN14)
    lot = make_lot(site=site, code="GS2601001")
    sample = make_sample(lot=lot, site_code="GS")
    product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="GS")
    violations_seen: list[str] = []
    phone.on(
        "console",
        lambda m: violations_seen.append(m.text) if "Content Security" in m.text else None,
    )
    axe = Axe()
    for path in (f"/01/{GTIN14}", f"/01/{GTIN14}/10/GS2601001"):
        phone.goto(live_server.url + path)  # follows the resolver's redirect
        assert "/produit/" in phone.url
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} scrolls sideways ({width}px wide)"
        serious = [
            (v["id"], v["help"])
            for v in axe.run(phone).response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert serious == [], path
    assert violations_seen == []
