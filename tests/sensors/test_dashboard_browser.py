"""The live dashboard in headless Chromium: samples appear as they are committed."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from sensors.services import device_issue_token
from tests.factories import make_device
from tests.support.browser import chromium
from tests.support.stations import exchange, fixture_text, open_station

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


def send_samples(
    url: str, token: str, sample_ids: list[str], *, lot_id: int | None = None
) -> list[dict]:
    """Send samples from a station in another thread (Playwright owns this thread's loop)."""
    acks: list[dict] = []

    async def scenario():
        ws = await open_station(url, token)
        for sample_id in sample_ids:
            m = json.loads(fixture_text("sensor_data_flat.json"))
            m["sample_id"] = sample_id
            if lot_id is not None:
                m["lot_id"] = lot_id
            acks.append(await exchange(ws, m))
        await ws.close()

    thread = threading.Thread(target=lambda: asyncio.run(asyncio.wait_for(scenario(), 30)))
    thread.start()
    thread.join()
    return acks


@pytest.fixture
def staff_page(daphne, request):
    """(page, station token), the browser in English unless a test asks for another language
    (indirect parameter). All ORM work happens before Playwright starts its event loop."""
    locale = getattr(request, "param", "en-GB")
    token = device_issue_token(device=make_device())
    user = get_user_model().objects.create_user(
        "qualite", password="x-long-password-1", is_staff=True, is_superuser=True
    )
    client = Client()
    client.force_login(user)
    with chromium() as browser:
        context = browser.new_context(locale=locale)
        context.add_cookies(
            [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": daphne.http}]
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page, token


def test_staff_watch_samples_arrive_with_heatmap_spectrum_and_history(daphne, staff_page):
    page, token = staff_page
    page.goto(daphne.http + "/sqal/live/")
    # Predicates as functions, not expressions: the page's CSP forbids eval (Playwright evals a
    # string expression inside the page).
    page.wait_for_function(
        "() => document.getElementById('sqal-status').textContent.trim() === 'live'"
    )

    assert send_samples(daphne.url, token, ["LIVE_0001"])[0]["status"] == "saved"
    card = page.locator('.sqal-station[data-device="ESP32_LL_01"]')
    card.wait_for()
    assert card.get_attribute("data-sample") == "LIVE_0001"
    assert card.locator("svg.sqal-heatmap rect").count() == 64
    assert card.locator("svg.sqal-spectrum rect").count() == 10

    assert send_samples(daphne.url, token, ["LIVE_0002"])[0]["status"] == "saved"
    page.wait_for_function(
        "() => document.querySelector('.sqal-station[data-device=\"ESP32_LL_01\"]')"
        ".dataset.sample === 'LIVE_0002'"
    )
    assert "LIVE_0001" in card.locator(".sqal-recent").inner_text()
    assert page.locator('#sqal-counts [data-grade="A"] b').inner_text() == "2"
    # One open alert (no lot), which counts both samples.
    page.wait_for_function(
        '() => document.querySelector(\'.sqal-group-alert[data-rule="no_lot"] '
        ".sqal-occurrences')?.textContent === '2'"
    )
    assert page.locator("#sqal-alert-count").inner_text() == "1"
    assert "no_lot" in page.locator("#sqal-alerts").inner_text()


def test_staff_see_what_needs_them_grouped_by_station_and_resolve_it(daphne, staff_page):
    from sensors.models import QualityAlert

    page, token = staff_page
    send_samples(daphne.url, token, ["GROUP_0001", "GROUP_0002", "GROUP_0003"])  # no lot
    page.goto(daphne.http + "/sqal/live/")

    group = page.locator('.sqal-alert-group[data-device="ESP32_LL_01"]')
    row = group.locator('.sqal-group-alert[data-rule="no_lot"]')
    assert row.locator(".sqal-occurrences").inner_text() == "3"
    assert page.locator("#sqal-needs-count").inner_text() == "1"

    with page.expect_navigation():
        row.get_by_role("button", name="Resolve").click()
    page.locator("#sqal-needs").wait_for()
    assert page.locator('.sqal-group-alert[data-rule="no_lot"]').count() == 0
    # The page's own form, its CSRF token and the CSP were enough: the alert is resolved. (Read
    # here, Playwright's greenlet gets a database connection of its own: close it, or it holds
    # the test database open.)
    try:
        assert QualityAlert.objects.get(rule="no_lot").status == "resolved"
    finally:
        connection.close()


@pytest.fixture
def foreign_lot_id():
    from tests.factories import make_lot, make_site

    return make_lot(site=make_site(code="MG")).id


def test_what_needs_staff_updates_live_with_counts_and_refused_samples(
    daphne, foreign_lot_id, staff_page
):
    from sensors.models import QualityAlert

    page, token = staff_page
    page.goto(daphne.http + "/sqal/live/")
    page.wait_for_function(
        "() => document.getElementById('sqal-status').textContent.trim() === 'live'"
    )
    assert page.locator("#sqal-all-clear").count() == 1

    send_samples(daphne.url, token, ["NEEDS_0001", "NEEDS_0002"])  # no lot: counted in place
    row = page.locator('.sqal-group-alert[data-rule="no_lot"] .sqal-occurrences')
    page.wait_for_function(
        '() => (document.querySelector(\'.sqal-group-alert[data-rule="no_lot"] '
        ".sqal-occurrences') || {}).textContent === '2'"
    )
    assert row.inner_text() == "2"
    assert page.locator("#sqal-needs-count").inner_text() == "1"

    # A sample refused for a lot of another site is not stored, and still shows up, live.
    (ack,) = send_samples(daphne.url, token, ["NEEDS_0003"], lot_id=foreign_lot_id)
    assert (ack["type"], ack["code"], ack["rule"]) == ("error", "lot_not_allowed", "lot_site")
    refused = page.locator('.sqal-group-alert[data-rule="lot_not_allowed"]')
    refused.wait_for()
    assert refused.get_attribute("data-status") == "open"
    assert page.locator("#sqal-alert-count").inner_text() == "2"  # open alerts, not samples

    # Its buttons, rendered over the websocket, carry this page's CSRF token and work.
    with page.expect_navigation():
        refused.get_by_role("button", name="Resolve").click()
    page.locator("#sqal-needs").wait_for()
    assert page.locator('.sqal-group-alert[data-rule="lot_not_allowed"]').count() == 0
    try:
        assert QualityAlert.objects.get(rule="lot_not_allowed").status == "resolved"
    finally:
        connection.close()


@pytest.mark.parametrize("staff_page", ["fr-FR"], indirect=True)
def test_a_french_browser_gets_the_page_and_its_live_updates_in_french(daphne, staff_page):
    page, token = staff_page
    page.goto(daphne.http + "/sqal/live/")
    page.wait_for_function(
        "() => document.getElementById('sqal-status').textContent.trim() === 'en direct'"
    )
    assert page.locator("h1").inner_text().startswith("Contrôle qualité SQAL en direct")
    assert page.locator("#sqal-all-clear").inner_text() == "Rien à traiter : aucune alerte ouverte."

    send_samples(daphne.url, token, ["FR_0001", "FR_0002"])  # no lot: an alert, sent live
    group = page.locator('.sqal-alert-group[data-device="ESP32_LL_01"]')
    group.wait_for()
    page.wait_for_function(
        '() => (document.querySelector(\'.sqal-group-alert[data-rule="no_lot"] '
        ".sqal-occurrences') || {}).textContent === '2'"
    )
    assert group.locator(".sqal-group-total").inner_text() == "2 échantillons"
    assert group.get_by_role("button", name="Résoudre").count() == 1
    assert group.get_by_role("button", name="Acquitter").count() == 1
    card = page.locator('.sqal-station[data-device="ESP32_LL_01"]')
    assert "Canaux spectraux AS7341" in card.inner_text()
