"""The optimisation report: mean lines, jittered ratings, and numbers in its language."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command

from gaveurs.models import FeedingCurve, FeedingCurveDay
from optimizer.models import OptimizedCurve
from optimizer.report import mean_line
from optimizer.synthetic import REFERENCE_CURVE, HistorySpec, history_generate


def test_a_column_with_few_values_gets_a_mean_by_value():
    days = [9, 9, 11, 11, 11, 14]
    ratings = [2, 4, 3, 4, 5, 1]

    centers, means = mean_line(days, ratings)

    assert centers == [9.0, 11.0, 14.0]
    assert means == [3.0, 4.0, 1.0]


def test_a_column_with_many_values_gets_a_mean_by_bins():
    values = [float(v) for v in range(100)]

    centers, means = mean_line(values, [v / 25 for v in values])

    assert len(centers) == 8
    assert means == sorted(means)


@pytest.mark.django_db
def test_the_report_states_the_gain_with_its_interval_in_french_numbers(tmp_path, capsys):
    reference = FeedingCurve.objects.create(name="Référence", is_reference=True)
    FeedingCurveDay.objects.bulk_create(
        FeedingCurveDay(curve=reference, day=d, morning_dose_g=m, evening_dose_g=e)
        for d, (m, e) in enumerate(REFERENCE_CURVE, start=1)
    )
    history_generate(HistorySpec(lots=150, products_per_lot=3, seed=1))

    call_command("optimize_curves", "--report", str(tmp_path / "r"))

    curve = OptimizedCurve.objects.get()
    html = (tmp_path / "r" / "index.html").read_text()
    text = re.sub(r"<[^>]+>", "", html)
    predicted = f"{curve.predicted_rating:.2f}".replace(".", ",")
    assert f"Note prédite: {predicted} (intervalle à 80 % " in text
    assert f"Note prédite: {predicted}." not in text  # no stray full stop
    gain = f"{curve.gain:.2f}".replace(".", ",")
    assert f"Gain prédit par rapport à la courbe actuelle: {gain} (intervalle à 80 % " in text
    assert "Comment le modèle de courbe a été choisi" in html
    for png in ("importance.png", "rating_vs_top.png", "curve.png"):
        assert (tmp_path / "r" / png).read_bytes()[:4] == b"\x89PNG"
