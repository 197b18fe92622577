"""Benchmark of `optimize_curves` on 1k and 10k lots, each with 100k ratings.

Runs on a throwaway embedded PostgreSQL (or DATABASE_URL when set). For each scale it writes a
synthetic history (not timed), then times the whole optimisation run (dataset, forests with
cross-validation, insights, curve search, HTML report) and, as a baseline measured in the same
run, one plain SQL read of the same rows (products joined with samples, feedback and lots).
The goal: 10k lots in under 60 s. Last line: one JSON object.

    .venv/bin/python bench/optimizer.py [--lots 1000,10000] [--ratings 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _setup_django() -> None:
    if not os.environ.get("DATABASE_URL") and not os.environ.get("EMBEDDED_PG_DIR"):
        os.environ["EMBEDDED_PG_DIR"] = tempfile.mkdtemp(prefix="gtbench-optimizer.")
        os.environ["EMBEDDED_PG_CLEANUP"] = "delete"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gaveurs.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _read_rows(site_code: str) -> int:
    """Baseline: the rows the optimizer needs, read once with one SQL query."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT cp.id, cp.lot_id, s.fusion_score, s.tof_volume_mm3, s.tof_surface_uniformity,
                   s.spectral_freshness_index, s.spectral_fat_quality_index,
                   s.spectral_oxidation_index, f.overall_rating, f.taste_rating,
                   f.texture_rating, f.appearance_rating, f.value_rating,
                   l.duration_days, l.itm, l.mean_final_weight_g, l.duck_count, l.dead_count
            FROM consumer_products cp
            JOIN sqal_sensor_samples s ON s.id = cp.sqal_sample_pk
            JOIN consumer_feedback f ON f.product_id = cp.id
            JOIN lots_gavage l ON l.id = cp.lot_id
            JOIN gaveurs_site st ON st.id = l.site_id
            WHERE st.code = %s
            """,
            [site_code],
        )
        rows = cursor.fetchall()
        cursor.execute(
            """
            SELECT r.lot_id, r.day, r.meal, r.planned_dose_g, r.actual_dose_g
            FROM gaveurs_feedingrecord r JOIN lots_gavage l ON l.id = r.lot_id
            JOIN gaveurs_site st ON st.id = l.site_id WHERE st.code = %s
            """,
            [site_code],
        )
        return len(rows) + len(cursor.fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lots", default="1000,10000")
    parser.add_argument("--ratings", type=int, default=100_000)
    parser.add_argument("--goal-seconds", type=float, default=60.0)
    args = parser.parse_args()
    _setup_django()

    from optimizer.services import optimization_run
    from optimizer.synthetic import HistorySpec, history_generate

    results = []
    for index, lots in enumerate(int(x) for x in args.lots.split(",")):
        site = f"B{chr(ord('A') + index)}"
        per_lot = max(1, args.ratings // lots)
        t0 = time.perf_counter()
        counts = history_generate(
            HistorySpec(
                site_code=site, lots=lots, products_per_lot=per_lot, seed=index, code_prefix=site
            )
        )
        setup = time.perf_counter() - t0

        t0 = time.perf_counter()
        _read_rows(site)
        baseline = time.perf_counter() - t0

        with tempfile.TemporaryDirectory() as report:
            t0, c0 = time.perf_counter(), time.process_time()
            outcome = optimization_run(site_code=site, report_dir=Path(report))
            elapsed = time.perf_counter() - t0
            # CPU seconds of this process (all its threads): unlike wall time, barely moved by
            # other work on the machine; on an idle machine wall ≈ CPU / cores used.
            cpu = time.process_time() - c0
        result = {
            "lots": counts["lots"],
            "ratings": counts["reviews"],
            "outcome": outcome.run.outcome,
            "seconds": round(elapsed, 2),
            "cpu_seconds": round(cpu, 2),
            "baseline_read_seconds": round(baseline, 3),
            "ratio_vs_read": round(elapsed / baseline, 1),
            "stages_s": outcome.run.model_metrics.get("timings_s", {}),
            "setup_seconds": round(setup, 1),
            # other work on the machine skews absolute times; the ratio is the robust figure
            "load_average_1min": round(os.getloadavg()[0], 2),
            "curve_model_cv": outcome.run.model_metrics.get("curve_model_cv"),
            "curve_model": (outcome.run.model_metrics.get("curve_model") or {}).get("selected"),
        }
        results.append(result)
        print(
            f"{lots:>6} lots, {counts['reviews']} ratings: optimize_curves {elapsed:.1f} s "
            f"({cpu:.1f} CPU s) "
            f"(outcome {outcome.run.outcome}); reading the rows once {baseline:.2f} s; "
            f"ratio {elapsed / baseline:.1f}x; stages {result['stages_s']}; "
            f"load average {result['load_average_1min']}",
            flush=True,
        )
    biggest = max(results, key=lambda r: r["lots"])
    summary = {
        "bench": "optimizer",
        "cpus": os.cpu_count(),
        "results": results,
        "goal_seconds_for_10k_lots": args.goal_seconds,
        "goal_met": biggest["lots"] >= 10000 and biggest["seconds"] < args.goal_seconds,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
