"""The consumer page stored before its unit's signed head
(``feedback.pages.scan_pages_render_unit``): a unit registered by the live pipeline is scanned
within seconds, before any head covers it; its first scan reads the stored "being sealed" page
in one query, says honestly that the register has not been signed since, and gives way to the
sealed page once the head is signed."""

from __future__ import annotations

import logging
import time
from unittest import mock

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone

from feedback.models import ScanPage
from feedback.pages import (
    CSRF_PLACEHOLDER,
    PENDING_VERSION_MARK,
    scan_pages_render_unit,
)
from feedback.tasks import scan_pages_render_leaves, scan_pages_render_unit_task
from tests.factories import make_lot, make_product, make_sample, review
from tests.support.scan_pages import TOKEN, get, rendered_per_scan, without_token
from traceability.ledger import latest_head, ledger_sign_head
from traceability.models import ConsumerProduct, LedgerLeaf, ProductScanStats
from traceability.scans import daily_salt
from traceability.tasks import generate_qr_code_async, generate_qr_codes_async

pytestmark = pytest.mark.django_db

PENDING_FR = "Intégrité bientôt vérifiable"
PENDING_EN = "Integrity can be checked soon"
# No head signed by time or by count while a test runs: only the test signs them.
NO_AUTOMATIC_HEAD = override_settings(
    LEDGER_HEAD_INTERVAL_SECONDS=3600, LEDGER_HEAD_MAX_PENDING=1000
)


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def registered_live(lot=None) -> ConsumerProduct:
    """A product registered as the live pipeline does it: the Celery task's body, run here."""
    lot = lot or make_lot()
    sample = make_sample(lot=lot)
    result = generate_qr_code_async.run(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
    cache.clear()  # no cached proof nor page: what a consumer's first scan meets
    daily_salt(timezone.now().date().isoformat())  # the client-hash salt: read once a day
    return ConsumerProduct.objects.get(product_id=result["product_id"])


@NO_AUTOMATIC_HEAD
@pytest.mark.parametrize(("language", "words"), [("fr", PENDING_FR), ("en", PENDING_EN)])
def test_a_unit_scanned_before_its_head_is_served_its_stored_being_sealed_page_in_one_query(
    client, django_assert_num_queries, language, words
):
    make_product()
    ledger_sign_head(force=True)
    product = registered_live()  # no head covers it yet
    pages = ScanPage.objects.filter(product=product)
    assert sorted(p.language for p in pages) == ["en", "fr"]
    assert all(PENDING_VERSION_MARK in p.version for p in pages)

    with django_assert_num_queries(1):
        response = get(client, product, language)

    html = response.content.decode()
    assert response.status_code == 200
    assert ProductScanStats.objects.get(product=product).scan_count == 1
    assert words in html  # the seal is said to be coming, not claimed
    assert '"status": "pending"' in html  # the embedded proof: the browser says it is coming
    assert CSRF_PLACEHOLDER not in html and TOKEN.search(html)
    assert without_token(html) == without_token(
        rendered_per_scan(product, language).replace(CSRF_PLACEHOLDER, "")
    )
    assert latest_head().tree_size == LedgerLeaf.objects.get(product=product).leaf_index


@NO_AUTOMATIC_HEAD
def test_once_its_head_is_signed_the_unit_is_served_its_sealed_page(
    client, django_assert_num_queries
):
    make_product()
    ledger_sign_head(force=True)
    product = registered_live()
    assert PENDING_FR in get(client, product).content.decode()

    head = ledger_sign_head(force=True)
    scan_pages_render_leaves(head.tree_size - 1, head.tree_size)  # the head's task
    cache.clear()
    daily_salt(timezone.now().date().isoformat())

    page = ScanPage.objects.get(product=product, language="fr")
    assert PENDING_VERSION_MARK not in page.version
    with django_assert_num_queries(1):
        html = get(client, product).content.decode()
    assert PENDING_FR not in html
    assert 'data-state="checking"' in html  # the browser verifies the embedded proof
    assert f"sur {head.tree_size}" in html


@NO_AUTOMATIC_HEAD
def test_a_being_sealed_page_never_replaces_the_sealed_page_stored_before_it(client):
    make_product()
    ledger_sign_head(force=True)
    product = registered_live()
    head = ledger_sign_head(force=True)
    scan_pages_render_leaves(head.tree_size - 1, head.tree_size)
    sealed_version = ScanPage.objects.get(product=product, language="fr").version

    # A late rendering before the head (e.g. the registration task's, racing the head's task)
    # finds the head and stores the sealed page again, never the pending one.
    assert scan_pages_render_unit(qr_code=product.qr_code) == 2
    assert ScanPage.objects.get(product=product, language="fr").version == sealed_version


@NO_AUTOMATIC_HEAD
def test_an_expired_being_sealed_page_is_not_served_and_its_scan_renders_the_page_again(client):
    make_product()
    ledger_sign_head(force=True)
    product = registered_live()
    page = ScanPage.objects.get(product=product, language="fr")
    stale = (
        page.version.split(PENDING_VERSION_MARK)[0]
        + f"{PENDING_VERSION_MARK}{int(time.time()) - 1}"
    )
    ScanPage.objects.filter(pk=page.pk).update(version=stale, html="<p>expired copy</p>")

    html = get(client, product).content.decode()

    assert "expired copy" not in html
    assert PENDING_FR in html  # still no head: rendered by the scan, and not stored
    assert ScanPage.objects.get(pk=page.pk).version == stale


@NO_AUTOMATIC_HEAD
def test_a_being_sealed_page_is_not_served_once_the_unit_is_reviewed(client):
    make_product()
    ledger_sign_head(force=True)
    product = registered_live()
    review(product, overall_rating=4)  # its task has not stored the reviewed page yet

    html = get(client, product).content.decode()

    assert "déjà été évalué" in html
    assert 'name="overall_rating"' not in html


def test_a_review_enqueues_the_rendering_of_the_units_page_once_committed(
    django_capture_on_commit_callbacks,
):
    product = make_product()
    with mock.patch("feedback.tasks.scan_pages_render_unit_task.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            review(product)
            assert not delay.called  # nothing before the commit
        delay.assert_called_once_with(product.qr_code)


@NO_AUTOMATIC_HEAD
@pytest.mark.parametrize("sealed", [False, True], ids=["being sealed", "sealed"])
def test_a_reviewed_units_stored_page_says_so_and_is_served_in_one_query(
    client, django_assert_num_queries, sealed
):
    make_product()
    ledger_sign_head(force=True)
    product = registered_live()
    if sealed:
        head = ledger_sign_head(force=True)
        scan_pages_render_leaves(head.tree_size - 1, head.tree_size)
    review(product, overall_rating=4)
    scan_pages_render_unit_task(product.qr_code)  # what the review enqueued
    cache.clear()
    daily_salt(timezone.now().date().isoformat())

    with django_assert_num_queries(1):
        html = get(client, product).content.decode()

    assert "déjà été évalué" in html
    assert 'name="overall_rating"' not in html
    assert (PENDING_FR in html) is not sealed
    assert without_token(html) == without_token(
        rendered_per_scan(product, "fr").replace(CSRF_PLACEHOLDER, "")
    )


@NO_AUTOMATIC_HEAD
def test_a_product_whose_own_append_signed_a_head_gets_its_sealed_page_at_once(
    client, django_assert_num_queries
):
    with override_settings(LEDGER_HEAD_MAX_PENDING=1):
        product = registered_live()  # its append signs the head over it

    pages = ScanPage.objects.filter(product=product)
    assert sorted(p.language for p in pages) == ["en", "fr"]
    assert not any(PENDING_VERSION_MARK in p.version for p in pages)
    with django_assert_num_queries(1):  # before the head's task gets to it
        html = get(client, product).content.decode()
    assert PENDING_FR not in html and 'data-state="checking"' in html


@NO_AUTOMATIC_HEAD
def test_a_failed_rendering_is_logged_and_the_registration_stands(client, caplog):
    make_product()
    ledger_sign_head(force=True)
    lot = make_lot()
    sample = make_sample(lot=lot)
    with (
        mock.patch("feedback.tasks.scan_pages_render_unit", side_effect=RuntimeError("boom")),
        caplog.at_level(logging.ERROR, logger="feedback.tasks"),
    ):
        result = generate_qr_code_async.run(
            lot_id=lot.id, sample_id=sample.sample_id, site_code="LL"
        )

    assert result["status"] == "success"
    product = ConsumerProduct.objects.get(product_id=result["product_id"])
    assert "Could not store the page" in caplog.text
    assert not ScanPage.objects.filter(product=product).exists()
    daily_salt(timezone.now().date().isoformat())
    assert PENDING_FR in get(client, product).content.decode()  # rendered by its scan


@NO_AUTOMATIC_HEAD
def test_a_batch_task_registers_all_its_products_before_rendering_their_pages():
    make_product()
    ledger_sign_head(force=True)
    lot = make_lot()
    samples = [make_sample(lot=lot) for _ in range(3)]
    registered_at_render: list[int] = []

    def render(*, qr_code: str) -> int:
        registered_at_render.append(ConsumerProduct.objects.filter(lot=lot).count())
        return scan_pages_render_unit(qr_code=qr_code)

    with mock.patch("feedback.tasks.scan_pages_render_unit", side_effect=render):
        result = generate_qr_codes_async.run(
            requests=[
                {"lot_id": lot.id, "sample_id": s.sample_id, "site_code": "LL"} for s in samples
            ]
        )

    assert result["status"] == "success" and len(result["products"]) == 3
    # No registration of the batch waited for the pages of the ones before it.
    assert registered_at_render == [3, 3, 3]
    for item in result["products"]:
        pages = ScanPage.objects.filter(product__product_id=item["product_id"])
        assert sorted(p.language for p in pages) == ["en", "fr"]
        assert all(PENDING_VERSION_MARK in p.version for p in pages)
