"""What a consumer sees of a recall: the scan page's banner (before everything, French and
English), the instructions instead of the review form, the scan API's ``recall`` object, and
the cached page following a declaration or closing with no extra round trip."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone

from feedback.models import ConsumerFeedback
from tests.factories import RATINGS, make_lot, make_product
from traceability.recalls import recall_close, recall_declare

pytestmark = pytest.mark.django_db


def declare(lot, **kw):
    return recall_declare(
        **{
            "kind": "recall",
            "reference": "RC-2026-007",
            "reason": "Présence de Listeria",
            "instructions_fr": "Ne consommez pas ce produit et rapportez-le au magasin.",
            "instructions_en": "Do not eat this product; take it back to the shop.",
            "starts_at": timezone.now() - timedelta(minutes=1),
            "scope": "lots",
            "lot_ids": [lot.pk],
            **kw,
        }
    )


def page(client, product, language="fr"):
    return client.get(f"/p/{product.qr_code}", headers={"accept-language": language})


def test_the_banner_comes_first_and_the_form_gives_way_to_the_instructions(client):
    lot = make_lot()
    unit = make_product(lot)
    declare(lot)

    html = page(client, unit).content.decode()

    content = html[html.index("<main") :]
    assert content.index('data-testid="recall-banner"') < content.index("integrity-banner")
    assert 'data-status="active"' in html
    assert "Rappel de produit : ne consommez pas ce produit" in html
    assert "Ne consommez pas ce produit et rapportez-le au magasin." in html
    assert 'data-testid="recall-instructions"' in html
    assert 'name="overall_rating"' not in html
    assert 'id="recall-proof"' in html


def test_the_banner_is_in_english_with_the_english_instructions(client):
    lot = make_lot()
    unit = make_product(lot)
    declare(lot, kind="withdrawal")

    html = page(client, unit, "en").content.decode()

    assert "Withdrawn from sale" in html
    assert "Do not eat this product; take it back to the shop." in html
    # The French text is only in the sealed record the browser verifies, not on show.
    shown = re.sub(r'<script id="recall-proof".*?</script>', "", html, flags=re.S)
    assert "rapportez-le" not in shown


def test_a_unit_of_another_lot_is_unchanged(client):
    lot = make_lot()
    declare(lot)
    other = make_product(make_lot())

    html = page(client, other).content.decode()

    assert "recall-banner" not in html
    assert 'name="overall_rating"' in html
    assert client.get(f"/api/consumer/scan/{other.qr_code}").json()["recall"] is None


def test_the_scan_api_gains_the_recall_object(client):
    lot = make_lot()
    unit = make_product(lot)
    recall = declare(lot)

    body = client.get(
        f"/api/consumer/scan/{unit.qr_code}", headers={"accept-language": "en"}
    ).json()

    got = body["recall"]
    assert got["status"] == "active" and got["kind"] == "recall"
    assert got["reference"] == "RC-2026-007" and got["reason"] == "Présence de Listeria"
    assert got["instructions"] == {
        "fr": recall.instructions_fr,
        "en": recall.instructions_en,
    }
    assert got["instructions_text"] == recall.instructions_en
    assert got["declared_at"].startswith(str(recall.declared_at.year))
    assert got["closed_at"] is None

    recall_close(recall=recall, reason="Analyses négatives")
    closed = client.get(f"/api/consumer/scan/{unit.qr_code}").json()["recall"]
    assert closed["status"] == "closed" and closed["closing_reason"] == "Analyses négatives"


def test_a_cached_page_shows_a_declaration_and_a_closing_at_once(client):
    lot = make_lot()
    unit = make_product(lot)
    assert "recall-banner" not in page(client, unit).content.decode()  # cached

    recall = declare(lot)
    assert 'data-status="active"' in page(client, unit).content.decode()

    recall_close(recall=recall, reason="Analyses négatives")
    html = page(client, unit).content.decode()
    assert 'data-status="closed"' in html
    assert "Rappel terminé" in html and "Analyses négatives" in html
    assert 'name="overall_rating"' in html  # reviews open again


@override_settings(LEDGER_HEAD_INTERVAL_SECONDS=0)
def test_a_cached_recalled_page_is_still_one_query(client, django_assert_num_queries):
    lot = make_lot()
    unit = make_product(lot)
    declare(lot)
    page(client, unit)

    with django_assert_num_queries(1):
        html = page(client, unit).content.decode()
    assert 'data-status="active"' in html


def test_a_review_of_a_unit_under_an_active_recall_is_refused(client):
    lot = make_lot()
    unit = make_product(lot)
    declare(lot)
    cache.clear()

    response = client.post(f"/p/{unit.qr_code}/avis", {**RATINGS, "comment": "bon"})

    assert response.status_code == 409
    assert not ConsumerFeedback.objects.exists()
