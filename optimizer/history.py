"""Importing historical lots, daily doses, SQAL results and ratings from one CSV file.

The layout is documented in the README ("Importing history") with an example under
optimizer/examples/. The whole file is checked before anything is written; a file with any
error loads nothing, and each error names the line and the column at fault.

History has no live sample flow (no station sent those samples, no worker registered the
products), so the import writes samples directly and products and reviews through the bulk
paths of their services (``traceability.services.products_bulk_register``,
``feedback.services.feedback_bulk_import``). Product ids are taken from the same per-site
daily counter as live products (dated on the lot's feeding end), QR codes are signed like live
ones, imported products are sealed in the ledger, and the lots' review sums are kept true.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db import transaction
from django.utils import timezone

from feedback.models import RATING_FIELDS, ConsumerFeedback
from feedback.services import feedback_bulk_import
from gaveurs.models import FeedingRecord, Gaveur, Lot, Site
from sensors.models import Device, SensorSample
from sensors.rules import GRADES, REJECT, grade_for_score
from traceability.models import ConsumerProduct
from traceability.services import product_build, product_ids_reserve, products_bulk_register

HISTORY_DEVICE_ID = "HISTORY_IMPORT"
DAY_COLUMN = re.compile(r"^day(\d{2})_(morning|evening)_g$")
SITE_CODE = re.compile(r"^[A-Z]{2,5}$")
REQUIRED_COLUMNS = [
    "lot_code",
    "site_code",
    "gaveur_last_name",
    "gaveur_first_name",
    "feeding_start",
    "duck_count",
    "dead_count",
    "day01_morning_g",
    "day01_evening_g",
]
LOT_COLUMNS = [
    "site_code",
    "gaveur_last_name",
    "gaveur_first_name",
    "feeding_start",
    "duck_count",
    "dead_count",
    "itm",
    "mean_final_weight_g",
]
SAMPLE_COLUMNS = [
    "sample_id",
    "fusion_score",
    "fusion_grade",
    "tof_volume_mm3",
    "tof_surface_uniformity",
    "spectral_freshness_index",
    "spectral_fat_quality_index",
    "spectral_oxidation_index",
]
OPTIONAL_COLUMNS = ["itm", "mean_final_weight_g", *SAMPLE_COLUMNS, *RATING_FIELDS, "comment"]


class HistoryImportError(Exception):
    """The file was rejected; `errors` lists "line N, column C: what is wrong"."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass
class _Lot:
    code: str
    line: int
    values: dict[str, object]
    doses: list[tuple[float, float]]
    products: list[dict[str, object]] = field(default_factory=list)


class _Row:
    """Typed access to one CSV line that records errors instead of raising."""

    def __init__(self, line: int, data: dict[str, str], errors: list[str]) -> None:
        self.line, self.data, self.errors = line, data, errors

    def error(self, column: str, message: str) -> None:
        self.errors.append(f"line {self.line}, column {column}: {message}")

    def text(self, column: str, *, required: bool = False, max_length: int = 100) -> str | None:
        value = (self.data.get(column) or "").strip()
        if not value:
            if required:
                self.error(column, "is required")
            return None
        if len(value) > max_length:
            self.error(column, f"is longer than {max_length} characters")
            return None
        return value

    def number(
        self,
        column: str,
        *,
        required: bool = False,
        minimum: float | None = 0,
        maximum: float | None = None,
        integer: bool = False,
    ) -> float | int | None:
        raw = self.text(column, required=required)
        if raw is None:
            return None
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            kind = "a whole number" if integer else "a number (use . for decimals)"
            self.error(column, f"{raw!r} is not {kind}")
            return None
        if value != value or value in (float("inf"), float("-inf")):
            self.error(column, f"{raw!r} is not a finite number")
            return None
        if minimum is not None and value < minimum:
            self.error(column, f"{raw} is below the minimum {minimum:g}")
            return None
        if maximum is not None and value > maximum:
            self.error(column, f"{raw} is above the maximum {maximum:g}")
            return None
        return value

    def day(self, column: str) -> datetime | None:
        raw = self.text(column, required=True)
        if raw is None:
            return None
        try:
            parsed = date.fromisoformat(raw)
        except ValueError:
            self.error(column, f"{raw!r} is not a date in the form YYYY-MM-DD")
            return None
        return timezone.make_aware(datetime.combine(parsed, time(8, 0)))


def history_parse(text: str) -> list[_Lot]:
    """Check the whole file; return its lots or raise HistoryImportError with every error."""
    errors: list[str] = []
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise HistoryImportError(
            ["line 1: the file is empty (a header line is required)"]
        ) from None
    for column in REQUIRED_COLUMNS:
        if column not in header:
            errors.append(f"line 1, column {column}: required column is missing")
    day_columns: dict[int, set[str]] = {}
    for column in header:
        match = DAY_COLUMN.match(column)
        if match:
            day_columns.setdefault(int(match[1]), set()).add(match[2])
        elif column not in REQUIRED_COLUMNS and column not in OPTIONAL_COLUMNS:
            errors.append(f"line 1, column {column}: unknown column")
    seen_header = set()
    for column in header:
        if column in seen_header:
            errors.append(f"line 1, column {column}: the column appears twice")
        seen_header.add(column)
    max_day = max(day_columns, default=0)
    for day in range(1, max_day + 1):
        for meal in ("morning", "evening"):
            if meal not in day_columns.get(day, set()):
                errors.append(f"line 1, column day{day:02d}_{meal}_g: required column is missing")
    if errors:
        raise HistoryImportError(errors)

    lots: dict[str, _Lot] = {}
    sample_lines: dict[str, int] = {}
    row_count = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(f"line {reader.line_num}: unreadable CSV ({exc})")
            break
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        row_count += 1
        if len(cells) != len(header):
            errors.append(f"line {line}: {len(cells)} columns where the header has {len(header)}")
            continue
        row = _Row(line, dict(zip(header, cells, strict=True)), errors)
        code = row.text("lot_code", required=True, max_length=50)
        values: dict[str, object] = {
            "site_code": row.text("site_code", required=True, max_length=5),
            "gaveur_last_name": row.text("gaveur_last_name", required=True, max_length=80),
            "gaveur_first_name": row.text("gaveur_first_name", required=True, max_length=80),
            "feeding_start": row.day("feeding_start"),
            "duck_count": row.number("duck_count", required=True, integer=True),
            "dead_count": row.number("dead_count", required=True, integer=True),
            "itm": row.number("itm"),
            "mean_final_weight_g": row.number("mean_final_weight_g"),
        }
        if values["site_code"] and not SITE_CODE.match(str(values["site_code"])):
            row.error("site_code", "a site code is 2 to 5 capital letters (e.g. LL)")
        if (
            isinstance(values["duck_count"], int)
            and isinstance(values["dead_count"], int)
            and values["dead_count"] > values["duck_count"]
        ):
            row.error("dead_count", "is larger than duck_count")
        doses: list[tuple[float, float]] = []
        ended = False
        for day in range(1, max_day + 1):
            morning_col, evening_col = f"day{day:02d}_morning_g", f"day{day:02d}_evening_g"
            blank = not row.data[morning_col].strip() and not row.data[evening_col].strip()
            if blank:
                ended = True
                continue
            if ended:
                row.error(morning_col, f"day {day} has doses but an earlier day is empty")
                break
            morning = row.number(morning_col, required=True, maximum=5000)
            evening = row.number(evening_col, required=True, maximum=5000)
            doses.append((morning or 0.0, evening or 0.0))
        if not doses:
            row.error("day01_morning_g", "a lot needs the doses of day 1 at least")
        if code is None:
            continue
        if code in lots:
            first = lots[code]
            for column in LOT_COLUMNS:
                if values[column] is not None and values[column] != first.values[column]:
                    row.error(
                        column,
                        f"lot {code} has a different value on line {first.line}",
                    )
            if doses != first.doses:
                row.error("day01_morning_g", f"lot {code} has other doses on line {first.line}")
            lot = first
        else:
            lot = lots[code] = _Lot(code, line, values, doses)

        product: dict[str, object] = {"line": line}
        sample_id = row.text("sample_id", max_length=100)
        sqal = {c: row.text(c) for c in SAMPLE_COLUMNS[1:]}
        ratings = {c: row.text(c) for c in RATING_FIELDS}
        if sample_id is None:
            for column, value in {**sqal, **ratings}.items():
                if value is not None:
                    row.error(column, "is given but sample_id is empty")
            continue
        if sample_id in sample_lines:
            row.error(
                "sample_id", f"{sample_id!r} already appears on line {sample_lines[sample_id]}"
            )
        sample_lines[sample_id] = line
        product["sample_id"] = sample_id
        product["fusion_score"] = row.number("fusion_score", required=True, maximum=1)
        grade = row.text("fusion_grade", max_length=10)
        if grade is not None and grade not in GRADES:
            row.error("fusion_grade", f"{grade!r} is not one of {', '.join(GRADES)}")
        product["fusion_grade"] = grade
        for column in SAMPLE_COLUMNS[2:]:
            product[column] = row.number(column, maximum=None if "volume" in column else 1)
        given = [c for c in RATING_FIELDS if ratings[c] is not None]
        if given and len(given) < len(RATING_FIELDS):
            missing = [c for c in RATING_FIELDS if ratings[c] is None]
            row.error(missing[0], "all five ratings are needed when one is given")
        elif given and _rejected(product):
            row.error("overall_rating", "a REJECT sample yields no product to rate")
        elif given:
            product["ratings"] = {
                c: row.number(c, required=True, minimum=1, maximum=5, integer=True)
                for c in RATING_FIELDS
            }
            product["comment"] = (row.data.get("comment") or "").strip()[:1000]
        lot.products.append(product)

    if not row_count and not errors:
        errors.append("line 2: the file has a header but no data line")
    _check_database(lots, sample_lines, errors)
    if errors:
        raise HistoryImportError(errors)
    return list(lots.values())


def _rejected(product: dict[str, object]) -> bool:
    score, grade = product["fusion_score"], product["fusion_grade"]
    return grade == REJECT or (
        grade is None and score is not None and grade_for_score(score) == REJECT
    )


def _check_database(lots: dict[str, _Lot], samples: dict[str, int], errors: list[str]) -> None:
    for code in Lot.objects.filter(code__in=list(lots)).values_list("code", flat=True):
        errors.append(f"line {lots[code].line}, column lot_code: lot {code} already exists")
    for sample_id in SensorSample.objects.filter(
        device_id=HISTORY_DEVICE_ID, sample_id__in=list(samples)
    ).values_list("sample_id", flat=True):
        errors.append(
            f"line {samples[sample_id]}, column sample_id: {sample_id!r} was already imported"
        )


@transaction.atomic
def history_import(*, text: str, source: str = "") -> dict[str, int]:
    """Load a history CSV: all of it, or nothing (HistoryImportError lists the faults)."""
    lots = history_parse(text)
    device, _ = Device.objects.get_or_create(
        device_id=HISTORY_DEVICE_ID,
        defaults={"name": "Imported history (import_history)", "is_active": False},
    )
    counts = {"lots": 0, "feeding_records": 0, "samples": 0, "products": 0, "feedback": 0}
    products: list[ConsumerProduct] = []
    reviews: list[ConsumerFeedback] = []
    sites: dict[str, Site] = {}
    gaveurs: dict[tuple[str, str, str], Gaveur] = {}
    rated: dict[int, ConsumerFeedback] = {}
    # 1. Lots one by one (each gets its audit-trail record, as a lot saved anywhere else);
    #    their feeding records and samples are gathered and inserted in bulk (2.), which is
    #    what keeps a history of thousands of products quick to load.
    records: list[FeedingRecord] = []
    samples: list[tuple[Lot, str, str, SensorSample]] = []
    for item in lots:
        v = item.values
        code = str(v["site_code"])
        if code not in sites:
            sites[code], _ = Site.objects.get_or_create(code=code, defaults={"name": code})
        site = sites[code]
        key = (code, str(v["gaveur_last_name"]), str(v["gaveur_first_name"]))
        if key not in gaveurs:
            gaveurs[key] = Gaveur.objects.filter(
                site=site, last_name=key[1], first_name=key[2]
            ).first() or Gaveur.objects.create(site=site, last_name=key[1], first_name=key[2])
        start = v["feeding_start"]
        end = start + timedelta(days=len(item.doses))
        lot = Lot.objects.create(
            code=item.code,
            gaveur=gaveurs[key],
            site=site,
            feeding_start=start,
            planned_feeding_end=end,
            duration_days=len(item.doses),
            itm=v["itm"],
            mean_final_weight_g=v["mean_final_weight_g"],
            duck_count=v["duck_count"],
            dead_count=v["dead_count"],
            status=Lot.Status.SLAUGHTERED,
        )
        counts["lots"] += 1
        for day, (morning, evening) in enumerate(item.doses, start=1):
            for meal, dose in (("morning", morning), ("evening", evening)):
                records.append(
                    FeedingRecord(
                        lot=lot, day=day, meal=meal, planned_dose_g=dose, actual_dose_g=dose
                    )
                )
        if not item.products:
            continue
        grades = [
            p["fusion_grade"] or grade_for_score(float(p["fusion_score"])) for p in item.products
        ]
        ids = iter(
            product_ids_reserve(
                site_code=code, day=end.date(), count=sum(g != REJECT for g in grades)
            )
        )
        for product, grade in zip(item.products, grades, strict=True):
            sample = SensorSample(
                time=end,
                device=device,
                sample_id=product["sample_id"],
                lot=lot,
                site_code=code,
                tof_volume_mm3=product["tof_volume_mm3"],
                tof_surface_uniformity=product["tof_surface_uniformity"],
                spectral_freshness_index=product["spectral_freshness_index"],
                spectral_fat_quality_index=product["spectral_fat_quality_index"],
                spectral_oxidation_index=product["spectral_oxidation_index"],
                fusion_score=float(product["fusion_score"]),
                fusion_grade=grade,
                is_compliant=grade != REJECT,
                payload={"source": "import_history", "file": source, "line": product["line"]},
            )
            # A REJECT sample yields no product (and cannot be rated): it takes no id.
            product_id = next(ids) if sample.qualifies_for_product else ""
            samples.append((lot, code, product_id, sample))
            if product_id and "ratings" in product:
                pending = ConsumerFeedback(comment=product["comment"], **product["ratings"])
                reviews.append(pending)
                rated[id(sample)] = pending
    # 2. Bulk inserts (PostgreSQL returns the new ids, which the products need).
    FeedingRecord.objects.bulk_create(records, batch_size=5000)
    counts["feeding_records"] = len(records)
    SensorSample.objects.bulk_create([s for *_, s in samples], batch_size=2000)
    counts["samples"] = len(samples)
    for lot, code, product_id, sample in samples:
        if not product_id:
            continue
        stored = product_build(lot=lot, sample=sample, product_id=product_id, site_code=code)
        products.append(stored)
        if id(sample) in rated:
            rated[id(sample)].product = stored
    # The same bulk paths as every other writer: products are sealed in the ledger, and the
    # lots' review sums (read by the scan page and moderation) are recomputed.
    counts["products"] = products_bulk_register(products=products)
    counts["feedback"] = feedback_bulk_import(reviews=reviews)
    return counts
