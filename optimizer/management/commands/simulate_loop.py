"""manage.py simulate_loop --generations N: the closed loop against a synthetic consumer.

Each generation, producers of a synthetic site follow the curve the site currently gets
(with their own variations), a synthetic consumer whose taste depends on the curve rates the
products, optimize_curves learns from all generations so far, and the proposal is approved
(the simulation plays quality staff). The true expected rating shows whether the loop improves.
Writes only to its own site (--site, default SIM).
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from gaveurs.models import Site
from gaveurs.services import feeding_curve_for_new_lot
from optimizer.curves import curve_from_json
from optimizer.services import optimization_run, optimized_curve_approve
from optimizer.synthetic import REFERENCE_CURVE, HistorySpec, SyntheticTaste, history_generate


class Command(BaseCommand):
    help = "Closed-loop simulation: synthetic consumers, optimize_curves, approval, next lots."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--generations", type=int, default=5)
        parser.add_argument("--lots", type=int, default=80, help="lots per generation")
        parser.add_argument("--products-per-lot", type=int, default=4)
        parser.add_argument("--site", default="SIM", help="synthetic site code (created)")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options) -> None:
        generations = options["generations"]
        if generations < 1:
            raise CommandError("--generations must be at least 1")
        site_code = options["site"]
        taste = SyntheticTaste()
        token = f"{int(time.time()) % 100000:05d}"
        history: list[float] = []
        for generation in range(generations):
            site = Site.objects.filter(code=site_code).first()
            planned = feeding_curve_for_new_lot(site_id=site.pk if site else None, gaveur_id=None)
            doses = (
                [(d.morning_dose_g, d.evening_dose_g) for d in planned.days.order_by("day")]
                if planned
                else REFERENCE_CURVE
            )
            if not doses:
                doses = REFERENCE_CURVE
            true_rating = taste.expected(doses)
            history.append(true_rating)
            counts = history_generate(
                HistorySpec(
                    site_code=site_code,
                    lots=options["lots"],
                    products_per_lot=options["products_per_lot"],
                    seed=options["seed"] * 1000 + generation,
                    code_prefix=f"{site_code}{token}G{generation:02d}-",
                    spread=1.0 if generation == 0 else 0.6,
                ),
                taste=taste,
                base_curve=list(doses),
                feeding_curve_id=planned.pk if planned else None,
            )
            self.stdout.write(
                f"generation {generation}: planned curve "
                f"{planned.name if planned else 'built-in reference'} ({len(doses)} days, "
                f"{sum(m + e for m, e in doses):.0f} g), true expected rating {true_rating:.2f}; "
                f"{counts['lots']} lots, {counts['reviews']} reviews"
            )
            outcome = optimization_run(
                site_code=site_code,
                min_reviews=min(100, counts["reviews"]),
                seed=options["seed"],
                write_report=False,
            )
            if outcome.curve is None:
                self.stdout.write(f"  no proposal: {outcome.run.message}")
                continue
            optimized_curve_approve(curve_id=outcome.curve.pk, user_id=None)
            proposed_true = taste.expected(curve_from_json(outcome.curve.doses))
            self.stdout.write(
                f"  approved v{outcome.curve.version}: predicted "
                f"{outcome.curve.predicted_rating:.2f} ± {outcome.curve.predicted_rating_std:.2f}, "
                f"true {proposed_true:.2f}"
            )
        self.stdout.write(
            "true expected rating of the planned curve by generation: "
            + " → ".join(f"{r:.2f}" for r in history)
        )
