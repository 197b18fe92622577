"""SQL injection and XSS attempts in the text fields of the web side: stored verbatim, inert, and
shown escaped (scan page, review form and thanks page, admin change and search pages).

The station side (sample and hello strings through a real websocket) is in
test_websocket_hostile.py.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.utils.html import escape

from feedback.models import ConsumerFeedback
from tests.factories import make_gaveur, make_lot, make_product
from traceability.models import ConsumerProduct

SQLI = "'; DROP TABLE consumer_products; --"
XSS_SCRIPT = "<script>alert(1)</script>"
XSS_ATTR = '"><img src=x onerror=alert(1)>'
PAYLOADS = [SQLI, XSS_SCRIPT, XSS_ATTR]
RATINGS = {
    "overall_rating": 4,
    "taste_rating": 4,
    "texture_rating": 3,
    "appearance_rating": 5,
    "value_rating": 4,
}

pytestmark = pytest.mark.django_db


def assert_inert(html: str) -> None:
    """No payload in a form a browser would run; the tables are all still there."""
    for payload in (XSS_SCRIPT, XSS_ATTR, "<img src=x", "onerror=alert(1)>"):
        assert payload not in html, payload
    assert "consumer_products" in connection.introspection.table_names()


@pytest.fixture
def staff_client() -> Client:
    user = get_user_model().objects.create_superuser("inj-admin", password="x-9-long-pass")
    client = Client()
    client.force_login(user)
    return client


def test_a_hostile_review_comment_is_stored_verbatim_and_shown_escaped(client, staff_client):
    products = [make_product(), make_product()]
    comment = " ".join(PAYLOADS)

    api = client.post(
        "/api/consumer/feedback",
        {"qr_code": products[0].qr_code, **RATINGS, "comment": comment},
        content_type="application/json",
    )
    page = client.post(
        f"/p/{products[1].qr_code}/avis",
        {**{k: str(v) for k, v in RATINGS.items()}, "comment": comment},
    )

    assert api.status_code == 201, api.content
    assert page.status_code == 200
    stored = list(ConsumerFeedback.objects.order_by("id").values_list("comment", flat=True))
    assert stored == [comment, comment]
    assert ConsumerProduct.objects.count() == 2
    html = page.content.decode()
    assert_inert(html)
    assert escape(comment) in html  # the thanks page shows it, escaped

    feedback = ConsumerFeedback.objects.first()
    change = staff_client.get(f"/admin/feedback/consumerfeedback/{feedback.pk}/change/")
    assert change.status_code == 200
    assert_inert(change.content.decode())
    assert escape(XSS_SCRIPT) in change.content.decode()


def test_hostile_producer_and_lot_names_are_shown_escaped_on_the_scan_page(client):
    gaveur = make_gaveur(first_name=XSS_SCRIPT, last_name=XSS_ATTR)
    lot = make_lot(gaveur=gaveur, site=gaveur.site)
    product = make_product(lot=lot)

    html = client.get(f"/p/{product.qr_code}").content.decode()

    assert_inert(html)
    assert escape(XSS_SCRIPT) in html and escape(XSS_ATTR) in html


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_hostile_qr_code_or_gs1_path_is_refused_and_never_echoed_as_html(client, payload):
    make_product()
    path = quote(payload, safe="")
    answers = {
        "scan page": client.get(f"/p/{path}"),
        "review form": client.post(f"/p/{path}/avis", {**RATINGS, "comment": payload}),
        "scan API": client.get(f"/api/consumer/scan/{path}"),
        "proof API": client.get(f"/api/ledger/proof/{path}"),
        "GS1 link": client.get(f"/01/{path}"),
        "GS1 link with lot": client.get(f"/01/03760000000001/10/{path}"),
        "feedback API": client.post(
            "/api/consumer/feedback",
            {"qr_code": payload, **RATINGS},
            content_type="application/json",
        ),
    }

    for name, response in answers.items():
        assert 400 <= response.status_code < 500, (name, response.status_code)
        if response["Content-Type"].startswith("text/html"):
            assert_inert(response.content.decode())
        else:  # JSON or plain text may name the code it refuses; never sniffed as a page
            kind = response["Content-Type"].split(";")[0]
            assert kind in ("application/json", "text/plain"), name
            assert response["X-Content-Type-Options"] == "nosniff"
    assert ConsumerProduct.objects.count() == 1
    assert not ConsumerFeedback.objects.exists()


def test_hostile_admin_searches_find_nothing_and_echo_the_term_escaped(staff_client):
    make_product()
    changelists = [
        "/admin/traceability/consumerproduct/",
        "/admin/feedback/consumerfeedback/",
        "/admin/traceability/forgedscanattempt/",
        "/admin/sensors/sensorsample/",
        "/admin/sensors/device/",
        "/admin/gaveurs/lot/",
        "/admin/gaveurs/gaveur/",
    ]

    for url in changelists:
        for payload in PAYLOADS:
            response = staff_client.get(url, {"q": payload})
            assert response.status_code == 200, (url, payload)
            html = response.content.decode()
            assert_inert(html)
            assert escape(payload) in html, (url, payload)  # "0 results for …" and the box
    assert ConsumerProduct.objects.count() == 1
