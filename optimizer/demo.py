"""Realistic, deterministic demo data: sites, producers, lots with rising daily doses, SQAL samples
of every grade, the products registered for the compliant ones, and consumer ratings.

The ratings follow a hidden taste (smooth dose ramps, moderate final dose, high fusion score) plus
noise, so the optimizer has a real signal to find.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import transaction

from feedback.services import feedback_submit
from gaveurs.models import FeedingCurve, FeedingCurveDay, FeedingRecord, Gaveur, Lot, Site
from sensors.models import Device, SensorSample
from sensors.rules import REJECT, grade_for_score
from traceability.services import product_register

SITES = [
    ("LL", "Landes — Labouheyre", "Nouvelle-Aquitaine"),
    ("MG", "Gers — Mauvezin", "Occitanie"),
    ("PG", "Périgord — Sarlat", "Nouvelle-Aquitaine"),
]
PRODUCERS = [
    ("Martin", "Jean"),
    ("Dubos", "Marie"),
    ("Lafitte", "Pierre"),
    ("Castaing", "Hélène"),
    ("Barrère", "Louis"),
    ("Ducasse", "Anne"),
]
ANCHOR = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


def reference_doses(duration: int) -> list[tuple[float, float]]:
    """A classic gavage ramp: ~190 g per meal on day 1 rising to ~480 g on the last day."""
    doses = []
    for day in range(1, duration + 1):
        total = 380 + (960 - 380) * (day - 1) / max(duration - 1, 1)
        doses.append((round(total * 0.45, 1), round(total * 0.55, 1)))
    return doses


@dataclass
class DemoSummary:
    sites: int
    lots: int
    samples: int
    products: int
    reviews: int


def _matrix(rng: random.Random, centre: float, spread: float) -> list[list[float]]:
    return [[round(centre + rng.uniform(-spread, spread), 2) for _ in range(8)] for _ in range(8)]


def _sample_fields(rng: random.Random, quality: float) -> dict:
    score = min(max(rng.gauss(quality, 0.1), 0.2), 0.99)
    grade = grade_for_score(score)
    compliant = grade != REJECT and not (grade == "C" and rng.random() < 0.3)
    freshness = round(min(1.0, max(0.0, score + rng.uniform(-0.08, 0.08))), 3)
    return {
        "fusion_score": round(score, 4),
        "fusion_grade": grade,
        "is_compliant": compliant,
        "tof_volume_mm3": round(rng.uniform(550_000, 1_150_000), 1),
        "tof_surface_uniformity": round(min(0.99, max(0.3, score + rng.uniform(-0.1, 0.05))), 3),
        "tof_quality_score": round(min(1.0, score + rng.uniform(-0.1, 0.1)), 3),
        "tof_grade": grade,
        "spectral_freshness_index": freshness,
        "spectral_fat_quality_index": round(min(1.0, score + rng.uniform(-0.1, 0.1)), 3),
        "spectral_oxidation_index": round(max(0.0, 1 - score + rng.uniform(-0.05, 0.1)), 3),
        "spectral_quality_score": round(min(1.0, score + rng.uniform(-0.05, 0.05)), 3),
        "spectral_grade": grade,
        "distance_matrix": _matrix(rng, 60, 25),
        "reflectance_matrix": _matrix(rng, 150, 20),
        "amplitude_matrix": _matrix(rng, 100, 15),
        "ambient_matrix": _matrix(rng, 5, 2),
        "status_matrix": [[5.0] * 8 for _ in range(8)],
        "spectral_channels": [float(rng.randint(800, 9000)) for _ in range(10)],
        "firmware_version": "1.0.0",
        "temperature_c": round(rng.uniform(18, 22), 2),
        "humidity_percent": round(rng.uniform(40, 55), 1),
    }


@transaction.atomic
def seed_demo(*, seed: int = 42, lots_per_site: int = 8, samples_per_lot: int = 16) -> DemoSummary:
    """Create the demo data set. Same seed, same data (product ids carry the day they were made)."""
    rng = random.Random(seed)
    curve, _ = FeedingCurve.objects.get_or_create(
        name="Référence 12 jours",
        defaults={
            "description": "Courbe de référence (maïs grain, 2 repas).",
            "is_reference": True,
        },
    )
    if not curve.days.exists():
        FeedingCurveDay.objects.bulk_create(
            FeedingCurveDay(curve=curve, day=d, morning_dose_g=m, evening_dose_g=e)
            for d, (m, e) in enumerate(reference_doses(12), start=1)
        )

    counts = DemoSummary(0, 0, 0, 0, 0)
    producer_iter = iter(PRODUCERS)
    for s_index, (code, name, region) in enumerate(SITES):
        site, _ = Site.objects.get_or_create(code=code, defaults={"name": name, "region": region})
        counts.sites += 1
        gaveurs = []
        for _ in range(2):
            last, first = next(producer_iter)
            g, _ = Gaveur.objects.get_or_create(
                last_name=last, first_name=first, site=site, defaults={"phone": ""}
            )
            gaveurs.append(g)
        devices = []
        for n in (1, 2):
            d, _ = Device.objects.get_or_create(
                device_id=f"ESP32_{code}_{n:02d}",
                defaults={"site": site, "name": f"Station {code} {n}", "location": f"Ligne {n}"},
            )
            devices.append(d)

        for l_index in range(lots_per_site):
            duration = rng.randint(10, 14)
            start = ANCHOR + timedelta(days=18 * l_index + 3 * s_index)
            lot_code = f"{code}26{s_index + 1:01d}{l_index + 1:04d}"
            if Lot.objects.filter(code=lot_code).exists():
                continue
            # Each lot follows the reference ramp, bent by a lot-specific steepness and level.
            level = rng.uniform(0.82, 1.18)
            bend = rng.uniform(-0.4, 0.4)
            doses = []
            for day, (m, e) in enumerate(reference_doses(duration), start=1):
                x = (day - 1) / max(duration - 1, 1)
                factor = level * (1 + bend * (x - x * x) * 2)
                doses.append((round(m * factor, 1), round(e * factor, 1)))
            # Hidden taste: moderate total maize and a smooth ramp make better livers.
            total_maize = sum(m + e for m, e in doses)
            quality = 0.88 - abs(level - 1.0) * 2.2 - abs(bend) * 0.6 - (duration - 12) ** 2 * 0.008
            duck_count = rng.randint(180, 260)
            lot = Lot.objects.create(
                code=lot_code,
                gaveur=gaveurs[l_index % 2],
                site=site,
                feeding_start=start,
                planned_feeding_end=start + timedelta(days=duration),
                duration_days=duration,
                itm=round(total_maize / 1000 / rng.uniform(0.55, 0.7) * 1.0, 2),
                mean_final_weight_g=round(rng.uniform(6800, 7900), 0),
                duck_count=duck_count,
                dead_count=rng.randint(0, 6),
                status=Lot.Status.SLAUGHTERED
                if l_index < lots_per_site - 1
                else Lot.Status.FEEDING,
                feeding_curve=curve,
            )
            counts.lots += 1
            FeedingRecord.objects.bulk_create(
                FeedingRecord(
                    lot=lot,
                    day=day,
                    meal=meal,
                    planned_dose_g=dose,
                    actual_dose_g=round(dose * rng.uniform(0.95, 1.02), 1),
                    mean_weight_g=round(5200 + day * 190 + rng.uniform(-60, 60), 0),
                )
                for day, (m, e) in enumerate(doses, start=1)
                for meal, dose in (("morning", m), ("evening", e))
            )
            for n in range(samples_per_lot):
                device = devices[n % 2]
                fields = _sample_fields(rng, quality)
                sample = SensorSample.objects.create(
                    time=start + timedelta(days=duration + 1, minutes=3 * n),
                    device=device,
                    sample_id=f"{device.device_id}_{lot.code}_{n + 1:03d}",
                    lot=lot,
                    site_code=code,
                    lot_abattage=lot.code,
                    eleveur=str(lot.gaveur),
                    provenance=region,
                    payload={"type": "sensor_data", "source": "seed_demo"},
                    **fields,
                )
                counts.samples += 1
                if not sample.qualifies_for_product:
                    continue
                registered = product_register(
                    lot_id=lot.id, sample_id=sample.sample_id, site_code=code
                )
                counts.products += 1
                if rng.random() < 0.6:
                    taste = 0.85 * quality + 0.15 * sample.fusion_score
                    overall = min(5, max(1, round(1 + 4 * taste + rng.gauss(0, 0.3))))

                    def near(value: int) -> int:
                        return min(5, max(1, value + rng.choice([-1, 0, 0, 1])))

                    # The live service: the lot's review sums stay true, moderation works.
                    feedback_submit(
                        qr_code=registered.qr_code,
                        overall_rating=overall,
                        taste_rating=near(overall),
                        texture_rating=near(overall),
                        appearance_rating=near(overall),
                        value_rating=near(overall),
                        comment=rng.choice(
                            ["", "Excellent produit !", "Très fondant.", "Un peu trop gras.", ""]
                        ),
                        consent_to_publish=rng.random() < 0.5,
                        language="fr",
                    )
                    counts.reviews += 1
        # The stations of each site inspect the site's lot currently being processed.
        current = Lot.objects.filter(site=site).order_by("-feeding_start").first()
        Device.objects.filter(site=site, assigned_lot__isnull=True).update(assigned_lot=current)
    return counts
