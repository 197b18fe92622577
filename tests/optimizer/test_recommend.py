"""The curves lots already followed as candidates: their blended rating and when one wins."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.dataset import dataset_build
from optimizer.recommend import history_best
from optimizer.surrogate import curve_model_select
from optimizer.synthetic import HistorySpec, history_generate

pytestmark = pytest.mark.django_db


@pytest.fixture
def fitted():
    history_generate(HistorySpec(lots=80, products_per_lot=3, seed=5))
    data = dataset_build(feature_days=16)
    model = curve_model_select(data, folds=4, seed=0, boot=6, candidates=("quadratic",), repeats=1)
    return data, model


def test_a_lot_whose_many_reviews_vouch_for_it_is_the_best_historical_curve(fitted):
    data, model = fitted
    ratings = data.lots["mean_rating"].to_numpy(dtype=float).copy()
    reviews = data.lots["reviews"].to_numpy(dtype=float).copy()
    durations = data.lots["curve_days"].to_numpy()
    prior = model.stated(model.predict(data.curves, durations))
    lot = int(np.argmin(prior))  # the model's least favourite
    ratings[lot], reviews[lot] = 5.0, 400

    best, blended = history_best(
        model=model, observed=data.curves, durations=durations, ratings=ratings, reviews=reviews
    )

    assert best == lot
    assert prior[lot] < blended.mean < 5.0
    assert blended.mean > 5.0 - 0.25 * (5.0 - prior[lot])  # 400 reviews: mostly the data
    assert blended.low < blended.mean < blended.high
    assert blended.in_support


def test_a_lot_with_one_lucky_review_is_shrunk_towards_the_model(fitted):
    data, model = fitted
    ratings = data.lots["mean_rating"].to_numpy(dtype=float).copy()
    reviews = data.lots["reviews"].to_numpy(dtype=float).copy()
    durations = data.lots["curve_days"].to_numpy()
    prior = model.stated(model.predict(data.curves, durations))
    lot = int(np.argmin(prior))
    ratings[lot], reviews[lot] = 5.0, 1
    rest = np.arange(len(ratings)) != lot

    best, blended = history_best(
        model=model,
        observed=data.curves[rest],
        durations=durations[rest],
        ratings=ratings[rest],
        reviews=reviews[rest],
    )
    lucky, lucky_blend = history_best(
        model=model,
        observed=data.curves[lot : lot + 1],
        durations=durations[lot : lot + 1],
        ratings=ratings[lot : lot + 1],
        reviews=reviews[lot : lot + 1],
    )

    assert lucky == 0
    assert lucky_blend.mean < 5.0 - 0.3 * (5.0 - prior[lot])  # one review moves it little
    assert lucky_blend.sd > blended.sd
