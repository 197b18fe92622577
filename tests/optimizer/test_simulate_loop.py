"""simulate_loop: the closed loop raises the true rating of the synthetic consumer."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command

from gaveurs.models import Lot
from optimizer.models import OptimizedCurve
from tests.support.integrity import assert_integrity

pytestmark = pytest.mark.django_db


def test_the_loop_improves_the_true_rating_generation_after_generation(capsys):
    call_command("simulate_loop", "--generations", "3", "--lots", "100", "--products-per-lot", "3")

    out = capsys.readouterr().out
    ratings = [float(x) for x in re.findall(r"\d\.\d\d", out.splitlines()[-1])]
    assert len(ratings) == 3
    assert ratings[-1] > ratings[0] + 0.5, out
    assert OptimizedCurve.objects.filter(status="approved").count() == 1
    assert OptimizedCurve.objects.filter(status="retired").count() >= 1
    # the lots of the last generation followed the curve approved after the previous one
    last = Lot.objects.filter(code__contains="G02-").first()
    assert last.feeding_curve.optimized_from.site.code == "SIM"
    assert not Lot.objects.exclude(site__code="SIM").exists()
    assert_integrity()
