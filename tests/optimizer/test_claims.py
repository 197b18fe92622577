"""What optimize_curves claims: the model it chose and why, intervals, the data's support,
trial curves, the curve it compares with, and the same answer for the same data and seed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.core.management import call_command
from django.urls import reverse

from gaveurs.models import FeedingCurve, FeedingCurveDay
from optimizer.curves import CurveBounds, curve_from_json, curve_violations
from optimizer.dataset import SHAPE_COLUMNS, curve_shape, dataset_build
from optimizer.models import OptimizedCurve
from optimizer.surrogate import CANDIDATES, curve_model_select
from optimizer.synthetic import REFERENCE_CURVE, HistorySpec, SyntheticTaste, history_generate

pytestmark = pytest.mark.django_db


def _feeding_curve(name: str, doses, *, reference: bool = True) -> FeedingCurve:
    curve = FeedingCurve.objects.create(name=name, is_reference=reference)
    FeedingCurveDay.objects.bulk_create(
        FeedingCurveDay(curve=curve, day=d, morning_dose_g=m, evening_dose_g=e)
        for d, (m, e) in enumerate(doses, start=1)
    )
    return curve


def _optimize(capsys, tmp_path, *args: str) -> tuple[str, dict]:
    out = tmp_path / "result.json"
    call_command("optimize_curves", "--no-report", "--output", str(out), *args)
    return capsys.readouterr().out, json.loads(out.read_text())


def test_shape_features_describe_the_ramp_a_producer_decides():
    doses = np.zeros((1, 12, 2))
    daily = np.linspace(400, 900, 10)
    doses[0, :10, 0] = daily * 0.4
    doses[0, :10, 1] = daily * 0.6

    shape = dict(zip(SHAPE_COLUMNS, curve_shape(doses, np.array([10]))[0], strict=True))

    assert shape["duration_days"] == 10
    assert shape["total_planned_g"] == pytest.approx(daily.sum())
    assert shape["start_daily_g"] == pytest.approx(400)
    assert shape["roughness_g"] == pytest.approx(0, abs=1e-9)  # a straight ramp
    assert shape["max_step_g"] == pytest.approx(500 / 9)
    assert shape["morning_share"] == pytest.approx(0.4)
    assert shape["phase1_daily_g"] < shape["phase2_daily_g"] < shape["phase3_daily_g"]
    assert shape["finish_share"] == pytest.approx(daily[-4:].sum() / daily.sum())


def test_the_curve_model_is_chosen_by_grouped_cross_validation_among_the_candidates():
    history_generate(HistorySpec(lots=150, products_per_lot=3, seed=3))
    data = dataset_build(feature_days=16)

    model = curve_model_select(data, folds=4, seed=0, boot=8, n_estimators=20, repeats=1)

    assert set(model.candidates) == set(CANDIDATES)
    scores = {name: c["score"] for name, c in model.candidates.items()}
    assert model.name == min(scores, key=scores.get)
    assert model.candidates[model.name]["selected"] is True
    # a smooth taste: a smooth model beats the seed's forest where it matters
    assert scores[model.name] < scores["forest"]
    assert model.cv.improvement > 0.02
    assert len(model.boot) == 8
    assert 0.3 <= model.slope <= 1.1


def test_intervals_cover_the_true_rating_of_the_data_curves_and_widen_outside_them():
    taste = SyntheticTaste()
    history_generate(HistorySpec(lots=200, products_per_lot=3, seed=4), taste=taste)
    data = dataset_build(feature_days=16)
    model = curve_model_select(data, folds=4, seed=0, boot=20, n_estimators=20)
    durations = data.lots["curve_days"].to_numpy()

    predictions = model.predict_interval(data.curves[:40], durations[:40])
    truths = [
        taste.expected_rating(c[:d]) for c, d in zip(data.curves[:40], durations[:40], strict=True)
    ]

    covered = [p.low <= t <= p.high for p, t in zip(predictions, truths, strict=True)]
    assert np.mean(covered) >= 0.6
    assert all(p.in_support for p in predictions)
    far = np.zeros((1, 16, 2))
    far[0, :16] = [(600.0, 600.0)] * 16
    (outside,) = model.predict_interval(far, np.array([16]))
    assert not outside.in_support
    assert outside.high - outside.low > np.median([p.high - p.low for p in predictions])


def test_the_recommended_curve_is_the_one_the_model_rates_highest_among_the_feasible():
    from optimizer.recommend import recommend
    from optimizer.search import CurveSpace

    history_generate(HistorySpec(lots=150, products_per_lot=3, seed=5))
    data = dataset_build(feature_days=16)
    model = curve_model_select(data, folds=4, seed=0, boot=8, n_estimators=20, repeats=1)
    durations = data.lots["curve_days"].to_numpy()
    bounds = CurveBounds(9, 16, 90.0, 1000.0)

    found = recommend(
        model=model,
        observed=data.curves,
        durations=durations,
        bounds=bounds,
        max_distance=0.12,
        current=None,
        population=60,
        generations=10,
        seed=0,
    )

    assert found.curve is not None and not curve_violations(found.curve, bounds)
    padded = np.zeros((1, 16, 2))
    padded[0, : len(found.curve)] = found.curve
    rating = model.predict(padded, np.array([len(found.curve)]))[0]
    # The model's own rating is what the search maximises (no penalty for uncertainty): at
    # least as high as any lot curve that keeps the rules and the data's range (the search
    # starts from them; rounding to 0.1 g aside).
    space = CurveSpace(data.curves, durations, bounds, 0.12, support=model.support)
    keeps_rules = [
        not curve_violations(c[:d].tolist(), bounds)
        for c, d in zip(data.curves, durations, strict=True)
    ]
    feasible = space.feasible_mask(data.curves, durations) & np.array(keeps_rules)
    assert feasible.sum() >= 10
    assert rating >= model.predict(data.curves[feasible], durations[feasible]).max() - 1e-3


def test_a_current_curve_outside_the_data_is_flagged_and_no_gain_is_stated(
    capsys, tmp_path, settings
):
    # 16 days near the daily maximum: no lot of the history looks like it.
    _feeding_curve("Extrême", [(450.0, 500.0)] * 16)
    history_generate(HistorySpec(lots=150, products_per_lot=3, seed=1))

    out, result = _optimize(capsys, tmp_path)

    assert "outside the data" in out
    assert "no gain is stated" in out
    curve = OptimizedCurve.objects.get()
    assert curve.current_in_support is False
    assert curve.current_predicted_rating is not None
    assert curve.gain is None and curve.gain_low is None
    assert result["curve"]["gain"] is None
    assert result["curve"]["current_in_support"] is False


def test_the_admin_shows_the_gain_with_its_interval_or_why_it_is_not_stated(admin_client):
    base = {
        "duration_days": 1,
        "doses": [{"day": 1, "morning_g": 200.0, "evening_g": 220.0}],
        "predicted_rating": 4.2,
        "predicted_rating_std": 0.2,
        "predicted_low": 3.9,
        "predicted_high": 4.5,
        "current_predicted_rating": 3.1,
        "data_metrics": {},
        "model_metrics": {},
    }
    OptimizedCurve.objects.create(
        version=1, gain=1.1, gain_low=0.8, gain_high=1.4, current_in_support=True, **base
    )
    OptimizedCurve.objects.create(version=2, current_in_support=False, **base)

    page = admin_client.get(reverse("admin:optimizer_optimizedcurve_changelist")).content.decode()

    assert "+1,10 (+0,80 – +1,40)" in page  # the project's language: French decimals
    assert "4,20 (3,90 – 4,50)" in page
    assert "non indiqué (une courbe est hors des données)" in page


def test_trial_curves_are_proposed_for_a_stated_share_of_the_next_lots(capsys, tmp_path, settings):
    settings.OPTIMIZER_TRIALS = 2
    settings.OPTIMIZER_TRIAL_SHARE = 0.25
    _feeding_curve("Référence", REFERENCE_CURVE)
    history_generate(HistorySpec(lots=150, products_per_lot=3, seed=1))

    out, result = _optimize(capsys, tmp_path)

    curve = OptimizedCurve.objects.get()
    assert "Trial curves for 25% of the next lots" in out
    assert curve.trial_share == 0.25
    assert 1 <= len(curve.trials) <= 2
    best = np.asarray(curve_from_json(curve.doses))
    for trial in curve.trials:
        doses = curve_from_json(trial["doses"])
        assert curve_violations(doses, CurveBounds.from_settings()) == []
        assert trial["expected_improvement"] >= 0
        assert trial["predicted"]["low"] < trial["predicted"]["mean"] < trial["predicted"]["high"]
        if len(doses) == len(best):
            assert np.linalg.norm(np.asarray(doses) - best) > 0.03 * np.linalg.norm(best)
    assert result["curve"]["trials"] == curve.trials


def test_the_same_data_and_seed_give_the_same_curve_byte_for_byte(capsys, tmp_path):
    _feeding_curve("Référence", REFERENCE_CURVE)
    history_generate(HistorySpec(lots=120, products_per_lot=3, seed=6))

    _, first = _optimize(capsys, tmp_path, "--seed", "3")
    _, second = _optimize(capsys, tmp_path, "--seed", "3")

    assert json.dumps(first["curve"]["doses"]) == json.dumps(second["curve"]["doses"])
    assert first["curve"]["predicted_rating"] == second["curve"]["predicted_rating"]
    assert first["curve"]["gain_interval_80"] == second["curve"]["gain_interval_80"]


def test_without_a_reference_it_compares_with_the_curve_most_lots_followed(capsys, tmp_path):
    usual = _feeding_curve("Habituelle", REFERENCE_CURVE, reference=False)
    history_generate(HistorySpec(lots=120, products_per_lot=3, seed=2), feeding_curve_id=usual.pk)

    out, result = _optimize(capsys, tmp_path)

    assert "Compared with: Habituelle (120 lots) (curve most lots followed" in out
    assert result["curve"]["current_curve_source"] == "most_followed"
    assert result["curve"]["current_predicted_rating"] is not None


def test_without_any_named_curve_it_compares_with_the_most_typical_lot_curve(capsys, tmp_path):
    history_generate(HistorySpec(lots=120, products_per_lot=3, seed=2))

    out, result = _optimize(capsys, tmp_path)

    assert "most typical curve of the data" in out
    assert result["curve"]["current_curve_source"] == "typical"
    assert result["curve"]["current_curve"].startswith("curve of lot ")
