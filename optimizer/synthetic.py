"""A synthetic consumer whose taste depends on the feeding curve, and synthetic history.

Used by `simulate_loop`, the tests and the benchmark. The taste is known, so one can check
that a recommended curve is truly better, not only predicted better.

Histories are written in bulk: lots, feeding records and samples straight into their tables
(a simulated history has no live sample flow, like an imported one), products and reviews
through the bulk paths of their services, so they are sealed and counted like live ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db import transaction
from django.utils import timezone

from feedback.models import ConsumerFeedback
from feedback.services import feedback_bulk_import
from gaveurs.models import FeedingRecord, Gaveur, Lot, Site
from sensors.models import Device, SensorSample
from sensors.rules import grade_for_score
from traceability.services import product_build, product_ids_reserve, products_bulk_register

REFERENCE_CURVE: list[tuple[float, float]] = [
    (round(0.45 * (360 + 50 * t), 1), round(0.55 * (360 + 50 * t), 1)) for t in range(11)
]


@dataclass(frozen=True)
class SyntheticTaste:
    """Expected overall rating of a curve: likes ~8.6 kg in total, a late finish, even meals."""

    target_total_g: float = 8600.0
    total_width_g: float = 1500.0
    target_late_share: float = 0.45
    noise: float = 0.7

    def expected(self, curve: list[tuple[float, float]] | np.ndarray) -> float:
        doses = np.asarray(curve, dtype=float)
        daily = doses.sum(axis=1)
        total = daily.sum()
        days = len(daily)
        late = daily[int(np.ceil(days * 2 / 3)) :].sum() / max(total, 1e-9)
        morning_share = doses[:, 0].sum() / max(total, 1e-9)
        score = (
            2.6
            + 1.5 * np.exp(-(((total - self.target_total_g) / self.total_width_g) ** 2))
            + 0.6 * np.exp(-(((late - self.target_late_share) / 0.06) ** 2))
            - 0.25 * abs(morning_share - 0.5) / 0.05
        )
        return float(np.clip(score, 1.0, 5.0))

    def expected_rating(self, curve: list[tuple[float, float]] | np.ndarray) -> float:
        """The mean of the whole-number ratings consumers give: E[clip(round(expected +
        noise), 1, 5)], what a model of mean ratings can learn (near 5 it is below
        `expected`, as ratings cannot exceed 5)."""
        from scipy.special import ndtr

        mu = self.expected(curve)
        return float(1.0 + sum(ndtr((mu - k - 0.5) / self.noise) for k in range(1, 5)))

    def expected_ratings(self, doses: np.ndarray, durations: np.ndarray) -> np.ndarray:
        """`expected_rating` of padded curves (n, days, 2), vectorised: an objective for
        curve_search (zeros after each duration)."""
        from scipy.special import ndtr

        daily = doses.sum(axis=2)
        total = daily.sum(axis=1)
        safe = np.maximum(total, 1e-9)
        index = np.arange(doses.shape[1])[None, :]
        late_mask = (index >= np.ceil(durations[:, None] * 2 / 3)) & (index < durations[:, None])
        late = (daily * late_mask).sum(axis=1) / safe
        morning_share = doses[:, :, 0].sum(axis=1) / safe
        score = (
            2.6
            + 1.5 * np.exp(-(((total - self.target_total_g) / self.total_width_g) ** 2))
            + 0.6 * np.exp(-(((late - self.target_late_share) / 0.06) ** 2))
            - 0.25 * np.abs(morning_share - 0.5) / 0.05
        )
        mu = np.clip(score, 1.0, 5.0)
        return 1.0 + sum(ndtr((mu - k - 0.5) / self.noise) for k in range(1, 5))

    def ratings(self, curve, count: int, rng: np.random.Generator) -> np.ndarray:
        expected = self.expected(curve)
        return np.clip(np.rint(expected + rng.normal(0, self.noise, count)), 1, 5).astype(int)


def curve_vary(
    base: list[tuple[float, float]], rng: np.random.Generator, spread: float = 1.0
) -> list[tuple[float, float]]:
    """A producer's variation on a curve: start, slope, duration and meal split change."""
    base_arr = np.asarray(base, dtype=float)
    daily = base_arr.sum(axis=1)
    days = int(np.clip(len(daily) + (rng.integers(-2, 3) if spread else 0), 8, 18))
    start = daily[0] * (1 + rng.normal(0, 0.12 * spread))
    slope = (daily[-1] - daily[0]) / max(len(daily) - 1, 1) * (1 + rng.normal(0, 0.25 * spread))
    bend = rng.normal(0, 0.15 * spread)  # >0: steeper at the end
    t = np.arange(days) / max(days - 1, 1)
    new_daily = start + slope * (days - 1) * (t + bend * (t**2 - t))
    new_daily = np.maximum.accumulate(np.maximum(new_daily, 50.0))
    share = np.clip(base_arr[:, 0].sum() / daily.sum() + rng.normal(0, 0.03 * spread), 0.3, 0.7)
    return [(round(d * share, 1), round(d * (1 - share), 1)) for d in new_daily]


@dataclass
class HistorySpec:
    site_code: str = "SY"
    lots: int = 200
    products_per_lot: int = 4
    reviewed_share: float = 1.0
    pure_noise: bool = False
    spread: float = 1.0
    seed: int = 0
    code_prefix: str = "SY"
    start: datetime | None = None


@transaction.atomic
def history_generate(
    spec: HistorySpec,
    *,
    taste: SyntheticTaste | None = None,
    base_curve: list[tuple[float, float]] | None = None,
    feeding_curve_id: int | None = None,
) -> dict[str, int]:
    """Write `spec.lots` lots with varied curves, products, samples and (some) reviews."""
    taste = taste or SyntheticTaste()
    base_curve = base_curve or REFERENCE_CURVE
    rng = np.random.default_rng(spec.seed)
    site, _ = Site.objects.get_or_create(
        code=spec.site_code, defaults={"name": f"Synthetic {spec.site_code}"}
    )
    gaveur = Gaveur.objects.filter(site=site).order_by("pk").first() or Gaveur.objects.create(
        site=site, last_name="Synthétique", first_name="Gaveur"
    )
    device, _ = Device.objects.get_or_create(
        device_id=f"SIM_{spec.site_code}", defaults={"site": site, "name": "synthetic history"}
    )
    start = spec.start or timezone.now() - timedelta(days=60)

    curves = [curve_vary(base_curve, rng, spec.spread) for _ in range(spec.lots)]
    lots = []
    for i, curve in enumerate(curves):
        total = sum(m + e for m, e in curve)
        duck_count = 200
        lots.append(
            Lot(
                code=f"{spec.code_prefix}{i:06d}",
                gaveur=gaveur,
                site=site,
                feeding_start=start,
                planned_feeding_end=start + timedelta(days=len(curve)),
                duration_days=len(curve),
                itm=round(float(total / 60 + rng.normal(0, 6)), 2),
                mean_final_weight_g=round(float(5200 + total * 0.3 + rng.normal(0, 150)), 1),
                duck_count=duck_count,
                dead_count=int(min(duck_count, rng.poisson(2 + max(total - 8000, 0) / 800))),
                status=Lot.Status.SLAUGHTERED,
                feeding_curve_id=feeding_curve_id,
            )
        )
    Lot.objects.bulk_create(lots, batch_size=2000)

    records = []
    for lot, curve in zip(lots, curves, strict=True):
        for day, (morning, evening) in enumerate(curve, start=1):
            records.append(
                FeedingRecord(
                    lot=lot, day=day, meal="morning", planned_dose_g=morning, actual_dose_g=morning
                )
            )
            records.append(
                FeedingRecord(
                    lot=lot, day=day, meal="evening", planned_dose_g=evening, actual_dose_g=evening
                )
            )
    FeedingRecord.objects.bulk_create(records, batch_size=5000)

    n_products = spec.lots * spec.products_per_lot
    day = (start + timedelta(days=20)).date()
    product_ids = product_ids_reserve(site_code=site.code, day=day, count=n_products)
    samples, products, ratings_per_lot = [], [], []
    k = 0
    for lot, curve in zip(lots, curves, strict=True):
        if spec.pure_noise:
            ratings = rng.integers(1, 6, spec.products_per_lot)
        else:
            ratings = taste.ratings(curve, spec.products_per_lot, rng)
        ratings_per_lot.append(ratings)
        for rating in ratings:
            score = float(np.clip(0.55 + 0.08 * rating + rng.normal(0, 0.05), 0.46, 1.0))
            sample_id = f"{device.device_id}_{lot.code}_{k:07d}"
            samples.append(
                SensorSample(
                    time=start + timedelta(days=len(curve) + 1),
                    device=device,
                    sample_id=sample_id,
                    lot=lot,
                    site_code=site.code,
                    tof_volume_mm3=float(90000 + lot.mean_final_weight_g * 3 + rng.normal(0, 4000)),
                    tof_surface_uniformity=float(np.clip(rng.normal(0.9, 0.04), 0, 1)),
                    spectral_freshness_index=float(np.clip(rng.normal(0.85, 0.05), 0, 1)),
                    spectral_fat_quality_index=float(
                        np.clip(0.6 + 0.06 * rating + rng.normal(0, 0.05), 0, 1)
                    ),
                    spectral_oxidation_index=float(np.clip(rng.normal(0.1, 0.03), 0, 1)),
                    fusion_score=score,
                    fusion_grade=grade_for_score(score),
                    is_compliant=True,
                    payload={"source": "synthetic"},
                )
            )
            k += 1
    SensorSample.objects.bulk_create(samples, batch_size=5000)
    k = 0
    for lot in lots:
        for _ in range(spec.products_per_lot):
            sample = samples[k]
            pid = product_ids[k]
            products.append(
                product_build(lot=lot, sample=sample, product_id=pid, site_code=site.code)
            )
            k += 1
    products_bulk_register(products=products)
    feedback = []
    k = 0
    for ratings in ratings_per_lot:
        for rating in ratings:
            if rng.random() < spec.reviewed_share:
                r = int(rating)
                feedback.append(
                    ConsumerFeedback(
                        product=products[k],
                        overall_rating=r,
                        taste_rating=int(np.clip(r + rng.integers(-1, 2), 1, 5)),
                        texture_rating=int(np.clip(r + rng.integers(-1, 2), 1, 5)),
                        appearance_rating=int(np.clip(r + rng.integers(-1, 2), 1, 5)),
                        value_rating=int(np.clip(r + rng.integers(-1, 2), 1, 5)),
                    )
                )
            k += 1
    feedback_bulk_import(reviews=feedback)
    return {"lots": len(lots), "products": len(products), "reviews": len(feedback)}
