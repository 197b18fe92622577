"""manage.py import_history: the documented CSV loads; a malformed file loads nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from feedback.models import ConsumerFeedback
from gaveurs.models import FeedingRecord, Lot
from optimizer.dataset import dataset_build
from sensors.models import SensorSample
from tests.support.integrity import assert_integrity
from traceability.models import ConsumerProduct
from traceability.services import product_signature_is_valid

pytestmark = pytest.mark.django_db

EXAMPLE = Path(__file__).resolve().parents[2] / "optimizer" / "examples" / "history_example.csv"
HEADER = (
    "lot_code,site_code,gaveur_last_name,gaveur_first_name,feeding_start,duck_count,dead_count,"
    "day01_morning_g,day01_evening_g,day02_morning_g,day02_evening_g,sample_id,fusion_score,"
    "overall_rating,taste_rating,texture_rating,appearance_rating,value_rating"
)
GOOD_LINE = "LL0001,LL,Dupont,Pierre,2025-03-01,200,2,180,200,210,230,S1,0.82,4,4,4,5,3"


def _write(tmp_path, *lines: str) -> str:
    path = tmp_path / "history.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _nothing_loaded() -> bool:
    return not (
        Lot.objects.exists()
        or SensorSample.objects.exists()
        or ConsumerProduct.objects.exists()
        or ConsumerFeedback.objects.exists()
    )


def test_the_example_file_of_the_readme_loads(capsys):
    call_command("import_history", str(EXAMPLE))

    out = capsys.readouterr().out
    assert "Imported 4 lots" in out
    assert Lot.objects.count() == 4
    assert ConsumerProduct.objects.count() == 12
    assert ConsumerFeedback.objects.count() == 8
    lot = Lot.objects.get(code="LL2501002")
    assert lot.duration_days == 12
    assert lot.feeding_records.count() == 24
    assert FeedingRecord.objects.get(lot=lot, day=1, meal="morning").planned_dose_g == 180.0
    product = ConsumerProduct.objects.filter(lot=lot).first()
    assert product_signature_is_valid(product)
    assert product.product_id.startswith("FG_LL_20250218_")
    assert lot.review_stats.review_count == 2
    data = dataset_build()
    assert data.counts["rows_used"] == 8
    assert data.counts["products_without_review"] == 4
    assert_integrity()


def test_importing_the_same_file_twice_is_refused_and_loads_nothing_more():
    call_command("import_history", str(EXAMPLE))

    with pytest.raises(CommandError) as error:
        call_command("import_history", str(EXAMPLE))

    assert "line 2, column lot_code: lot LL2501001 already exists" in str(error.value)
    assert Lot.objects.count() == 4


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        (
            "LL0002,LL,Dupont,Pierre,2025-03-01,200,2,180,abc,210,230,S2,0.82,4,4,4,5,3",
            "line 3, column day01_evening_g: 'abc' is not a number",
        ),
        (
            "LL0002,LL,Dupont,Pierre,01/03/2025,200,2,180,200,210,230,S2,0.82,4,4,4,5,3",
            "line 3, column feeding_start: '01/03/2025' is not a date in the form YYYY-MM-DD",
        ),
        (
            "LL0002,LL,Dupont,Pierre,2025-03-01,200,2,180,200,210,230,S2,0.82,6,4,4,5,3",
            "line 3, column overall_rating: 6 is above the maximum 5",
        ),
        (
            "LL0002,LL,Dupont,Pierre,2025-03-01,200,2,180,200,210,230,S2,1.4,4,4,4,5,3",
            "line 3, column fusion_score: 1.4 is above the maximum 1",
        ),
        (
            "LL0002,LL,Dupont,Pierre,2025-03-01,200,201,180,200,210,230,S2,0.8,4,4,4,5,3",
            "line 3, column dead_count: is larger than duck_count",
        ),
        (
            "LL0002,LL,Dupont,Pierre,2025-03-01,200,2,180,200,210,230,S1,0.8,4,4,4,5,3",
            "line 3, column sample_id: 'S1' already appears on line 2",
        ),
        (
            "LL0001,LL,Dupont,Pierre,2025-03-02,200,2,180,200,210,230,S2,0.8,4,4,4,5,3",
            "line 3, column feeding_start: lot LL0001 has a different value on line 2",
        ),
        (
            "LL0002,LL,Dupont,Pierre,2025-03-01,200,2,180,200,210,230,S2,0.8,4,,4,5,3",
            "line 3, column taste_rating: all five ratings are needed when one is given",
        ),
        (
            "LL0002,LL,Dupont,Pierre,2025-03-01,200,2,,,210,230,S2,0.8,4,4,4,5,3",
            "line 3, column day02_morning_g: day 2 has doses but an earlier day is empty",
        ),
        (
            "LL0002,ll,Dupont,Pierre,2025-03-01,200,2,180,200,210,230,S2,0.8,4,4,4,5,3",
            "line 3, column site_code: a site code is 2 to 5 capital letters",
        ),
        ("LL0002,LL,Dupont", "line 3: 3 columns where the header has 18"),
    ],
)
def test_a_malformed_line_names_line_and_column_and_loads_nothing(tmp_path, bad_line, expected):
    path = _write(tmp_path, HEADER, GOOD_LINE, bad_line)

    with pytest.raises(CommandError) as error:
        call_command("import_history", path)

    assert expected in str(error.value)
    assert "nothing was loaded" in str(error.value)
    assert _nothing_loaded()


def test_a_missing_or_unknown_column_is_reported_on_the_header_line(tmp_path):
    header = HEADER.replace("duck_count", "ducks")
    path = _write(tmp_path, header, GOOD_LINE)

    with pytest.raises(CommandError) as error:
        call_command("import_history", path)

    assert "line 1, column duck_count: required column is missing" in str(error.value)
    assert "line 1, column ducks: unknown column" in str(error.value)
    assert _nothing_loaded()


def test_every_error_of_the_file_is_listed_at_once(tmp_path):
    path = _write(
        tmp_path,
        HEADER,
        GOOD_LINE.replace("0.82", "x"),
        GOOD_LINE.replace("LL0001", "LL0002").replace("S1", "S2").replace(",200,2,", ",-5,2,"),
    )

    with pytest.raises(CommandError) as error:
        call_command("import_history", path)

    assert "line 2, column fusion_score" in str(error.value)
    assert "line 3, column duck_count: -5 is below the minimum 0" in str(error.value)


def test_an_empty_file_and_a_missing_file_are_refused(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")

    with pytest.raises(CommandError, match="line 1: the file is empty"):
        call_command("import_history", str(empty))
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_history", str(tmp_path / "missing.csv"))


def test_imported_products_are_sealed_in_the_ledger():
    from io import StringIO

    from traceability.ledger import ledger_verify

    call_command("import_history", str(EXAMPLE), stdout=StringIO())

    products = ConsumerProduct.objects.all()
    assert products.exists()
    assert not products.filter(ledger_leaf__isnull=True).exists()
    assert all(p.blockchain_hash for p in products)
    verification = ledger_verify()
    assert verification.ok, verification.findings
    assert_integrity()


def test_a_rated_reject_sample_is_refused_since_it_yields_no_product(tmp_path):
    path = _write(tmp_path, HEADER, GOOD_LINE.replace(",0.82,", ",0.30,"))

    with pytest.raises(CommandError, match="line 2, column overall_rating: a REJECT sample"):
        call_command("import_history", path)
    assert _nothing_loaded()


def test_a_reject_sample_is_imported_without_a_product(tmp_path):
    line = GOOD_LINE.replace(",0.82,4,4,4,5,3", ",0.30,,,,,")
    call_command("import_history", _write(tmp_path, HEADER, line))

    assert SensorSample.objects.get().fusion_grade == "REJECT"
    assert not ConsumerProduct.objects.exists()
    assert_integrity()
