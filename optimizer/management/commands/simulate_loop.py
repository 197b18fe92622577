"""manage.py simulate_loop --generations N: the closed loop against a synthetic consumer.

Each generation, producers of a synthetic site follow the curve the site currently gets
(with their own variations) on most lots, and the trial curves of the last proposal on the
stated share of lots; a synthetic consumer whose taste depends on the curve rates the
products; optimize_curves learns from all generations so far, and the proposal is approved
(the simulation plays quality staff). The consumer's true mean rating shows whether the loop
converges to the best feasible curve (the best the taste allows under the settings' bounds,
found by searching the taste itself), and whether predictions overshoot the truth by more
than their interval. Writes only to its own site (--site, default SIM).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from gaveurs.models import Site
from gaveurs.services import feeding_curve_for_new_lot
from optimizer.curves import CurveBounds, curve_from_json
from optimizer.services import optimization_run, optimized_curve_approve
from optimizer.synthetic import REFERENCE_CURVE, HistorySpec, SyntheticTaste, history_generate


def best_feasible_rating(taste: SyntheticTaste, seed: int) -> float:
    """The taste's best expected rating over the curves the settings' bounds allow."""
    import numpy as np

    from optimizer.search import CurveSpace, curve_search, pad_curve

    bounds = CurveBounds.from_settings()
    start = pad_curve(REFERENCE_CURVE, bounds.max_days)
    space = CurveSpace(start[None], np.array([len(REFERENCE_CURVE)]), bounds, None, envelope=False)
    seeds = [
        [(d * share, d * (1 - share)) for d in np.linspace(lo, hi, days)]
        for lo, hi in ((300, 800), (400, 900), (500, 950), (600, 990))
        for days in (bounds.min_days, (bounds.min_days + bounds.max_days) // 2, bounds.max_days)
        for share in (0.45, 0.5)
    ]
    found = curve_search(
        objective=taste.expected_ratings,
        space=space,
        seeds=seeds,
        population=120,
        generations=60,
        seed=seed,
    )
    return float(found.value) if found.value is not None else float("nan")


class Command(BaseCommand):
    help = "Closed-loop simulation: synthetic consumers, optimize_curves, approval, next lots."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--generations", type=int, default=5)
        parser.add_argument("--lots", type=int, default=80, help="lots per generation")
        parser.add_argument("--products-per-lot", type=int, default=4)
        parser.add_argument("--site", default="SIM", help="synthetic site code (created)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--trials",
            type=int,
            help="trial curves per proposal (OPTIMIZER_TRIALS); 0: every lot follows the "
            "approved curve",
        )

    def handle(self, *args, **options) -> None:
        generations = options["generations"]
        if generations < 1:
            raise CommandError("--generations must be at least 1")
        site_code = options["site"]
        taste = SyntheticTaste()
        token = f"{int(time.time()) % 100000:05d}"
        share = settings.OPTIMIZER_TRIAL_SHARE
        best = best_feasible_rating(taste, options["seed"])
        reference_true = taste.expected_rating(REFERENCE_CURVE)
        history: list[float] = []
        approved: list[float] = []
        overshoots = 0
        trials: list[list[tuple[float, float]]] = []
        for generation in range(generations):
            site = Site.objects.filter(code=site_code).first()
            planned = feeding_curve_for_new_lot(site_id=site.pk if site else None, gaveur_id=None)
            doses = (
                [(d.morning_dose_g, d.evening_dose_g) for d in planned.days.order_by("day")]
                if planned
                else []
            ) or REFERENCE_CURVE
            true_rating = taste.expected_rating(doses)
            history.append(true_rating)
            lots = options["lots"]
            trial_lots = int(round(lots * share / len(trials))) if trials else 0
            main_lots = lots - trial_lots * len(trials)
            seed = options["seed"] * 1000 + generation * 10
            prefix = f"{site_code}{token}G{generation:02d}-"
            counts = history_generate(
                HistorySpec(
                    site_code=site_code,
                    lots=main_lots,
                    products_per_lot=options["products_per_lot"],
                    seed=seed,
                    code_prefix=prefix,
                    spread=1.0 if generation == 0 else 0.6,
                ),
                taste=taste,
                base_curve=list(doses),
                feeding_curve_id=planned.pk if planned else None,
            )
            for t, trial in enumerate(trials):
                if trial_lots < 1:
                    break
                extra = history_generate(
                    HistorySpec(
                        site_code=site_code,
                        lots=trial_lots,
                        products_per_lot=options["products_per_lot"],
                        seed=seed + 1 + t,
                        code_prefix=f"{prefix}T{t}-",
                        spread=0.3,
                    ),
                    taste=taste,
                    base_curve=trial,
                )
                for key in counts:
                    counts[key] += extra[key]
            self.stdout.write(
                f"generation {generation}: planned curve "
                f"{planned.name if planned else 'built-in reference'} ({len(doses)} days, "
                f"{sum(m + e for m, e in doses):.0f} g), true mean rating {true_rating:.2f}; "
                f"{counts['lots']} lots ({trial_lots * len(trials)} on {len(trials)} trial "
                f"curves), {counts['reviews']} reviews"
            )
            outcome = optimization_run(
                site_code=site_code,
                min_reviews=min(100, counts["reviews"]),
                seed=options["seed"],
                write_report=False,
                trials=options["trials"],
            )
            if outcome.curve is None:
                self.stdout.write(f"  no proposal: {outcome.run.message}")
                trials = []
                continue
            curve = outcome.curve
            optimized_curve_approve(curve_id=curve.pk, user_id=None)
            proposed_true = taste.expected_rating(curve_from_json(curve.doses))
            approved.append(proposed_true)
            above = curve.predicted_rating - proposed_true
            overshoot = curve.predicted_low is not None and curve.predicted_low > proposed_true
            overshoots += int(overshoot)
            self.stdout.write(
                f"  approved v{curve.version}: predicted {curve.predicted_rating:.2f} "
                f"(80 % interval {curve.predicted_low:.2f}–{curve.predicted_high:.2f}), "
                f"true {proposed_true:.2f} ({above:+.2f}"
                + (", above its interval" if overshoot else "")
                + f"); {len(curve.trials)} trial curves for {curve.trial_share:.0%} of the "
                "next lots"
            )
            trials = [curve_from_json(t["doses"]) for t in curve.trials]
        final = approved[-1] if approved else history[-1]
        reached = (final - reference_true) / (best - reference_true) if best > reference_true else 1
        self.stdout.write(
            f"best feasible true mean rating {best:.2f}; curve approved last: {final:.2f} "
            f"({final / best:.1%} of the best, {reached:.0%} of the possible gain over the "
            f"reference {reference_true:.2f}); approved predictions above their interval: "
            f"{overshoots} of {len(approved)}; true mean rating of each approved curve: "
            + " → ".join(f"{r:.2f}" for r in approved)
        )
        self.stdout.write(
            "true mean rating of the planned curve by generation: "
            + " → ".join(f"{r:.2f}" for r in history)
        )
