"""The public scan page /p/<qr_code>: what a consumer sees, what staff learn from scans."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone

from feedback.models import ScanPage
from tests.factories import forged, make_lot, make_product, review
from traceability.ledger import ledger_sign_head
from traceability.models import ForgedScanAttempt, ProductScanStats, ScanAlert, ScanEvent
from traceability.scans import daily_salt

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()


def page(client, code, **headers):
    return client.get(f"/p/{code}", headers=headers)


def test_it_shows_the_product_grade_and_origin_in_french_by_default(client):
    product = make_product(fusion_grade="A", fusion_score=0.8)

    response = page(client, product.qr_code)

    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="fr">' in html
    assert product.product_id in html
    assert 'data-testid="grade">A</span>' in html
    assert "Excellente qualité" in html
    assert "Jean Martin" in html
    assert f'data-testid="lot">{product.lot_code}</dd>' in html
    assert "14 jours" in html
    assert "Début du gavage" in html and "Fin du gavage" in html


def test_it_describes_the_sqal_quality_in_words_and_pictures_not_raw_numbers(client):
    product = make_product(
        fusion_score=0.87, tof_surface_uniformity=0.62, spectral_freshness_index=0.5
    )

    full = page(client, product.qr_code).content.decode()
    html = full.split('id="quality-title"')[1].split("</section>")[0]

    assert "Score global" in html and "Excellent" in html
    assert 'aria-label="Régularité de la surface : Bon, 3/5"' in html
    assert 'aria-label="Fraîcheur (analyse spectrale) : Correct, 2/5"' in html
    assert "environ 125 cm³" in html
    assert "Conforme aux exigences" in html
    assert html.count("<svg") == 3
    assert "0.87" not in html and "0.62" not in html


def test_it_speaks_english_to_an_english_browser(client):
    product = make_product()

    html = page(client, product.qr_code, accept_language="en-US,en;q=0.8").content.decode()

    assert '<html lang="en">' in html
    assert "Origin</h2>" in html
    assert "Feeding start" in html
    assert "Send my review" in html


def test_the_language_switch_keeps_the_consumer_on_the_product(client):
    product = make_product()

    response = client.post("/i18n/setlang/", {"language": "en", "next": f"/p/{product.qr_code}"})

    assert response.status_code == 302
    assert response["Location"] == f"/p/{product.qr_code}"
    assert "Measured quality" in page(client, product.qr_code).content.decode()


def test_the_feedback_form_has_five_star_ratings_an_unticked_consent_and_a_honeypot(client):
    product = make_product()

    html = page(client, product.qr_code).content.decode()

    for name in ["overall", "taste", "texture", "appearance", "value"]:
        for stars in range(1, 6):
            assert f'id="id_{name}_rating_{stars}" value="{stars}"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'type="checkbox" id="id_consent_to_publish" name="consent_to_publish" value="on">' in (
        html
    )
    assert 'name="website" tabindex="-1"' in html
    assert "<script" not in html.split('id="reviews-title"')[1]


def test_a_reviewed_unit_says_already_reviewed_instead_of_the_form(client):
    product = make_product()
    review(product)

    html = page(client, product.qr_code).content.decode()

    assert "Ce produit a déjà été évalué" in html
    assert 'name="overall_rating"' not in html


def test_the_lot_average_appears_only_beyond_five_visible_reviews(client):
    lot = make_lot()
    products = [make_product(lot=lot) for _ in range(7)]
    for p in products[:5]:
        review(p, overall_rating=4)

    assert "Note moyenne" not in page(client, products[6].qr_code).content.decode()

    review(products[5], overall_rating=5)

    html = page(client, products[6].qr_code).content.decode()
    assert "Note moyenne des produits de ce lot : 4,2/5 (6 avis)" in html


# Steady state of the ledger: a signed head covers the products (heads are signed at most once
# per LEDGER_HEAD_INTERVAL_SECONDS; 0 lets the first scan sign it).
@override_settings(LEDGER_HEAD_INTERVAL_SECONDS=0)
def test_the_page_costs_at_most_three_queries_and_one_once_rendered(
    client, django_assert_max_num_queries, django_assert_num_queries
):
    lot = make_lot()
    products = [make_product(lot=lot) for _ in range(7)]
    for p in products[:6]:
        review(p)
    page(client, products[6].qr_code)  # first scan: counter row, signed head
    cache.clear()  # no cached page nor ledger proof
    daily_salt(timezone.now().date().isoformat())  # the client-hash salt: read once a day

    with django_assert_max_num_queries(3):
        response = page(client, products[6].qr_code)
    assert "Note moyenne" in response.content.decode()

    with django_assert_num_queries(1):
        again = page(client, products[6].qr_code)
    assert again.content.decode().split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    assert "Note moyenne" in again.content.decode()

    with django_assert_max_num_queries(3):
        response = page(client, products[0].qr_code)
    assert "déjà été évalué" in response.content.decode()


def test_a_reviewed_unit_shows_the_lot_average_of_the_latest_reviews_from_its_cached_page(
    client, django_assert_num_queries
):
    """Reviews of other units of the lot change the average a reviewed unit's page shows at
    once, and its page is not rendered again for them: one query per scan."""
    lot = make_lot()
    products = [make_product(lot=lot) for _ in range(8)]
    for p in products[:6]:
        review(p, overall_rating=3)
    page(client, products[0].qr_code)  # rendered and cached
    review(products[6], overall_rating=5)

    with django_assert_num_queries(1):
        html = page(client, products[0].qr_code).content.decode()
    assert "Note moyenne des produits de ce lot : 3,3/5 (7 avis)" in html
    assert "déjà été évalué" in html

    review(products[7], overall_rating=5)
    with django_assert_num_queries(1):
        html = page(client, products[0].qr_code).content.decode()
    assert "Note moyenne des produits de ce lot : 3,5/5 (8 avis)" in html
    assert "3,3/5" not in html


@override_settings(LEDGER_HEAD_INTERVAL_SECONDS=3600)
def test_a_unit_not_yet_sealed_is_rendered_once_then_served_in_one_query(
    client, django_assert_max_num_queries, django_assert_num_queries
):
    make_product()
    ledger_sign_head(force=True)
    product = make_product()  # no signed head covers it, none is due: its page is not stored
    with django_assert_max_num_queries(8):
        first = page(client, product.qr_code).content.decode()
    assert 'name="overall_rating"' in first
    assert not ScanPage.objects.filter(product=product).exists()

    with django_assert_num_queries(1):
        again = page(client, product.qr_code).content.decode()
    assert 'name="overall_rating"' in again


def test_a_cached_page_changes_as_soon_as_the_unit_is_reviewed(client):
    product = make_product()
    assert 'name="overall_rating"' in page(client, product.qr_code).content.decode()

    review(product)

    html = page(client, product.qr_code).content.decode()
    assert "déjà été évalué" in html
    assert 'name="overall_rating"' not in html


def test_each_visitor_of_a_cached_page_gets_a_working_csrf_token_of_their_own():
    from django.test import Client

    product = make_product()
    first, second = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    first.get(f"/p/{product.qr_code}")
    html = second.get(f"/p/{product.qr_code}").content.decode()  # served from the cache
    token = html.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]

    response = second.post(
        f"/p/{product.qr_code}/avis",
        {
            "csrfmiddlewaretoken": token,
            "overall_rating": 5,
            "taste_rating": 5,
            "texture_rating": 5,
            "appearance_rating": 5,
            "value_rating": 5,
        },
    )

    assert response.status_code == 200
    assert "Merci pour votre retour" in response.content.decode()


def test_an_unknown_code_gets_a_friendly_404(client):
    make_product()

    response = page(client, "nothing-like-a-code")

    assert response.status_code == 404
    assert "Produit introuvable" in response.content.decode()
    assert not ForgedScanAttempt.objects.exists()
    assert not ScanEvent.objects.exists()


def test_a_code_that_is_well_formed_but_unregistered_is_unknown_not_forged(client):
    from traceability.services import qr_signature

    product = make_product()
    product_id = product.product_id[:-1] + "9"
    signature = qr_signature(lot_id=product.lot_id, sample_id="X_1", product_id=product_id)
    code = f"SQAL_{product.lot_id}_X_1_{product_id}_{signature}"

    response = page(client, code)

    assert response.status_code == 404
    assert "Produit introuvable" in response.content.decode()
    assert not ForgedScanAttempt.objects.exists()
    assert not ScanEvent.objects.exists()


def test_a_forged_code_gets_a_warning_page_404_and_is_logged_for_staff(client):
    product = make_product()
    code = forged(product.qr_code)

    response = page(client, code, cf_ipcountry="BE")

    assert response.status_code == 404
    html = response.content.decode()
    assert "ce code n'est pas authentique" in html
    assert product.lot_code not in html
    attempt = ForgedScanAttempt.objects.get()
    assert (attempt.code, attempt.claimed_product_id) == (code, product.product_id)
    assert (attempt.channel, attempt.country) == ("page", "BE")
    assert not ScanEvent.objects.exists()


def test_forged_attempts_are_logged_only_a_few_times_per_client_and_minute(client):
    product = make_product()

    with override_settings(FORGED_SCAN_LOG_PER_MINUTE=2):
        statuses = {page(client, forged(product.qr_code)).status_code for _ in range(4)}

    assert statuses == {404}
    assert ForgedScanAttempt.objects.count() == 2


def test_each_scan_is_counted_with_a_coarse_place_and_never_the_address(client):
    product = make_product()

    page(client, product.qr_code, cf_ipcountry="de", accept_language="fr-FR")
    page(client, product.qr_code, accept_language="fr-CA,fr;q=0.9")
    page(client, product.qr_code, accept_language="fr")

    stats = ProductScanStats.objects.get(product=product)
    assert stats.scan_count == 3
    events = list(ScanEvent.objects.order_by("id"))
    assert [(e.country, e.place_source) for e in events] == [
        ("DE", "cdn"),
        ("CA", "language"),
        ("", ""),
    ]
    assert all(len(e.client_hash) == 16 and "127" not in e.client_hash for e in events)
    stored = [str(v) for e in events for v in vars(e).values()]
    assert not any("127.0.0.1" in v for v in stored)


@override_settings(SCAN_ALERT_THRESHOLD=3)
def test_more_distinct_clients_than_the_threshold_raise_one_copied_label_alert(client):
    product = make_product()
    for n in range(3):
        client.get(f"/p/{product.qr_code}", REMOTE_ADDR=f"198.51.100.{n}")
    assert not ScanAlert.objects.exists()

    for n in range(3, 6):
        response = client.get(f"/p/{product.qr_code}", REMOTE_ADDR=f"198.51.100.{n}")
        assert response.status_code == 200

    alert = ScanAlert.objects.get()
    assert (alert.product_id, alert.threshold, alert.distinct_clients) == (product.id, 3, 4)
    assert alert.scan_count == 4 and not alert.is_resolved
    stats = ProductScanStats.objects.get(product=product)
    assert (stats.scan_count, stats.distinct_clients) == (6, 6)


@override_settings(SCAN_ALERT_THRESHOLD=3, SCAN_RECORD_PER_MINUTE=1000)
def test_one_client_scanning_a_genuine_code_many_times_raises_no_alert(client):
    product = make_product()
    for _ in range(55):
        assert page(client, product.qr_code).status_code == 200
    assert not ScanAlert.objects.exists()
    stats = ProductScanStats.objects.get(product=product)
    assert (stats.scan_count, stats.distinct_clients) == (55, 1)


@override_settings(SCAN_RECORD_PER_MINUTE=5)
def test_a_client_scanning_past_the_rate_gets_the_page_but_adds_no_rows(client):
    product = make_product()
    for _ in range(12):
        response = page(client, product.qr_code)
        assert response.status_code == 200
        assert product.product_id in response.content.decode()
    assert ScanEvent.objects.filter(product=product).count() == 5
    assert ProductScanStats.objects.get(product=product).scan_count == 5
    other = client.get(f"/p/{product.qr_code}", REMOTE_ADDR="203.0.113.50")
    assert other.status_code == 200
    assert ScanEvent.objects.filter(product=product).count() == 6  # another client still counts


def test_the_page_is_not_cached_by_the_browser_or_proxies(client):
    product = make_product()

    response = page(client, product.qr_code)

    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_an_unknown_address_gets_the_friendly_404_page(client):
    response = client.get("/nothing/here")

    assert response.status_code == 404
    assert "Page introuvable" in response.content.decode()


def test_a_record_changed_in_the_database_is_shown_at_once_not_from_the_cache(client):
    from django.db import connection

    product = make_product(fusion_grade="A")
    assert 'data-testid="grade">A</span>' in page(client, product.qr_code).content.decode()

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE consumer_products SET sqal_fusion_grade = 'C' WHERE id = %s", [product.pk]
        )

    assert 'data-testid="grade">C</span>' in page(client, product.qr_code).content.decode()
