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

from tests.factories import make_lot, make_sample
from tests.support.browser import chromium
from traceability.models import ConsumerProduct, LedgerHead
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
