"""The scan page's tamper-evidence block, verified by headless Chromium with WebCrypto.

The page embeds the record and its proof; static/traceability/ledger.js recomputes the leaf,
walks the audit path and checks the Ed25519 signature. After a raw SQL change of the product's
grade, or of a head's signature, the same page must report the failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from tests.factories import make_lot, make_sample
from tests.support.browser import chromium
from traceability.models import ConsumerProduct, LedgerHead, LedgerVerification
from traceability.services import product_register

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
RESULT = "[data-testid=ledger-result]"
FINAL = f"{RESULT}:not([data-state=checking])"


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="fr-FR")
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors


@pytest.fixture(autouse=True)
def _ledger(settings):
    settings.LEDGER_HEAD_INTERVAL_SECONDS = 0
    cache.clear()
    yield
    cache.clear()


def _products(n: int) -> list[ConsumerProduct]:
    lot = make_lot()
    ids = [
        product_register(
            lot_id=lot.id, sample_id=make_sample(lot=lot).sample_id, site_code="LL"
        ).product_id
        for _ in range(n)
    ]
    return [ConsumerProduct.objects.get(product_id=i) for i in ids]


def _result(page, url: str) -> tuple[str, str]:
    page.goto(url)
    page.wait_for_selector(FINAL)
    result = page.locator(RESULT)
    return result.get_attribute("data-state"), result.inner_text()


def test_the_scan_page_verifies_the_proof_then_reports_a_tampered_grade(live_server, page):
    products = _products(5)
    target = products[2]
    url = f"{live_server.url}/p/{target.qr_code}"

    state, text = _result(page, url)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#ledger-block").screenshot(path=str(ARTIFACTS / "ledger_block_verified.png"))

    assert (state, "Vérifié par votre navigateur" in text) == ("verified", True), text
    block = page.locator("#ledger-block").inner_text()
    assert "entrée n° 3 sur 5" in block
    assert "n’a pas été modifié depuis qu’il a été scellé" in block
    assert "Cela ne prouve pas que son contenu était exact" in block

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE consumer_products SET sqal_fusion_grade = 'C' WHERE id = %s", [target.pk]
        )
    state, text = _result(page, url)
    page.locator("#ledger-block").screenshot(path=str(ARTIFACTS / "ledger_block_tampered.png"))

    assert state == "failed"
    assert "a été modifié depuis qu’il a été scellé" in text


def test_the_scan_page_rejects_a_forged_head_signature(live_server, page):
    products = _products(3)
    head = LedgerHead.objects.get(tree_size=3)
    forged = bytearray(bytes(head.signature))
    forged[10] ^= 0x40
    LedgerHead.objects.filter(tree_size=3).update(signature=bytes(forged))

    state, text = _result(page, f"{live_server.url}/p/{products[0].qr_code}")

    assert state == "failed"
    assert "signature du registre n’est pas valide" in text


BANNER = "[data-testid=integrity-banner]"


def _first_screen(page, url: str) -> dict:
    page.goto(url)
    page.wait_for_selector(f"{BANNER}:not([data-state=checking])")
    box = page.locator(BANNER).bounding_box()
    badge = page.locator("[data-testid=grade]")
    return {
        "state": page.locator(BANNER).get_attribute("data-state"),
        "text": page.locator(BANNER).inner_text(),
        "inside": box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 740,
        "above_grade": box is not None and box["y"] < badge.bounding_box()["y"],
        "badge": badge.get_attribute("data-verified"),
        "note_visible": page.locator("[data-testid=grade-unverified]").is_visible(),
    }


@pytest.mark.parametrize(
    ("locale", "verified", "warning"),
    [
        ("fr-FR", "Intégrité vérifiée", "modifié après avoir été scellé"),
        ("en-GB", "Integrity verified", "changed after it was sealed"),
    ],
)
def test_a_tampered_grade_is_flagged_on_the_first_phone_screen_above_the_grade(
    live_server, browser, locale, verified, warning
):
    (product,) = _products(1)
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale=locale)
    page = context.new_page()
    page.set_default_timeout(10_000)
    url = f"{live_server.url}/p/{product.qr_code}"
    try:
        honest = _first_screen(page, url)
        assert (honest["state"], honest["badge"], honest["note_visible"]) == (
            "verified",
            "yes",
            False,
        )
        assert verified in honest["text"] and honest["inside"]

        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE consumer_products SET sqal_fusion_grade = "
                "CASE sqal_fusion_grade WHEN 'A+' THEN 'C' ELSE 'A+' END WHERE id = %s",
                [product.pk],
            )
        forged = _first_screen(page, url)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"scan_tampered_first_screen_{locale}.png"))
        assert forged["state"] == "failed" and warning in forged["text"]
        assert forged["inside"] and forged["above_grade"]
        assert (forged["badge"], forged["note_visible"]) == ("no", True)
    finally:
        context.close()


def test_without_javascript_the_server_says_a_record_was_altered(live_server, browser, client):
    honest, named = _products(2)
    page = client.get(f"/p/{honest.qr_code}").content.decode()
    assert 'data-state="checking"' in page and "<noscript>" in page

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE consumer_products SET sqal_fusion_grade = "
            "CASE sqal_fusion_grade WHEN 'A+' THEN 'C' ELSE 'A+' END WHERE id = %s",
            [honest.pk],
        )
    page = client.get(f"/p/{honest.qr_code}").content.decode()
    assert 'data-state="failed"' in page and 'data-verified="no"' in page
    assert "modifié après avoir été scellé" in page

    # A finding of the last verify_ledger run (e.g. its leaf altered too) reaches the page.
    now = timezone.now()
    LedgerVerification.objects.create(
        started_at=now,
        finished_at=now,
        ok=False,
        tree_size=2,
        findings=[{"kind": "record_changed", "detail": "x", "product_id": named.product_id}],
    )
    cache.clear()
    page = client.get(f"/p/{named.qr_code}").content.decode()
    assert 'data-state="failed"' in page and 'data-verified="no"' in page
    context = browser.new_context(
        viewport={"width": 360, "height": 740}, locale="fr-FR", java_script_enabled=False
    )
    nojs = context.new_page()
    nojs.goto(f"{live_server.url}/p/{named.qr_code}")
    assert "modifié après avoir été scellé" in nojs.locator(BANNER).inner_text()
    context.close()
