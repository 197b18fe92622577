"""The consumer page stored ahead of its scans (feedback.pages): a unit's first scan reads it in
the scan's one round trip, it is the very page a scan renders, and it is never shown stale; a
server process keeps the pages it served and the statement does not send them again."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from feedback import pages, views
from feedback.models import ScanPage
from feedback.pages import CSRF_PLACEHOLDER, kept_pages
from feedback.tasks import scan_pages_render_leaves
from gaveurs.models import Site
from tests.factories import RATINGS, declare_lot_recall, make_lot, make_product, review
from tests.support.scan_pages import TOKEN, get, rendered_per_scan, without_token
from traceability.ledger import latest_head, ledger_sign_head
from traceability.models import LedgerLeaf, LedgerVerification, ProductScanStats
from traceability.recalls import recall_close
from traceability.scans import daily_salt
from traceability.signals import head_signed

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def sealed(*products):
    """Sign a head over the products and run the task a head signing enqueues."""
    head = ledger_sign_head(force=True) or latest_head()  # None: the first product signed one
    first = min(LedgerLeaf.objects.get(product=p).leaf_index for p in products)
    scan_pages_render_leaves(first, head.tree_size)
    cache.clear()  # no cached proof nor page: what a consumer's first scan meets
    daily_salt(timezone.now().date().isoformat())  # the client-hash salt: read once a day


@pytest.mark.parametrize("language", ["fr", "en"])
def test_a_first_scan_reads_the_stored_page_in_one_query_and_it_is_the_page_a_scan_renders(
    client, django_assert_num_queries, language
):
    product = make_product(fusion_grade="A")
    sealed(product)
    assert ScanPage.objects.filter(product=product).count() == 2  # French and English

    with django_assert_num_queries(1):
        response = get(client, product, language)

    html = response.content.decode()
    assert response.status_code == 200
    assert ProductScanStats.objects.get(product=product).scan_count == 1
    assert f'<html lang="{language}">' in html
    assert 'data-state="checking"' in html  # the browser verifies the embedded proof
    assert 'id="ledger-proof"' in html
    assert CSRF_PLACEHOLDER not in html
    assert without_token(html) == without_token(
        rendered_per_scan(product, language).replace(CSRF_PLACEHOLDER, "")
    )
    assert response["Cache-Control"].startswith("max-age=0, no-cache, no-store")


def test_each_visitor_gets_a_csrf_token_of_their_own_and_can_review(client):
    from django.test import Client

    product = make_product()
    sealed(product)
    first = Client(enforce_csrf_checks=True)
    second = Client(enforce_csrf_checks=True)
    tokens = []
    for visitor in (first, second):
        html = get(visitor, product).content.decode()
        tokens.append(TOKEN.search(html).group(0))
    assert tokens[0] != tokens[1]

    token = tokens[1].split('value="')[1].rstrip('"')
    answer = second.post(
        f"/p/{product.qr_code}/avis",
        {
            "overall_rating": 5,
            "taste_rating": 5,
            "texture_rating": 4,
            "appearance_rating": 4,
            "value_rating": 3,
            "csrfmiddlewaretoken": token,
        },
    )
    assert answer.status_code == 200
    assert "déjà été évalué" in get(second, product).content.decode()


def test_the_lot_average_is_current_on_a_stored_page(client, django_assert_num_queries):
    lot = make_lot()
    products = [make_product(lot=lot) for _ in range(8)]
    sealed(*products)
    for p in products[:5]:
        review(p, overall_rating=4)
    assert "Note moyenne" not in get(client, products[7]).content.decode()

    review(products[5], overall_rating=5)
    with django_assert_num_queries(1):
        html = get(client, products[7]).content.decode()
    assert "Note moyenne des produits de ce lot : 4,2/5 (6 avis)" in html

    review(products[6], overall_rating=5)
    html = get(client, products[7], "en").content.decode()
    assert "Average rating of this lot's products: 4.3/5 (7 reviews)" in html
    assert without_token(get(client, products[7]).content.decode()) == without_token(
        rendered_per_scan(products[7], "fr").replace(CSRF_PLACEHOLDER, "")
    )


def test_a_recall_declared_after_the_page_was_stored_shows_at_the_next_scan_and_its_closing_too(
    client,
):
    lot = make_lot()
    product = make_product(lot=lot)
    sealed(product)
    assert 'data-testid="recall-banner"' not in get(client, product).content.decode()

    recall = declare_lot_recall(lot, reference="RC-STORED-1")
    html = get(client, product).content.decode()
    assert 'data-testid="recall-banner"' in html and "Rapportez-le au magasin." in html
    assert 'name="overall_rating"' not in html

    recall_close(recall=recall, reason="Analyses négatives")
    html = get(client, product, "en").content.decode()
    assert 'data-status="closed"' in html and "Analyses négatives" in html


def test_a_producer_or_site_changed_after_the_page_was_stored_is_shown_at_once(client):
    product = make_product()
    sealed(product)
    stored = ScanPage.objects.get(product=product, language="fr").version

    Site.objects.filter(pk=product.lot.site_id).update(name="Ferme du Nouveau Nom")

    assert "Ferme du Nouveau Nom" in get(client, product).content.decode()
    # rendered by that scan and stored again for the next ones
    page = ScanPage.objects.get(product=product, language="fr")
    assert page.version != stored and "Ferme du Nouveau Nom" in page.html


def test_a_record_altered_in_the_database_is_never_served_from_its_stored_page(client):
    product = make_product(fusion_grade="A")
    sealed(product)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE consumer_products SET sqal_fusion_grade = 'C' WHERE id = %s", [product.pk]
        )

    html = get(client, product).content.decode()
    assert 'data-testid="grade">C</span>' in html
    assert 'data-state="failed"' in html  # the server's own finding, no JavaScript needed
    assert "C</span>" not in ScanPage.objects.get(product=product, language="fr").html


def test_a_verification_that_names_the_product_turns_its_stored_page_into_a_warning(client):
    product = make_product()
    sealed(product)
    assert 'data-state="checking"' in get(client, product).content.decode()

    now = timezone.now()
    LedgerVerification.objects.create(
        started_at=now,
        finished_at=now,
        ok=False,
        tree_size=1,
        findings=[{"product_id": product.product_id, "problem": "leaf hash differs"}],
    )
    cache.clear()  # the proof (and its finding) is cached like before stored pages

    html = get(client, product).content.decode()
    assert 'id="integrity-banner"' in html
    assert 'data-state="failed"' in html


@override_settings(LEDGER_HEAD_INTERVAL_SECONDS=3600, LEDGER_HEAD_MAX_PENDING=1000)
def test_a_unit_not_yet_under_a_signed_head_is_rendered_per_scan_and_not_stored(client):
    make_product()
    ledger_sign_head(force=True)
    product = make_product()  # no head covers it yet

    html = get(client, product).content.decode()

    assert "Intégrité bientôt vérifiable" in html
    assert not ScanPage.objects.filter(product=product).exists()


def test_a_product_registered_before_stored_pages_gets_its_page_stored_by_its_first_scan(
    client, django_assert_num_queries
):
    product = make_product()
    ledger_sign_head(force=True)
    ScanPage.objects.filter(product=product).delete()

    first = get(client, product).content.decode()
    assert ScanPage.objects.filter(product=product, language="fr").exists()
    cache.clear()
    daily_salt(timezone.now().date().isoformat())
    with django_assert_num_queries(1):
        second = get(client, product).content.decode()
    assert without_token(first) == without_token(second)


def test_a_head_signing_tells_which_leaves_it_sealed_once_committed(
    django_capture_on_commit_callbacks,
):
    heard = []

    def listener(sender, *, previous_size, tree_size, **kwargs):
        heard.append((previous_size, tree_size))

    head_signed.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            make_product()
            ledger_sign_head(force=True)
        first = latest_head()
        with django_capture_on_commit_callbacks(execute=True):
            make_product()
            make_product()
            second = ledger_sign_head(force=True)
    finally:
        head_signed.disconnect(listener)
    assert heard[-1] == (first.tree_size, second.tree_size)
    assert second.tree_size - first.tree_size == 2


@pytest.fixture
def pages_sent(monkeypatch):
    """Whether the scan statement sent the stored page, scan after scan."""
    sent = []
    scan = views.product_scan

    def spy(**kwargs):
        outcome = scan(**kwargs)
        sent.append(outcome.scan.page_html is not None)
        return outcome

    monkeypatch.setattr(views, "product_scan", spy)
    return sent


def test_a_unit_scanned_again_is_served_from_the_process_copy_the_statement_does_not_resend(
    client, pages_sent, django_assert_num_queries
):
    product = make_product()
    sealed(product)

    from django.test import Client

    first = get(client, product).content.decode()
    with django_assert_num_queries(1):
        second = get(Client(), product)  # another visitor

    assert pages_sent == [True, False]
    html = second.content.decode()
    assert without_token(html) == without_token(first)
    assert CSRF_PLACEHOLDER not in html
    assert len(TOKEN.findall(html)) == 2  # the language switch and the review form
    assert "csrftoken" in second.cookies  # a new visitor gets the cookie with the token


def test_a_kept_page_gives_way_at_once_to_a_review_a_changed_record_and_a_recall(client):
    lot = make_lot()
    reviewed, renamed, recalled = (make_product(lot=lot) for _ in range(3))
    sealed(reviewed, renamed, recalled)
    for product in (reviewed, renamed, recalled):
        get(client, product)
        assert 'name="overall_rating"' in get(client, product).content.decode()  # kept copy

    review(reviewed)
    html = get(client, reviewed).content.decode()
    assert "déjà été évalué" in html and 'name="overall_rating"' not in html

    Site.objects.filter(pk=lot.site_id).update(name="Ferme du Nouveau Nom")
    assert "Ferme du Nouveau Nom" in get(client, renamed).content.decode()

    declare_lot_recall(lot, reference="RC-KEPT-1")
    html = get(client, recalled).content.decode()
    assert 'data-testid="recall-banner"' in html and 'name="overall_rating"' not in html


@override_settings(SCAN_PAGE_CACHE_SECONDS=0)
def test_with_the_page_cache_off_nothing_is_kept_and_each_scan_gets_the_stored_page(
    client, pages_sent
):
    product = make_product()
    sealed(product)

    first, second = (get(client, product).content.decode() for _ in range(2))

    assert pages_sent == [True, True]
    assert without_token(first) == without_token(second)
    assert not kept_pages._pages


def test_a_returning_visitor_keeps_its_cookie_and_its_token_of_a_kept_page_is_accepted():
    from django.test import Client

    product = make_product()
    sealed(product)
    visitor = Client(enforce_csrf_checks=True)
    get(visitor, product)  # a first visit: the cookie is set
    cookie = visitor.cookies["csrftoken"].value

    again = get(visitor, product)  # served from the process's copy
    assert "csrftoken" not in again.cookies  # held already: not sent again
    token = TOKEN.search(again.content.decode()).group(0).split('value="')[1].rstrip('"')
    answer = visitor.post(
        f"/p/{product.qr_code}/avis",
        {**RATINGS, "csrfmiddlewaretoken": token},
    )
    assert answer.status_code == 200
    assert visitor.cookies["csrftoken"].value == cookie

    forged = Client(enforce_csrf_checks=True)
    forged.cookies["csrftoken"] = cookie
    refused = forged.post(f"/p/{product.qr_code}/avis", RATINGS)
    assert refused.status_code == 403  # no token: CSRF protection holds


def test_kept_pages_are_bounded_and_expire(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(pages.time, "monotonic", lambda: now[0])
    kept = pages._KeptPages(size=2)
    for code in ("a", "b", "c"):
        kept.put((code, "fr"), "v1", (code.encode(),), 60)

    assert kept.get(("a", "fr")) is None  # the oldest gave way
    assert kept.get(("c", "fr")) == ("v1", (b"c",))
    now[0] += 60
    assert kept.get(("b", "fr")) is None and kept.get(("c", "fr")) is None
