"""A recall end to end in headless Chromium, in French and in English.

Quality staff declare a recall for one lot in the admin (the preview counts its units), a
consumer opens an affected unit's scan page on a 360×740 phone screen: the banner is on the
first screen, the review form is gone, and the browser verifies the sealed recall notice
against the signed ledger. The scan API shows the recall, a unit of another lot is unchanged;
once staff close the recall the banner says so.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from tests.factories import make_lot, make_product, make_staff
from tests.support.browser import chromium
from traceability.models import Recall

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

VIEWPORT = {"width": 360, "height": 740}
RECALL_RESULT = "[data-testid=recall-ledger-result]"
RECALL_FINAL = f"{RECALL_RESULT}:not([data-state=checking])"
TEXTS = {
    "fr-FR": {
        "active": "Rappel de produit : ne consommez pas ce produit",
        "closed": "Rappel terminé",
        "instructions": "Ne consommez pas ce produit ; rapportez-le au magasin.",
        "verified": "Avis vérifié par votre navigateur",
    },
    "en-GB": {
        "active": "Product recall: do not eat this product",
        "closed": "Recall closed",
        "instructions": "Do not eat this product; take it back to the shop.",
        "verified": "Notice verified by your browser",
    },
}


@pytest.fixture(autouse=True)
def _ledger(settings):
    settings.LEDGER_HEAD_INTERVAL_SECONDS = 0
    cache.clear()
    yield
    cache.clear()


@pytest.mark.parametrize("locale", ["fr-FR", "en-GB"])
def test_a_recall_declared_in_the_admin_reaches_the_first_screen_and_can_be_closed(
    live_server, locale
):
    texts = TEXTS[locale]
    lot, other_lot = make_lot(), make_lot()
    units = [make_product(lot) for _ in range(3)]
    outsider = make_product(other_lot)
    staff = make_staff(
        "quality",
        "traceability.add_recall",
        "traceability.view_recall",
        "traceability.add_recallclosure",
    )
    client = Client()
    client.force_login(staff)
    session = client.cookies["sessionid"].value

    with chromium() as browser:
        admin = browser.new_context()
        admin.add_cookies([{"name": "sessionid", "value": session, "url": live_server.url}])
        staff_page = admin.new_page()
        staff_page.set_default_timeout(15_000)

        # 1. Declare: preview first, then confirm.
        staff_page.goto(f"{live_server.url}/admin/traceability/recall/add/")
        staff_page.check("input[name=kind][value=recall]")
        staff_page.fill("input[name=reference]", f"RC-{locale}")
        staff_page.fill("textarea[name=reason]", "Listeria monocytogenes")
        staff_page.fill("textarea[name=instructions_fr]", TEXTS["fr-FR"]["instructions"])
        staff_page.fill("textarea[name=instructions_en]", TEXTS["en-GB"]["instructions"])
        staff_page.check("input[name=scope][value=lots]")
        staff_page.select_option("select[name=lots]", str(lot.pk))
        staff_page.click("input[name=_preview]")
        assert staff_page.inner_text("[data-testid=recall-preview-units]") == "3"
        assert staff_page.locator("[data-testid=recall-preview-lot]").count() == 1
        assert lot.code in staff_page.inner_text("[data-testid=recall-preview]")
        staff_page.click("input[name=_confirm]")
        staff_page.wait_for_url("**/change/")
        recall_pk = int(staff_page.url.rstrip("/").split("/")[-2])

        # 2. The consumer's phone: banner on the first screen, no form, notice verified.
        phone = browser.new_context(viewport=VIEWPORT, locale=locale)
        page = phone.new_page()
        page.set_default_timeout(15_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{live_server.url}/p/{units[1].qr_code}")
        banner = page.locator("[data-testid=recall-banner]")
        assert banner.get_attribute("data-status") == "active"
        assert texts["active"] in banner.inner_text()
        box = banner.bounding_box()
        assert box is not None and box["y"] >= 0
        assert box["y"] + box["height"] <= VIEWPORT["height"], box
        assert page.locator("input[name=overall_rating]").count() == 0
        assert texts["instructions"] in page.inner_text("[data-testid=recall-instructions]")
        page.wait_for_selector(RECALL_FINAL)
        assert page.locator(RECALL_RESULT).get_attribute("data-state") == "verified"
        assert texts["verified"] in page.inner_text(RECALL_RESULT)

        # 3. The scan API: the recall for an affected unit, null for another lot's unit.
        api = phone.request
        body = api.get(f"{live_server.url}/api/consumer/scan/{units[1].qr_code}").json()
        assert body["recall"]["status"] == "active"
        assert body["recall"]["reference"] == f"RC-{locale}"
        assert body["recall"]["kind"] == "recall"
        other = api.get(f"{live_server.url}/api/consumer/scan/{outsider.qr_code}").json()
        assert other["recall"] is None
        page.goto(f"{live_server.url}/p/{outsider.qr_code}")
        assert page.locator("[data-testid=recall-banner]").count() == 0
        assert page.locator("input[name=overall_rating]").count() == 5  # five stars

        # 4. Staff close the recall; the banner then shows it closed (and still verified).
        staff_page.goto(f"{live_server.url}/admin/traceability/recall/{recall_pk}/close/")
        staff_page.fill("textarea[name=reason]", "Analyses complémentaires négatives")
        staff_page.click("#recall-close-form input[type=submit]")
        staff_page.wait_for_url("**/change/")
        page.goto(f"{live_server.url}/p/{units[1].qr_code}")
        banner = page.locator("[data-testid=recall-banner]")
        assert banner.get_attribute("data-status") == "closed"
        assert texts["closed"] in banner.inner_text()
        assert "Analyses complémentaires négatives" in banner.inner_text()
        page.wait_for_selector(RECALL_FINAL)
        assert page.locator(RECALL_RESULT).get_attribute("data-state") == "verified"
        closed = api.get(f"{live_server.url}/api/consumer/scan/{units[1].qr_code}").json()
        assert closed["recall"]["status"] == "closed"
        assert not errors, errors
        phone.close()
        admin.close()

    assert Recall.objects.get(pk=recall_pk).closure.reason.startswith("Analyses")
