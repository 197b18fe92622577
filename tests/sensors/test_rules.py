"""sensors.rules, the Python mirror of the grade and eligibility rules, agrees with PL/pgSQL."""

from __future__ import annotations

import itertools
import math

import pytest
from django.db import connection

from sensors.rules import GRADE_CUTOFFS, GRADES, grade_for_score, product_eligible
from tests.factories import make_device, make_lot, make_sample
from traceability.services import ProductRegistrationError, product_register

pytestmark = pytest.mark.django_db


def score_grid() -> list[float]:
    grid = [n / 1000 for n in range(1001)]
    for cutoff, _ in GRADE_CUTOFFS:  # each cut-off, and the floats on either side of it
        grid += [cutoff, math.nextafter(cutoff, 0.0), math.nextafter(cutoff, 1.0)]
    return grid


def test_the_grade_of_every_score_on_a_grid_is_the_one_postgresql_gives():
    scores = score_grid()
    with connection.cursor() as cursor:
        cursor.execute("SELECT gt_fusion_grade(s) FROM unnest(%s::float8[]) AS s", [scores])
        in_sql = [row[0] for row in cursor.fetchall()]

    assert in_sql == [grade_for_score(s) for s in scores]
    assert set(in_sql) == set(GRADES)


ELIGIBILITY_GRID = list(itertools.product([True, False], GRADES, [True, False]))


def test_eligibility_agrees_with_the_sql_function_on_every_combination():
    cases = [
        (compliant, grade, 7 if has_lot else None) for compliant, grade, has_lot in ELIGIBILITY_GRID
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT gt_product_eligible(c, g, l) "
            "FROM unnest(%s::boolean[], %s::varchar[], %s::bigint[]) AS t(c, g, l)",
            [[c[0] for c in cases], [c[1] for c in cases], [c[2] for c in cases]],
        )
        in_sql = [row[0] for row in cursor.fetchall()]

    assert in_sql == [
        product_eligible(is_compliant=c, fusion_grade=g, lot_id=lot) for c, g, lot in cases
    ]


def test_register_consumer_product_accepts_exactly_the_samples_the_mirror_calls_eligible():
    lot = make_lot()
    device = make_device()
    for n, (compliant, grade, has_lot) in enumerate(ELIGIBILITY_GRID):
        sample = make_sample(
            device=device,
            sample_id=f"GRID_{n:02d}",
            lot=lot if has_lot else None,
            is_compliant=compliant,
            fusion_grade=grade,
        )
        expected = product_eligible(
            is_compliant=compliant, fusion_grade=grade, lot_id=sample.lot_id
        )
        try:
            product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
            registered = True
        except ProductRegistrationError as exc:
            assert exc.code in ("sample_not_eligible", "sample_not_in_lot"), exc.code
            registered = False
        assert registered == expected, (compliant, grade, has_lot)
