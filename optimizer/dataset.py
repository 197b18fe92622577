"""The training data of the optimizer: one row per reviewed product (pandas).

1. Products of the scope are read with their lot, their SQAL sample and their feedback
   (a product has one sample and at most one review: one-to-one joins, so one row each).
2. Each lot's planned curve comes from its daily feeding records (planned dose per day and
   meal), or, when it has none, from the FeedingCurve it follows.
3. Lot features (duration, total maize, ITM, mean final weight, mortality, the curve) are
   computed once per lot and merged onto the products by lot id.
4. Products without a (visible) review are counted, then left out.

Imported only by the optimizer's commands and services, never by web code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from feedback.models import ConsumerFeedback
from gaveurs.models import FeedingCurveDay, FeedingRecord, Lot
from traceability.models import ConsumerProduct

SQAL_COLUMNS = [
    "fusion_score",
    "tof_volume_mm3",
    "tof_surface_uniformity",
    "spectral_freshness_index",
    "spectral_fat_quality_index",
    "spectral_oxidation_index",
]
PRODUCTION_COLUMNS = [
    "duration_days",
    "total_maize_g",
    "itm",
    "mean_final_weight_g",
    "mortality",
    "peak_daily_g",
    "late_share",
]
RATING_COLUMNS = [
    "overall_rating",
    "taste_rating",
    "texture_rating",
    "appearance_rating",
    "value_rating",
]
SHAPE_COLUMNS = [
    "duration_days",
    "total_planned_g",
    "start_daily_g",
    "phase1_daily_g",
    "phase2_daily_g",
    "phase3_daily_g",
    "peak_daily_g",
    "late_share",
    "finish_share",
    "roughness_g",
    "max_step_g",
    "morning_share",
]
# The few decisions that describe a curve to a producer: what the smooth models see.
COMPACT_COLUMNS = [
    "duration_days",
    "total_planned_g",
    "start_daily_g",
    "late_share",
    "finish_share",
    "roughness_g",
    "morning_share",
]


def curve_feature_names(feature_days: int) -> list[str]:
    return (
        [f"morning_d{d:02d}" for d in range(1, feature_days + 1)]
        + [f"evening_d{d:02d}" for d in range(1, feature_days + 1)]
        + SHAPE_COLUMNS
    )


def curve_shape(doses: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Shape of each curve as a producer describes it (columns: SHAPE_COLUMNS).

    Total maize, duration, the daily dose at the start, the mean daily dose of each third of
    the feeding (phases), the peak, the share given in the last third and in the last four
    days (late loading), the
    ramp's roughness (root mean square of the day-to-day change of the daily increase, 0 for
    a straight ramp), its largest daily rise, and the morning meal's share.
    `doses` is (n, feature_days, 2) with zeros after each curve's duration.
    """
    n, feature_days, _ = doses.shape
    daily = doses.sum(axis=2)
    total = daily.sum(axis=1)
    safe_total = np.where(total > 0, total, 1.0)
    durations = durations.astype(float)
    safe_days = np.maximum(durations, 1.0)
    day_index = np.arange(feature_days)[None, :]
    active = day_index < durations[:, None]
    # Third of the feeding each day belongs to (0, 1, 2), by its position in the curve.
    phase = np.floor(3 * day_index / safe_days[:, None]).clip(0, 2)
    phases = []
    for k in range(3):
        in_phase = active & (phase == k)
        count = np.maximum(in_phase.sum(axis=1), 1)
        phases.append((daily * in_phase).sum(axis=1) / count)
    late = day_index >= np.ceil(durations[:, None] * 2 / 3)
    late_share = (daily * late * active).sum(axis=1) / safe_total
    finish = (day_index >= durations[:, None] - 4) & active
    finish_share = (daily * finish).sum(axis=1) / safe_total
    morning_share = doses[:, :, 0].sum(axis=1) / safe_total
    rise = np.diff(daily, axis=1)
    rise_active = (day_index[:, 1:] < durations[:, None]) & active[:, 1:]
    max_step = np.where(rise_active, rise, -np.inf).max(axis=1, initial=-np.inf)
    max_step = np.where(np.isfinite(max_step), max_step, 0.0)
    bend = np.diff(daily, n=2, axis=1)
    bend_active = day_index[:, 2:] < durations[:, None]
    bend_count = np.maximum(bend_active.sum(axis=1), 1)
    roughness = np.sqrt((bend**2 * bend_active).sum(axis=1) / bend_count)
    return np.column_stack(
        [
            durations,
            total,
            daily[:, 0],
            phases[0],
            phases[1],
            phases[2],
            daily.max(axis=1),
            late_share,
            finish_share,
            roughness,
            max_step,
            morning_share,
        ]
    )


def curve_features(doses: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Feature matrix of curves: per-day doses (0 after the end) and the shape (SHAPE_COLUMNS).

    `doses` is (n, feature_days, 2) with zeros after each curve's duration.
    """
    return np.hstack([doses[:, :, 0], doses[:, :, 1], curve_shape(doses, durations)])


@dataclass
class Dataset:
    rows: pd.DataFrame  # one row per reviewed product
    lots: pd.DataFrame  # one row per lot with a curve and at least one reviewed product
    curves: np.ndarray  # (len(lots), feature_days, 2), aligned with `lots`
    feature_days: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def curve_feature_names(self) -> list[str]:
        return curve_feature_names(self.feature_days)

    def lot_curve_features(self) -> np.ndarray:
        return curve_features(self.curves, self.lots["curve_days"].to_numpy())


def _lot_curves(lot_ids: list[int]) -> dict[int, dict[int, list[float]]]:
    """{lot_id: {day: [morning, evening, actual_total_or_nan]}} from records, else curves."""
    curves: dict[int, dict[int, list[float]]] = {}
    records = FeedingRecord.objects.filter(lot_id__in=lot_ids).values_list(
        "lot_id", "day", "meal", "planned_dose_g", "actual_dose_g"
    )
    for lot_id, day, meal, planned, actual in records.iterator(chunk_size=20000):
        slot = curves.setdefault(lot_id, {}).setdefault(day, [0.0, 0.0, 0.0, 0.0])
        index = 0 if meal == FeedingRecord.Meal.MORNING else 1
        slot[index] = planned
        slot[2 + index] = planned if actual is None else actual
    missing = [lot_id for lot_id in lot_ids if lot_id not in curves]
    if missing:
        followed = dict(
            Lot.objects.filter(id__in=missing, feeding_curve__isnull=False).values_list(
                "id", "feeding_curve_id"
            )
        )
        by_curve: dict[int, dict[int, list[float]]] = {}
        for curve_id, day, morning, evening in FeedingCurveDay.objects.filter(
            curve_id__in=set(followed.values())
        ).values_list("curve_id", "day", "morning_dose_g", "evening_dose_g"):
            by_curve.setdefault(curve_id, {})[day] = [morning, evening, morning, evening]
        for lot_id, curve_id in followed.items():
            if curve_id in by_curve:
                curves[lot_id] = by_curve[curve_id]
    return curves


def dataset_build(
    *, site_code: str | None = None, gaveur_id: int | None = None, feature_days: int = 0
) -> Dataset:
    """Join products, lots, feeding curves, SQAL samples and feedback (see the module doc)."""
    products = ConsumerProduct.objects.all()
    if site_code:
        products = products.filter(lot__site__code=site_code)
    if gaveur_id:
        products = products.filter(lot__gaveur_id=gaveur_id)
    product_columns = [
        "id",
        "sqal_sample_id",
        "lot_id",
        "lot__site__code",
        "lot__gaveur_id",
        *(f"sample__{c}" for c in SQAL_COLUMNS),
    ]
    frame = pd.DataFrame.from_records(
        list(products.values_list(*product_columns).iterator(chunk_size=20000)),
        columns=["product_pk", "sample_key", "lot_id", "site_code", "gaveur_id", *SQAL_COLUMNS],
    )
    products_total = len(frame)
    feedback = pd.DataFrame.from_records(
        list(
            ConsumerFeedback.objects.filter(is_hidden=False, product_id__in=products.values("id"))
            .values_list("product_id", *RATING_COLUMNS)
            .iterator(chunk_size=20000)
        ),
        columns=["product_pk", *RATING_COLUMNS],
    )
    rows = frame.merge(feedback, on="product_pk", how="inner", validate="one_to_one")

    lot_ids = sorted(rows["lot_id"].unique().tolist())
    lot_frame = pd.DataFrame.from_records(
        list(
            Lot.objects.filter(id__in=lot_ids)
            .order_by("code")
            .values_list(
                "id",
                "code",
                "site__code",
                "duration_days",
                "itm",
                "mean_final_weight_g",
                "duck_count",
                "dead_count",
                "feeding_curve_id",
            )
        ),
        columns=[
            "lot_id",
            "lot_code",
            "site_code",
            "lot_duration_days",
            "itm",
            "mean_final_weight_g",
            "duck_count",
            "dead_count",
            "feeding_curve_id",
        ],
    )
    lot_frame["mortality"] = np.where(
        lot_frame["duck_count"] > 0,
        lot_frame["dead_count"] / lot_frame["duck_count"].where(lot_frame["duck_count"] > 0, 1),
        np.nan,
    )

    per_lot = _lot_curves(lot_ids)
    observed_days = max((max(days) for days in per_lot.values()), default=0)
    feature_days = max(feature_days, observed_days)
    with_curve = [lot_id for lot_id in lot_frame["lot_id"].tolist() if lot_id in per_lot]
    lot_frame = lot_frame.set_index("lot_id").loc[with_curve].reset_index()
    curves = np.zeros((len(with_curve), feature_days, 2))
    curve_days = np.zeros(len(with_curve), dtype=int)
    actual_total = np.zeros(len(with_curve))
    for i, lot_id in enumerate(with_curve):
        days = per_lot[lot_id]
        for day, (morning, evening, actual_m, actual_e) in days.items():
            curves[i, day - 1] = (morning, evening)
            actual_total[i] += actual_m + actual_e
        curve_days[i] = max(days)
    lot_frame["curve_days"] = curve_days
    lot_frame["duration_days"] = (
        lot_frame["lot_duration_days"].fillna(lot_frame["curve_days"]).astype(float)
    )
    lot_frame["total_maize_g"] = actual_total
    shape = curve_shape(curves, curve_days)
    for j, name in enumerate(SHAPE_COLUMNS):
        if name != "duration_days":
            lot_frame[name] = shape[:, j]

    reviewed_products = len(rows)
    rows = rows.merge(
        lot_frame.drop(columns=["lot_duration_days", "feeding_curve_id", "site_code"]),
        on="lot_id",
        how="inner",
        validate="many_to_one",
    )
    review_counts = rows.groupby("lot_id")["overall_rating"].agg(["mean", "count"])
    lot_frame = lot_frame.join(review_counts, on="lot_id")
    lot_frame = lot_frame.rename(columns={"mean": "mean_rating", "count": "reviews"})
    counts = {
        "products_total": products_total,
        "products_reviewed": reviewed_products,
        "products_without_review": products_total - reviewed_products,
        "products_without_curve": reviewed_products - len(rows),
        "rows_used": len(rows),
        "lots_used": len(lot_frame),
    }
    # Same data, same order, whatever order the database returns rows in (and whatever ids
    # a re-import gave them): lots by code, products by lot and sample id.
    rows = rows.sort_values(["lot_code", "sample_key"], kind="stable")
    return Dataset(
        rows=rows.reset_index(drop=True),
        lots=lot_frame.reset_index(drop=True),
        curves=curves,
        feature_days=feature_days,
        counts=counts,
    )
