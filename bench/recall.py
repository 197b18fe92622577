"""Benchmark of declaring a recall over many units (goal: 100,000 units in under 2 s).

A lot of ``--units`` products is bulk-inserted by SQL (not timed). Then, each ``--repeats``
times (best kept: the machine is shared), against baselines measured in the same run on the
same units:
- declare: ``traceability.recalls.recall_declare`` over that lot, as the admin's confirm step
  runs it (validation, the recall row, its scope row, its ledger leaf and a signed head), rolled
  back after each timing so every repeat starts from the same state;
- declare by site and production day (the other set-based scope);
- preview: ``recall_preview`` over the lot (the admin's preview step: units and lots);
- baseline ``count``: ``SELECT count(*)`` of the lot's units (reading the same units once);
- baseline ``insert_select``: a plain ``INSERT ... SELECT`` of one row per unit into a
  temporary table (what materialising the affected units would cost at the least).
A declaration stores the scope, not the units, so it should cost the same at any size.
Then, with the recall declared, the scan statement (``traceability.scans``, one round trip per
scan) is timed on units of the recalled lot against the same statement without its recall
state (``''`` in its place), prepared alike and run in turns: what the recall rule adds to a
scan.
Runs on a throwaway embedded PostgreSQL unless DATABASE_URL is set. Last line: one JSON object.

    .venv/bin/python bench/recall.py [--units 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ledger import Fixture, _setup_django  # noqa: E402  (the same bulk product builder)


class RecallFixture(Fixture):
    """bench/ledger.py's bulk builder; each unit gets its own random GS1 serial (a database
    default) instead of the template's."""

    def __init__(self) -> None:
        super().__init__()
        self.product_cols = [c for c in self.product_cols if c != "gs1_serial"]


class _Rollback(Exception):
    pass


def _best(fn, repeats: int, *, rollback: bool = False) -> float:
    """Best of ``repeats`` timings of ``fn``; with ``rollback``, each inside a transaction
    that is rolled back afterwards (outside the timing)."""
    from django.db import transaction

    best = float("inf")
    for _ in range(repeats):
        if rollback:
            try:
                with transaction.atomic():
                    t = time.perf_counter()
                    fn()
                    best = min(best, time.perf_counter() - t)
                    raise _Rollback
            except _Rollback:
                pass
        else:
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
    return best


def _scan_statement_costs(lot, repeats: int, runs: int = 500) -> dict[str, float]:
    """Seconds per execution of the scan statement on units of a recalled lot, with and without
    the recall state (both prepared, in turns, best of ``repeats``; scans not stored)."""
    from django.db import connection
    from django.utils import timezone

    from traceability import scans
    from traceability.models import ConsumerProduct
    from traceability.recalls import recall_declare, recall_state_sql

    recall_declare(
        kind="recall",
        reference="BENCH-SCAN",
        reason="bench",
        instructions_fr="Ne pas consommer.",
        instructions_en="Do not eat.",
        starts_at=timezone.now(),
        scope="lots",
        lot_ids=[lot.pk],
    )
    with_state = scans.SCAN_RECORD_SQL
    without = with_state.replace(recall_state_sql("$2"), "''::text")
    assert without != with_state
    codes = list(ConsumerProduct.objects.filter(lot=lot).values_list("qr_code", flat=True)[:200])
    types = "text, timestamptz, text, text, text, text, text, boolean"
    best = {"scan_statement_s": float("inf"), "scan_statement_without_recall_s": float("inf")}
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute(f"PREPARE bench_with ({types}) AS {with_state}")
        cursor.execute(f"PREPARE bench_without ({types}) AS {without}")

        def run(name: str) -> float:
            t = time.perf_counter()
            for i in range(runs):
                cursor.execute(
                    f"EXECUTE {name} (%s, %s, 'page', '', '', 'fr', '', false)",
                    [codes[i % len(codes)], timezone.now()],
                )
                assert cursor.fetchone()[-1] != "" or name == "bench_without"
            return (time.perf_counter() - t) / runs

        run("bench_with"), run("bench_without")  # warm up
        for _ in range(repeats):
            best["scan_statement_without_recall_s"] = min(
                best["scan_statement_without_recall_s"], run("bench_without")
            )
            best["scan_statement_s"] = min(best["scan_statement_s"], run("bench_with"))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    _setup_django()
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from traceability.models import ConsumerProduct
    from traceability.recalls import recall_declare, recall_preview, recall_scope_products

    settings.LEDGER_HEAD_INTERVAL_SECONDS = 3600  # only the recall's own head is signed
    fixture = RecallFixture()
    t = time.perf_counter()
    fixture.add_products(args.units - 1)  # plus the template product: --units in the lot
    setup_seconds = time.perf_counter() - t
    lot = fixture.lot
    units = ConsumerProduct.objects.filter(lot=lot).count()
    today = timezone.localdate()
    site_units = ConsumerProduct.objects.filter(
        site_code=lot.site.code, created_at__date=today
    ).count()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE consumer_products")
        cursor.execute("CREATE TEMPORARY TABLE bench_recall_units (recall_id int, product_id int)")

    counter = iter(range(10**9))

    def declare(scope: str) -> None:
        extra = (
            {"lot_ids": [lot.pk]}
            if scope == "lots"
            else {"site": lot.site, "produced_from": today, "produced_until": today}
        )
        recall_declare(
            kind="recall",
            reference=f"BENCH-{next(counter)}",
            reason="bench",
            instructions_fr="Ne pas consommer.",
            instructions_en="Do not eat.",
            starts_at=timezone.now(),
            scope=scope,
            **extra,
        )

    def count() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM consumer_products WHERE lot_id = %s", [lot.pk])
            cursor.fetchone()

    def insert_select() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bench_recall_units SELECT 1, id FROM consumer_products "
                "WHERE lot_id = %s",
                [lot.pk],
            )

    def preview() -> None:
        result = recall_preview(recall_scope_products(scope="lots", lot_ids=[lot.pk]))
        assert result.units == units, (result.units, units)

    figures = {
        "declare_lot_s": _best(lambda: declare("lots"), args.repeats, rollback=True),
        "declare_site_days_s": _best(lambda: declare("site_dates"), args.repeats, rollback=True),
        "preview_s": _best(preview, args.repeats),
        "baseline_count_s": _best(count, args.repeats),
        "baseline_insert_select_s": _best(insert_select, args.repeats, rollback=True),
    }
    figures.update(_scan_statement_costs(lot, args.repeats))
    base_count = figures["baseline_count_s"]
    base_insert = figures["baseline_insert_select_s"]
    result = {
        "bench": "recall",
        "units": units,
        "site_day_units": site_units,
        "repeats": args.repeats,
        **{k: round(v, 6) for k, v in figures.items()},
        "declare_vs_count": round(figures["declare_lot_s"] / base_count, 3),
        "declare_vs_insert_select": round(figures["declare_lot_s"] / base_insert, 3),
        "preview_vs_count": round(figures["preview_s"] / base_count, 3),
        "scan_with_recall_state_vs_without": round(
            figures["scan_statement_s"] / figures["scan_statement_without_recall_s"], 3
        ),
        "goal_declare_s": 2.0,
        "setup_s": round(setup_seconds, 1),
    }
    print(
        f"{units:,} units in one lot ({site_units:,} on the site that day); best of {args.repeats}"
    )
    print(
        f"declare (lot scope):        {figures['declare_lot_s']:.4f} s  "
        f"({result['declare_vs_count']}x count, {result['declare_vs_insert_select']}x "
        f"INSERT...SELECT of the units; goal < 2 s)"
    )
    print(f"declare (site + days scope): {figures['declare_site_days_s']:.4f} s")
    print(
        f"preview (units, lots):      {figures['preview_s']:.4f} s  "
        f"({result['preview_vs_count']}x count)"
    )
    print(
        f"scan statement, recalled unit: {figures['scan_statement_s'] * 1e6:.0f} µs; without "
        f"the recall state {figures['scan_statement_without_recall_s'] * 1e6:.0f} µs "
        f"({result['scan_with_recall_state_vs_without']}x)"
    )
    print(f"baseline SELECT count(*):   {base_count:.4f} s")
    print(f"baseline INSERT ... SELECT: {base_insert:.4f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
