"""manage.py optimize_curves: learn from consumer ratings and propose a feeding curve."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, no_translations

from optimizer.services import OptimizerError, optimization_run


class Command(BaseCommand):
    help = (
        "Build the dataset (products, lots, curves, SQAL, ratings), choose the curve model by "
        "grouped cross-validation, "
        "and propose the feasible feeding curve with the best predicted rating. "
        "Recommends nothing when there are too few reviews or no signal."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--site", help="site code: learn from and propose for this site only")
        parser.add_argument(
            "--gaveur", type=int, help="producer (gaveur) id: learn from and propose for them only"
        )
        parser.add_argument(
            "--min-reviews", type=int, help="minimum reviewed products (OPTIMIZER_MIN_REVIEWS)"
        )
        parser.add_argument("--output", help="write the result (curve, metrics) to this JSON file")
        parser.add_argument(
            "--report",
            help="write the HTML report with PNG plots to this folder "
            "(default: OPTIMIZER_REPORT_DIR/run-<id>, linked from the admin)",
        )
        parser.add_argument("--no-report", action="store_true", help="write no report")
        parser.add_argument("--seed", type=int, help="random seed (OPTIMIZER_RANDOM_SEED)")

    @no_translations  # output in English, like every command; the report keeps its language
    def handle(self, *args, **options) -> None:
        try:
            outcome = optimization_run(
                site_code=options["site"],
                gaveur_id=options["gaveur"],
                min_reviews=options["min_reviews"],
                report_dir=Path(options["report"]) if options["report"] else None,
                write_report=not options["no_report"],
                seed=options["seed"],
            )
        except OptimizerError as exc:
            raise CommandError(str(exc)) from exc
        for line in outcome.lines:
            self.stdout.write(line)
        if outcome.curve is not None:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Proposed curve v{outcome.curve.version} ({outcome.curve.scope_label}); "
                    "approve it in the admin (Optimised curves)."
                )
            )
            for dose in outcome.curve.doses:
                self.stdout.write(
                    f"  J{dose['day']:>2}: {dose['morning_g']:7.1f} g + {dose['evening_g']:7.1f} g"
                )
        else:
            self.stdout.write(self.style.WARNING("No curve recommended."))
        if options["output"]:
            Path(options["output"]).write_text(
                json.dumps(outcome.as_json(), indent=2, ensure_ascii=False), encoding="utf-8"
            )
            self.stdout.write(f"Written: {options['output']}")
