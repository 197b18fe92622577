"""The content security policy of the public pages, and that those pages still work under it.

The policy (gaveurs/settings.py, CONTENT_SECURITY_POLICY) allows scripts and styles only from our
own static files. These tests check the header on every public page, that the rendered pages
carry nothing the policy would block (inline style or script, event handler attributes), and, in
headless Chromium which enforces it, that the scan page, the review form, the 404 page and the
label sheet report no violation while the in-browser ledger check still runs.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.core.cache import cache
from django.test import Client

from tests.factories import make_product, make_sample, make_staff
from tests.support.browser import chromium

POLICY = {
    "default-src 'self'",
    "img-src 'self' data:",
    "style-src 'self'",
    "script-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
}
RATINGS = {
    "overall_rating": "5",
    "taste_rating": "4",
    "texture_rating": "4",
    "appearance_rating": "5",
    "value_rating": "3",
}


def directives(response) -> set[str]:
    return {d.strip() for d in response["Content-Security-Policy"].split(";")}


class InlineFinder(HTMLParser):
    """Everything in a page that a policy without 'unsafe-inline' blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "style":
            self.blocked.append("<style>")
        if tag == "script" and "src" not in attrs and attrs.get("type") != "application/json":
            self.blocked.append("inline <script>")
        for name, value in attrs.items():
            if name == "style":
                self.blocked.append(f"<{tag} style={value!r}>")
            if name.startswith("on"):
                self.blocked.append(f"<{tag} {name}={value!r}>")
            if name in ("href", "src", "action") and (value or "").startswith("javascript:"):
                self.blocked.append(f"<{tag} {name}={value!r}>")


def inline_content(html: str) -> list[str]:
    finder = InlineFinder()
    finder.feed(html)
    return finder.blocked


@pytest.fixture
def staff_client(db) -> Client:
    user = make_staff("csp-staff", "sensors.view_sensorsample", "traceability.view_consumerproduct")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db
def test_every_public_page_carries_the_policy_and_nothing_it_would_block(client, staff_client):
    product = make_product()
    make_sample(distance_matrix=[[400.0 + i + j for j in range(8)] for i in range(8)])
    forged = product.qr_code[:-1] + ("0" if product.qr_code[-1] != "0" else "1")
    pages = {
        "scan page": client.get(f"/p/{product.qr_code}"),
        "scan page (English)": client.get(
            f"/p/{product.qr_code}", headers={"accept-language": "en"}
        ),
        "forged code": client.get(f"/p/{forged}"),
        "unknown code": client.get("/p/SQAL_unknown"),
        "review refused": client.post(f"/p/{product.qr_code}/avis", {"comment": "x"}),
        "review thanks": client.post(
            f"/p/{product.qr_code}/avis", {**RATINGS, "comment": "Très bon"}
        ),
        "404": client.get("/nothing/here"),
        "label sheet": staff_client.get(f"/staff/products/labels/?ids={product.pk}"),
        "live dashboard": staff_client.get("/sqal/live/"),
        "ledger heads": client.get("/ledger/heads.json"),
    }

    for name, response in pages.items():
        assert response.status_code < 500, name
        assert directives(response) == POLICY, name
        if response["Content-Type"].startswith("text/html"):
            assert inline_content(response.content.decode()) == [], name
    assert pages["review thanks"].status_code == 200
    assert pages["404"].status_code == 404
    assert b"data-print" in pages["label sheet"].content
    assert b"<svg" in pages["live dashboard"].content  # a station card with its pictures


def test_the_inline_finder_sees_what_the_policy_blocks():
    html = (
        '<style>p{}</style><p style="color:red">x</p><button onclick="go()">b</button>'
        '<script>alert(1)</script><a href="javascript:alert(1)">a</a>'
        '<script type="application/json">{}</script><script src="/static/x.js"></script>'
    )
    assert len(inline_content(html)) == 5


@pytest.mark.django_db
def test_the_staff_pages_that_need_it_are_left_out_of_the_policy(staff_client):
    for url in ["/admin/", "/api/docs"]:
        response = staff_client.get(url)
        assert response.status_code == 200, url
        assert "Content-Security-Policy" not in response, url


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


# Listens for violations from the very first byte of every page (the event fires on the document).
WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


@pytest.mark.integration
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_scan_flow_runs_in_chromium_under_the_policy_without_a_violation(
    live_server, browser, settings
):
    settings.LEDGER_HEAD_INTERVAL_SECONDS = 0  # sign a head at once: the check can run
    product = make_product()
    user = make_staff("csp-b", "sensors.view_sensorsample", "traceability.view_consumerproduct")
    staff = Client()
    staff.force_login(user)

    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="fr-FR")
    context.add_cookies(
        [{"name": "sessionid", "value": staff.cookies["sessionid"].value, "url": live_server.url}]
    )
    context.add_init_script(WATCH)
    page = context.new_page()
    page.set_default_timeout(10_000)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    violations: list[str] = []

    def visit(url: str) -> None:
        response = page.goto(url)
        assert "script-src 'self'" in response.headers["content-security-policy"], url
        violations.extend(page.evaluate("window.__cspViolations"))

    try:
        visit(f"{live_server.url}/p/{product.qr_code}")
        # Our stylesheet applied (a blocked one would leave the header unstyled)...
        header = page.locator("header.site")
        assert header.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(91, 42, 0)"
        # ... and our script ran: the in-browser ledger check reached its verdict.
        result = page.locator("[data-testid=ledger-result]")
        page.wait_for_selector("[data-testid=ledger-result][data-state=verified]")
        assert "Vérifié par votre navigateur" in result.inner_text()
        violations.extend(page.evaluate("window.__cspViolations"))

        for name, stars in [
            ("overall_rating", 5),
            ("taste_rating", 4),
            ("texture_rating", 4),
            ("appearance_rating", 5),
            ("value_rating", 3),
        ]:
            page.locator(f"label[for=id_{name}_{stars}]").click()
        page.locator("#id_comment").fill("Excellent")
        page.locator("form button[type=submit]").last.click()
        page.wait_for_selector("[data-testid=comment]")
        violations.extend(page.evaluate("window.__cspViolations"))

        # The live dashboard: its stylesheet applied and its script ran (the status left
        # "connecting…": this test server has no websocket, so it says it is retrying).
        visit(f"{live_server.url}/sqal/live/")
        assert page.locator(".sqal-counts").evaluate("e => getComputedStyle(e).display") == "flex"
        page.wait_for_function(
            "() => document.getElementById('sqal-status').textContent !== 'connecting…'"
        )
        violations.extend(page.evaluate("window.__cspViolations"))

        visit(f"{live_server.url}/nothing/here")
        visit(f"{live_server.url}/staff/products/labels/?ids={product.pk}")
        assert page.locator(".sheet .label").count() == 1
        assert page.locator(".toolbar").evaluate("e => getComputedStyle(e).display") != "none"
    finally:
        context.close()

    assert violations == []
    assert [m for m in console if "Content Security Policy" in m] == []
