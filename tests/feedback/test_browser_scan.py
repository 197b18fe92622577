"""A consumer on a phone, in headless Chromium against a live server: read, review, come back."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.cache import cache

from feedback.models import ConsumerFeedback
from tests.factories import make_product
from tests.support.browser import chromium

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

PHONE = {"width": 360, "height": 740}
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def phone(browser, request):
    locale = getattr(request, "param", "fr-FR")
    context = browser.new_context(
        viewport=PHONE, locale=locale, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()


def _rate_and_send(page, comment: str) -> None:
    for name, stars in [
        ("overall_rating", 5),
        ("taste_rating", 4),
        ("texture_rating", 4),
        ("appearance_rating", 5),
        ("value_rating", 3),
    ]:
        page.locator(f"label[for=id_{name}_{stars}]").click()
    page.locator("#id_comment").fill(comment)
    page.locator("form button[type=submit]").last.click()


def _assert_fits_the_screen(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways ({width}px wide)"


def test_a_phone_user_reads_the_lot_and_grade_reviews_and_then_sees_already_reviewed(
    live_server, phone
):
    product = make_product(fusion_grade="A", fusion_score=0.8)
    url = f"{live_server.url}/p/{product.qr_code}"

    phone.goto(url)

    assert phone.locator("html").get_attribute("lang") == "fr"
    assert phone.get_by_test_id("lot").inner_text() == product.lot_code
    assert phone.get_by_test_id("grade").inner_text() == "A"
    assert phone.get_by_text("Jean Martin").is_visible()
    assert phone.get_by_text("14 jours").is_visible()
    assert not phone.locator("#id_consent_to_publish").is_checked()
    _assert_fits_the_screen(phone)
    ARTIFACTS.mkdir(exist_ok=True)
    phone.screenshot(path=str(ARTIFACTS / "scan-page-fr.png"), full_page=True)

    _rate_and_send(phone, "Très bon, <b>fondant</b>")

    thanks = phone.get_by_test_id("thanks")
    assert thanks.inner_text() == (
        "Merci pour votre retour ! Il nous aidera à améliorer nos produits."
    )
    assert phone.get_by_test_id("reward").inner_text() == "Vous gagnez 10 points de fidélité."
    assert phone.get_by_test_id("comment").inner_text() == "Très bon, <b>fondant</b>"
    phone.screenshot(path=str(ARTIFACTS / "scan-thanks-fr.png"), full_page=True)
    stored = ConsumerFeedback.objects.get(product=product)
    assert (stored.overall_rating, stored.taste_rating, stored.value_rating) == (5, 4, 3)
    assert stored.consent_to_publish is False

    phone.goto(url)

    assert phone.get_by_test_id("already-reviewed").is_visible()
    assert phone.locator("#id_overall_rating_5").count() == 0
    phone.screenshot(path=str(ARTIFACTS / "scan-reviewed-fr.png"), full_page=True)


@pytest.mark.parametrize("phone", ["en-GB"], indirect=True)
def test_the_same_visit_in_english_from_the_browser_language(live_server, phone):
    product = make_product()
    url = f"{live_server.url}/p/{product.qr_code}"

    phone.goto(url)

    assert phone.locator("html").get_attribute("lang") == "en"
    assert phone.get_by_role("heading", name="Origin", exact=True).is_visible()
    assert phone.get_by_test_id("lot").inner_text() == product.lot_code
    assert phone.get_by_test_id("grade").inner_text() == "A+"
    assert phone.get_by_text("14 days").is_visible()
    _assert_fits_the_screen(phone)
    phone.screenshot(path=str(ARTIFACTS / "scan-page-en.png"), full_page=True)

    _rate_and_send(phone, "Lovely")

    assert phone.get_by_test_id("thanks").inner_text() == (
        "Thank you for your feedback! It will help us improve our products."
    )
    assert phone.get_by_test_id("reward").inner_text() == "You earn 10 loyalty points."

    phone.goto(url)

    assert "already been reviewed" in phone.get_by_test_id("already-reviewed").inner_text()


def test_the_language_switch_turns_the_page_into_english_and_back(live_server, phone):
    product = make_product()
    phone.goto(f"{live_server.url}/p/{product.qr_code}")

    phone.get_by_role("button", name="English").click()

    assert phone.locator("html").get_attribute("lang") == "en"
    assert phone.url.endswith(f"/p/{product.qr_code}")
    assert phone.get_by_role("heading", name="Origin", exact=True).is_visible()

    phone.get_by_role("button", name="Français").click()

    assert phone.get_by_role("heading", name="Origine", exact=True).is_visible()


def test_a_form_sent_without_ratings_names_the_missing_ratings_and_keeps_the_comment(
    live_server, phone
):
    product = make_product()
    phone.goto(f"{live_server.url}/p/{product.qr_code}")
    phone.locator("label[for=id_overall_rating_4]").click()
    phone.locator("#id_comment").fill("gardé")

    phone.locator("form button[type=submit]").last.click()

    errors = phone.locator("#form-errors").inner_text()
    assert "Goût" in errors and "Texture" in errors and "Note globale" not in errors
    assert phone.locator("#id_overall_rating_4").is_checked()
    assert phone.locator("#id_comment").input_value() == "gardé"
    assert not ConsumerFeedback.objects.exists()


def test_the_scan_page_and_the_warning_page_have_no_serious_accessibility_violation(
    live_server, phone
):
    from axe_playwright_python.sync_playwright import Axe

    product = make_product()
    axe = Axe()
    for url in [
        f"{live_server.url}/p/{product.qr_code}",
        f"{live_server.url}/p/{product.qr_code[:-1]}{'0' if product.qr_code[-1] != '0' else '1'}",
        f"{live_server.url}/p/unknown",
    ]:
        phone.goto(url)
        violations = axe.run(phone).response["violations"]
        serious = [
            (v["id"], v["help"], [n["target"] for n in v["nodes"]])
            for v in violations
            if v["impact"] in ("serious", "critical")
        ]
        assert serious == [], url


@pytest.mark.parametrize("phone", ["en-GB"], indirect=True)
def test_a_page_stored_ahead_of_its_first_scan_verifies_in_the_browser_after_the_log_grew(
    live_server, phone
):
    from feedback.models import ScanPage
    from feedback.tasks import scan_pages_render_leaves
    from traceability.ledger import latest_head, ledger_sign_head

    products = [make_product() for _ in range(3)]
    ledger_sign_head(force=True)
    scan_pages_render_leaves(0, latest_head().tree_size)  # what a head signing enqueues
    for _ in range(2):
        make_product()
    ledger_sign_head(force=True)  # the log grew: the stored proof is against an older head
    cache.clear()
    target = products[1]
    assert ScanPage.objects.filter(product=target, language="en").exists()

    phone.goto(f"{live_server.url}/p/{target.qr_code}")
    phone.wait_for_selector("[data-testid=ledger-result]:not([data-state=checking])")

    result = phone.locator("[data-testid=ledger-result]")
    assert result.get_attribute("data-state") == "verified", result.inner_text()
    assert phone.locator("#integrity-banner").get_attribute("data-state") == "verified"
    assert "Average rating" not in phone.content()
    _rate_and_send(phone, "Stored page, sent review")
    assert ConsumerFeedback.objects.filter(product=target).exists()
