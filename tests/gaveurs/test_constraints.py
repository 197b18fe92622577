"""Database constraints the domain relies on, enforced by PostgreSQL itself."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from feedback.models import ConsumerFeedback
from gaveurs.models import FeedingRecord
from tests.factories import make_device, make_lot, make_sample
from traceability.models import ConsumerProduct
from traceability.services import product_register

pytestmark = pytest.mark.django_db


def test_a_device_cannot_store_the_same_sample_id_twice():
    make_sample(sample_id="S1")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_sample(sample_id="S1")


def test_two_devices_may_use_the_same_sample_id():
    make_sample(sample_id="S1", device=make_device(device_id="ESP32_LL_01"))
    make_sample(sample_id="S1", device=make_device(device_id="ESP32_LL_02"))


def test_a_sample_yields_at_most_one_product_even_through_raw_sql():
    lot = make_lot()
    sample = make_sample(lot=lot)
    product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
    product = ConsumerProduct.objects.get()
    product.pk = None
    product.product_id = "FG_LL_20260101_9999"
    product.qr_code = "other"
    with pytest.raises(IntegrityError), transaction.atomic():
        product.save(force_insert=True)


@pytest.mark.parametrize("score", [-0.1, 1.5])
def test_a_fusion_score_out_of_zero_to_one_is_refused(score):
    with pytest.raises(IntegrityError), transaction.atomic():
        make_sample(fusion_score=score)


def test_an_unknown_grade_is_refused():
    with pytest.raises(IntegrityError), transaction.atomic():
        make_sample(fusion_grade="Z")


def test_a_lot_cannot_end_before_it_starts():
    lot = make_lot()
    lot.planned_feeding_end = lot.feeding_start - timedelta(days=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        lot.save()


def test_a_lot_cannot_lose_more_ducks_than_it_has():
    with pytest.raises(IntegrityError), transaction.atomic():
        make_lot(duck_count=10, dead_count=11)


def test_a_meal_is_recorded_once_per_day():
    lot = make_lot()
    FeedingRecord.objects.create(lot=lot, day=1, meal="morning", planned_dose_g=200)
    with pytest.raises(IntegrityError), transaction.atomic():
        FeedingRecord.objects.create(lot=lot, day=1, meal="morning", planned_dose_g=210)


@pytest.mark.parametrize("rating", [0, 6])
def test_a_rating_outside_one_to_five_is_refused(rating):
    lot = make_lot()
    sample = make_sample(lot=lot)
    product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
    product = ConsumerProduct.objects.get()
    ratings = dict.fromkeys(
        ["taste_rating", "texture_rating", "appearance_rating", "value_rating"], 4
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        ConsumerFeedback.objects.create(product=product, overall_rating=rating, **ratings)


def test_a_product_gets_one_review_only():
    lot = make_lot()
    sample = make_sample(lot=lot)
    product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
    product = ConsumerProduct.objects.get()
    ratings = dict.fromkeys(
        ["overall_rating", "taste_rating", "texture_rating", "appearance_rating", "value_rating"],
        4,
    )
    ConsumerFeedback.objects.create(product=product, **ratings)
    with pytest.raises(IntegrityError), transaction.atomic():
        ConsumerFeedback.objects.create(product=product, **ratings)
