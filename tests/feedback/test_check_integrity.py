"""`manage.py check_integrity`: each stored aggregate is recomputed from raw rows."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from feedback.models import ConsumerFeedback, LotReviewStats
from feedback.services import feedback_hide, feedback_unhide
from tests.factories import make_product, review
from tests.support.integrity import assert_integrity
from traceability.models import LedgerLeaf, ProductScanStats
from traceability.scans import ClientOrigin, scan_record

pytestmark = pytest.mark.django_db


def differences() -> str:
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("check_integrity", stdout=out)
    return f"{failed.value}\n{out.getvalue()}"


def test_it_reports_nothing_when_every_aggregate_is_true():
    product = make_product()
    review(product)
    scan_record(qr_code=product.qr_code, channel="page", origin=ClientOrigin())

    assert_integrity()


def test_it_reports_a_lot_whose_stored_review_figures_differ_from_its_reviews():
    product = make_product()
    review(product)
    LotReviewStats.objects.filter(lot_id=product.lot_id).update(overall_sum=1)

    report = differences()

    assert f"lot {product.lot_id} stores 1 reviews" in report
    assert "1 differences" in report


def test_it_reports_a_visible_review_left_out_of_its_lot_figures():
    product = make_product()
    ConsumerFeedback.objects.create(
        product=product,
        overall_rating=4,
        taste_rating=4,
        texture_rating=4,
        appearance_rating=4,
        value_rating=4,
    )

    assert f"lot {product.lot_id} stores 0 reviews" in differences()


def test_moderation_keeps_the_figures_true():
    feedback = review(make_product())

    feedback_hide(feedback_id=feedback.pk, reason="Off-topic")
    assert_integrity()
    feedback_unhide(feedback_id=feedback.pk)
    assert_integrity()


def test_it_reports_a_scan_counter_that_differs_from_the_scan_events():
    product = make_product()
    scan_record(qr_code=product.qr_code, channel="page", origin=ClientOrigin())
    ProductScanStats.objects.filter(product=product).update(scan_count=5)

    assert f"product #{product.pk} stores 5 scans, its scan events give 1" in differences()


def test_it_reports_a_hidden_review_without_a_reason():
    feedback = review(make_product())
    ConsumerFeedback.objects.filter(pk=feedback.pk).update(
        is_hidden=False, hidden_reason="left over"
    )

    assert f"review #{feedback.pk} is shown with a reason" in differences()


def test_it_reports_a_product_missing_from_the_ledger():
    product = make_product()
    LedgerLeaf.objects.filter(product=product).delete()

    report = differences()

    assert f"product {product.product_id} has no leaf" in report
    assert "0 leaves for 1 products" in report
