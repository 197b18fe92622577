"""The optimizer's dataset: one row per reviewed product, joined with its lot and sample."""

from __future__ import annotations

import pytest

from feedback.models import ConsumerFeedback
from gaveurs.models import FeedingCurve, FeedingCurveDay, FeedingRecord
from optimizer.dataset import dataset_build
from tests.factories import make_lot, make_sample
from traceability.models import ConsumerProduct
from traceability.services import product_register

pytestmark = pytest.mark.django_db


def _product(lot, *, rating: int | None, hidden: bool = False, **sample_fields):
    sample = make_sample(lot=lot, **sample_fields)
    product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
    product = ConsumerProduct.objects.get(sample=sample)
    if rating is not None:
        ConsumerFeedback.objects.create(
            product=product,
            overall_rating=rating,
            taste_rating=rating,
            texture_rating=rating,
            appearance_rating=rating,
            value_rating=rating,
            is_hidden=hidden,
            hidden_reason="spam" if hidden else "",
        )
    return product


def _records(lot, doses):
    for day, (morning, evening) in enumerate(doses, start=1):
        FeedingRecord.objects.create(lot=lot, day=day, meal="morning", planned_dose_g=morning)
        FeedingRecord.objects.create(
            lot=lot, day=day, meal="evening", planned_dose_g=evening, actual_dose_g=evening + 10
        )


def test_it_keeps_one_row_per_reviewed_product_and_counts_the_others():
    lot_a = make_lot(duck_count=200, dead_count=4, itm=120.0)
    lot_b = make_lot(duck_count=100, dead_count=0)
    _records(lot_a, [(100, 120), (150, 170), (200, 220)])
    _records(lot_b, [(110, 110), (160, 160)])
    reviewed = [_product(lot_a, rating=5), _product(lot_a, rating=3), _product(lot_b, rating=4)]
    _product(lot_a, rating=None)
    _product(lot_b, rating=2, hidden=True)

    data = dataset_build()

    assert data.counts["products_total"] == 5
    assert data.counts["rows_used"] == 3
    assert data.counts["products_without_review"] == 2
    assert sorted(data.rows["product_pk"]) == sorted(p.pk for p in reviewed)
    assert data.rows["product_pk"].is_unique
    row = data.rows.set_index("product_pk").loc[reviewed[0].pk]
    assert row["lot_id"] == lot_a.id
    assert row["overall_rating"] == 5
    assert row["mortality"] == pytest.approx(0.02)
    assert row["itm"] == 120.0
    # total maize: actual doses when recorded (evening +10 g), planned otherwise
    assert row["total_maize_g"] == pytest.approx(100 + 130 + 150 + 180 + 200 + 230)
    assert row["fusion_score"] == pytest.approx(0.87)
    assert row["spectral_freshness_index"] == pytest.approx(0.89)


def test_it_gives_each_lot_its_planned_curve_day_by_day():
    lot = make_lot(duration_days=3)
    _records(lot, [(100, 120), (150, 170), (200, 220)])
    _product(lot, rating=4)

    data = dataset_build(feature_days=5)

    assert data.curves.shape == (1, 5, 2)
    assert data.curves[0].tolist() == [[100, 120], [150, 170], [200, 220], [0, 0], [0, 0]]
    assert data.lots.loc[0, "curve_days"] == 3
    assert data.lots.loc[0, "reviews"] == 1


def test_a_lot_without_feeding_records_uses_the_curve_it_follows():
    curve = FeedingCurve.objects.create(name="Classique")
    for day in (1, 2):
        FeedingCurveDay.objects.create(
            curve=curve, day=day, morning_dose_g=100 * day, evening_dose_g=120 * day
        )
    lot = make_lot(feeding_curve=curve)
    _product(lot, rating=4)

    data = dataset_build()

    assert data.curves[0, :2].tolist() == [[100, 120], [200, 240]]
    assert data.rows.loc[0, "total_maize_g"] == pytest.approx(660)


def test_the_site_filter_keeps_only_that_sites_products():
    from tests.factories import make_site

    other = make_site(code="SO")
    lot_ll = make_lot()
    lot_so = make_lot(site=other)
    _records(lot_ll, [(100, 100)])
    _records(lot_so, [(100, 100)])
    _product(lot_ll, rating=4)
    make_sample(lot=lot_so, sample_id="ESP32_SO_1")
    product_register(lot_id=lot_so.id, sample_id="ESP32_SO_1", site_code="SO")
    ConsumerFeedback.objects.create(
        product=ConsumerProduct.objects.get(lot=lot_so),
        overall_rating=2,
        taste_rating=2,
        texture_rating=2,
        appearance_rating=2,
        value_rating=2,
    )

    data = dataset_build(site_code="SO")

    assert data.counts["rows_used"] == 1
    assert data.rows["lot_id"].tolist() == [lot_so.id]
    assert data.lots["site_code"].tolist() == ["SO"]  # each lot's site, for its offset
    everything = dataset_build()
    by_lot = dict(zip(everything.lots["lot_id"], everything.lots["site_code"], strict=True))
    assert by_lot == {lot_ll.id: lot_ll.site.code, lot_so.id: "SO"}
