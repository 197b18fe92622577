"""manage.py optimize_curves: refusals, constraints, and a better curve under a known taste."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from gaveurs.models import FeedingCurve, FeedingCurveDay
from optimizer.curves import CurveBounds, curve_from_json, curve_violations
from optimizer.dataset import dataset_build
from optimizer.models import OptimizationRun, OptimizedCurve
from optimizer.search import CurveSpace, curve_search
from optimizer.surrogate import curve_model_select
from optimizer.synthetic import REFERENCE_CURVE, HistorySpec, SyntheticTaste, history_generate

pytestmark = pytest.mark.django_db


def _reference_curve() -> FeedingCurve:
    curve = FeedingCurve.objects.create(name="Référence", is_reference=True)
    FeedingCurveDay.objects.bulk_create(
        FeedingCurveDay(curve=curve, day=d, morning_dose_g=m, evening_dose_g=e)
        for d, (m, e) in enumerate(REFERENCE_CURVE, start=1)
    )
    return curve


def _run(capsys, *args: str) -> str:
    call_command("optimize_curves", *args)
    return capsys.readouterr().out


def test_it_refuses_with_too_few_reviewed_products(capsys, settings):
    settings.OPTIMIZER_MIN_REVIEWS = 500
    history_generate(HistorySpec(lots=40, products_per_lot=3, reviewed_share=0.5))

    out = _run(capsys)

    assert "Too few reviewed products" in out
    assert "500 needed" in out
    assert "No curve recommended" in out
    assert not OptimizedCurve.objects.exists()
    run = OptimizationRun.objects.get()
    assert run.outcome == "too_few_reviews"
    # without --report the report goes where the admin links it from
    report = Path(run.report_dir) / "index.html"
    assert report.parent == (settings.OPTIMIZER_REPORT_DIR / f"run-{run.pk}").resolve()
    assert "Too few reviewed products" in report.read_text()


def test_the_min_reviews_option_overrides_the_setting(capsys):
    history_generate(HistorySpec(lots=30, products_per_lot=2))

    out = _run(capsys, "--min-reviews", "61")

    assert "at least 61 needed" in out
    assert not OptimizedCurve.objects.exists()


def test_it_refuses_when_ratings_are_pure_noise(capsys, tmp_path):
    history_generate(HistorySpec(lots=250, products_per_lot=3, pure_noise=True, seed=5))

    out = _run(capsys, "--output", str(tmp_path / "result.json"), "--report", str(tmp_path / "r"))

    assert "does not beat the mean-rating baseline" in out
    html = (tmp_path / "r" / "index.html").read_text()
    assert "does not beat the mean-rating baseline" in html
    assert "RMSE de la note moyenne" in html  # the report is in the default language, French
    assert not (tmp_path / "r" / "curve.png").exists()
    assert "No curve recommended" in out
    assert not OptimizedCurve.objects.exists()
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["outcome"] == "no_signal"
    assert result["curve"] is None
    cv = result["model"]["curve_model_cv"]
    assert cv["rmse_model"] > cv["rmse_baseline"] * (1 - 0.02)


def test_under_a_known_taste_the_recommended_curve_is_truly_better(capsys, tmp_path):
    reference = _reference_curve()
    history_generate(HistorySpec(lots=300, products_per_lot=3, seed=1, reviewed_share=0.9))
    taste = SyntheticTaste()

    out = _run(
        capsys, "--report", str(tmp_path / "report"), "--output", str(tmp_path / "curve.json")
    )

    curve = OptimizedCurve.objects.get()
    doses = curve_from_json(curve.doses)
    assert curve.status == "proposed"
    assert taste.expected(doses) > taste.expected(REFERENCE_CURVE) + 0.8
    assert curve_violations(doses, CurveBounds.from_settings()) == []
    assert len({round(m + e) for m, e in doses}) > 3  # a real per-day curve, not flat
    assert curve.current_curve_name == reference.name
    assert curve.current_curve_source == "reference"
    assert curve.in_support and curve.current_in_support
    # the same model judges both curves; the winner's-curse correction comes off the gain
    optimism = curve.model_metrics["search"]["optimism"]
    assert curve.gain == pytest.approx(
        curve.predicted_rating - curve.current_predicted_rating, abs=1e-3
    )
    assert optimism >= 0
    assert curve.gain > 0
    assert curve.gain_low < curve.gain < curve.gain_high
    assert curve.predicted_low < curve.predicted_rating < curve.predicted_high
    assert 0 < curve.predicted_rating_std < 1
    assert (
        curve.data_metrics["rows_used"] == OptimizationRun.objects.get().data_metrics["rows_used"]
    )
    assert curve.model_metrics["curve_model_cv"]["improvement"] > 0.02
    assert "Rows used for training: " not in out  # the sentence is in the report
    assert "rows used for training" in out
    html = (tmp_path / "report" / "index.html").read_text()
    assert "Lignes utilisées pour l’apprentissage" in html  # the report: French by default
    assert str(curve.data_metrics["rows_used"]) in html
    for png in ("importance.png", "rating_vs_top.png", "curve.png"):
        assert (tmp_path / "report" / png).read_bytes()[:4] == b"\x89PNG"
    result = json.loads((tmp_path / "curve.json").read_text())
    assert result["curve"]["version"] == curve.version
    assert result["curve"]["doses"] == curve.doses
    assert result["insights"]["spearman"]["total_maize_g"] > 0
    assert set(result["insights"]["permutation_importances"]) >= {"fusion_score", "itm"}


@pytest.mark.parametrize(
    "bounds",
    [
        CurveBounds(min_days=9, max_days=16, max_daily_step_g=90, max_daily_dose_g=1000),
        CurveBounds(min_days=10, max_days=12, max_daily_step_g=30, max_daily_dose_g=700),
        CurveBounds(min_days=12, max_days=14, max_daily_step_g=60, max_daily_dose_g=850),
    ],
)
def test_every_recommended_curve_keeps_the_bounds_and_the_data_range(bounds):
    history_generate(HistorySpec(lots=150, products_per_lot=2, seed=2))
    data = dataset_build(feature_days=16)
    model = curve_model_select(data, folds=3, seed=0, boot=5, n_estimators=20)
    durations = data.lots["curve_days"].to_numpy()
    space = CurveSpace(data.curves, durations, bounds, 0.12, support=model.support)
    for seed in range(3):
        result = curve_search(
            objective=model.predict, space=space, population=60, generations=10, seed=seed
        )
        assert result.curve is not None
        assert curve_violations(result.curve, bounds) == []
        doses = np.asarray(result.curve)
        for day, (morning, evening) in enumerate(doses):
            on_that_day = data.curves[durations > day, day]
            assert on_that_day[:, 0].min() - 0.1 <= morning <= on_that_day[:, 0].max() + 0.1
            assert on_that_day[:, 1].min() - 0.1 <= evening <= on_that_day[:, 1].max() + 0.1


def test_curve_violations_names_each_broken_rule():
    bounds = CurveBounds(min_days=3, max_days=4, max_daily_step_g=50, max_daily_dose_g=300)

    problems = curve_violations([(100, 100), (90, 150), (150, 200)], bounds)

    assert "day 2: a meal's dose falls from the day before" in problems
    assert any("rises by 110.0 g" in p for p in problems)
    assert any("exceeds 300 g" in p for p in problems)
    assert curve_violations([(100, 100)] * 5, bounds) == ["duration 5 days is outside 3–4 days"]


def test_an_unknown_site_is_an_error():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="unknown site 'ZZ'"):
        call_command("optimize_curves", "--site", "ZZ")
