"""`manage.py seed_demo`: realistic and deterministic demo data."""

from __future__ import annotations

from collections import Counter
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import transaction

from feedback.models import ConsumerFeedback, LotReviewStats
from gaveurs.models import FeedingRecord, Lot, Site
from sensors.models import Device, SensorSample
from tests.support.integrity import assert_integrity
from traceability.models import ConsumerProduct

pytestmark = pytest.mark.django_db


def snapshot() -> dict:
    return {
        "lots": list(
            Lot.objects.order_by("code").values_list(
                "code", "duration_days", "itm", "mean_final_weight_g", "duck_count", "dead_count"
            )
        ),
        "doses": list(
            FeedingRecord.objects.order_by("lot__code", "day", "meal").values_list(
                "lot__code", "day", "meal", "planned_dose_g"
            )
        ),
        "samples": list(
            SensorSample.objects.order_by("sample_id").values_list(
                "sample_id", "fusion_score", "fusion_grade", "is_compliant"
            )
        ),
        "reviews": list(
            ConsumerFeedback.objects.order_by("product__sqal_sample_id").values_list(
                "product__sqal_sample_id", "overall_rating", "taste_rating"
            )
        ),
    }


def test_it_creates_sites_lots_samples_of_every_grade_products_and_reviews():
    out = StringIO()
    call_command("seed_demo", "--seed", "7", stdout=out)

    assert Site.objects.count() >= 3
    assert Lot.objects.count() == 24
    grades = Counter(SensorSample.objects.values_list("fusion_grade", flat=True))
    assert set(grades) == {"A+", "A", "B", "C", "REJECT"}, grades
    eligible = SensorSample.objects.filter(is_compliant=True).exclude(fusion_grade="REJECT")
    assert ConsumerProduct.objects.count() == eligible.count()
    assert ConsumerFeedback.objects.exists()
    assert Device.objects.filter(assigned_lot__isnull=False).exists()
    assert "24 new lots" in out.getvalue()
    assert_integrity()


def test_each_lot_gets_10_to_14_days_of_rising_doses():
    call_command("seed_demo", stdout=StringIO())
    for lot in Lot.objects.all():
        mornings = list(
            lot.feeding_records.filter(meal="morning")
            .order_by("day")
            .values_list("planned_dose_g", flat=True)
        )
        assert 10 <= lot.duration_days <= 14
        assert len(mornings) == lot.duration_days
        assert mornings[-1] > mornings[0] * 1.8


def seeded_snapshot(seed: int) -> dict:
    """Seed inside a transaction that is rolled back, so each run starts from an empty database."""
    with transaction.atomic():
        call_command("seed_demo", "--seed", str(seed), stdout=StringIO())
        snap = snapshot()
        transaction.set_rollback(True)
    return snap


def test_the_same_seed_gives_the_same_data():
    first = seeded_snapshot(3)
    assert first["samples"]
    assert seeded_snapshot(3) == first


def test_another_seed_gives_other_data():
    assert seeded_snapshot(3)["samples"] != seeded_snapshot(4)["samples"]


def test_running_it_again_adds_nothing():
    call_command("seed_demo", stdout=StringIO())
    counts = (Lot.objects.count(), SensorSample.objects.count(), ConsumerProduct.objects.count())
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert counts == (
        Lot.objects.count(),
        SensorSample.objects.count(),
        ConsumerProduct.objects.count(),
    )
    assert "0 new lots" in out.getvalue()


def test_the_default_demo_gives_the_optimizer_a_curve_to_recommend():
    call_command("seed_demo", stdout=StringIO())
    out = StringIO()
    call_command("optimize_curves", "--no-report", stdout=out)
    assert "Recommended curve" in out.getvalue(), out.getvalue()


def visible_reviews_by_lot() -> dict[int, tuple[int, float | None]]:
    """Each lot's (count, average overall rating) counted from its visible reviews."""
    figures: dict[int, list[int]] = {}
    for lot_id, overall in ConsumerFeedback.objects.filter(is_hidden=False).values_list(
        "product__lot_id", "overall_rating"
    ):
        figures.setdefault(lot_id, []).append(overall)
    return {lot: (len(r), round(sum(r) / len(r), 1)) for lot, r in figures.items()}


def assert_the_scan_api_counts_the_visible_reviews(client) -> None:
    truth = visible_reviews_by_lot()
    for lot in Lot.objects.filter(products__isnull=False).distinct():
        product = lot.products.first()
        body = client.get(f"/api/consumer/scan/{product.qr_code}").json()
        count, average = truth.get(lot.id, (0, None))
        assert body["total_reviews"] == count, lot.code
        assert body["average_rating"] == (average if count > 5 else None), lot.code


def test_the_scan_api_counts_every_seeded_review_and_moderating_one_in_admin_keeps_it_true(client):
    call_command("seed_demo", stdout=StringIO())
    assert_integrity()
    assert (
        sum(count for count, _ in visible_reviews_by_lot().values())
        == (ConsumerFeedback.objects.count())
        > 0
    )
    assert_the_scan_api_counts_the_visible_reviews(client)

    client.force_login(User.objects.create_superuser("quality", "q@example.com", "pw-123-q"))
    feedback = ConsumerFeedback.objects.order_by("pk").first()
    lot_id = feedback.product.lot_id
    url = f"/admin/feedback/consumerfeedback/{feedback.pk}/change/"
    before = visible_reviews_by_lot()[lot_id][0]

    hidden = client.post(url, {"is_hidden": "on", "hidden_reason": "Off-topic"})
    assert hidden.status_code == 302
    assert LotReviewStats.objects.get(lot_id=lot_id).review_count == before - 1
    assert_integrity()
    assert_the_scan_api_counts_the_visible_reviews(client)

    shown = client.post(url, {"is_hidden": "", "hidden_reason": ""})
    assert shown.status_code == 302
    assert LotReviewStats.objects.get(lot_id=lot_id).review_count == before
    assert_integrity()
    assert_the_scan_api_counts_the_visible_reviews(client)
