"""Benchmark of the EPCIS export: ``manage.py export_epcis --lot`` on a lot of 10,000 units.

Measured against a baseline in the same run, on the same database, rows and output sink: a
plain streamed SELECT of the same rows (each product joined with its SQAL sample, through the
same kind of server-side cursor) written out as one JSON array per row. The export writes ~2
events per unit plus the lot's transformation, each with its CBV 2.0 hash ID.

Units are made once, not timed: samples bulk-inserted, then products registered by the PL/pgSQL
function ``register_consumer_product`` (the only writer of products) in one statement; like
history imports, they are not appended to the ledger (the export does not read it). Peak Python
memory of one export is measured in a separate, untimed run (tracemalloc). Runs on a throwaway
embedded PostgreSQL unless DATABASE_URL is set. Last line: one JSON object.

    .venv/bin/python bench/epcis.py [--units 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LOT_CODE = "BE2601001"


def _setup_django() -> None:
    if not os.environ.get("DATABASE_URL") and not os.environ.get("EMBEDDED_PG_DIR"):
        os.environ["EMBEDDED_PG_DIR"] = tempfile.mkdtemp(prefix="gtbench.")
        os.environ["EMBEDDED_PG_CLEANUP"] = "delete"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gaveurs.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def make_lot(units: int) -> None:
    """A site with GTIN and GLN, a station, a lot and ``units`` registered products."""
    from datetime import timedelta

    from django.db import connection, transaction
    from django.utils import timezone

    from gaveurs.models import Gaveur, Lot, Site
    from sensors.models import Device, SensorSample

    site = Site.objects.create(code="BE", name="Bench", gtin="4006381333931", gln="4012345000009")
    gaveur = Gaveur.objects.create(site=site, last_name="Banc", first_name="Eve")
    start = timezone.now() - timedelta(days=20)
    lot = Lot.objects.create(
        code=LOT_CODE,
        gaveur=gaveur,
        site=site,
        feeding_start=start,
        planned_feeding_end=start + timedelta(days=12),
        duration_days=12,
        itm=125.0,
        mean_final_weight_g=7800,
        duck_count=units + 50,
        dead_count=20,
        status=Lot.Status.SLAUGHTERED,
    )
    device = Device.objects.create(device_id="ESP32_BE_01", site=site)
    now = timezone.now()
    for first in range(0, units, 2000):
        SensorSample.objects.bulk_create(
            SensorSample(
                time=now - timedelta(seconds=units - i),
                device=device,
                sample_id=f"BE_{i:06d}",
                lot=lot,
                site_code="BE",
                tof_volume_mm3=120000.0 + i,
                tof_surface_uniformity=0.9,
                spectral_freshness_index=0.88,
                spectral_fat_quality_index=0.8,
                spectral_oxidation_index=0.1,
                fusion_score=0.86,
                fusion_grade="A+",
                is_compliant=True,
                payload={},
            )
            for i in range(first, min(first + 2000, units))
        )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM (SELECT register_consumer_product(%s, s.sample_id, 'BE') "
            "FROM sqal_sensor_samples s WHERE s.lot_id = %s ORDER BY s.id) r",
            [lot.id, lot.id],
        )
        assert cursor.fetchone()[0] == units


def baseline(sink) -> int:
    """The same rows, streamed through a server-side cursor and written as JSON arrays."""
    from traceability.gs1.epcis import UNIT_CHUNK, UNIT_FIELDS
    from traceability.models import ConsumerProduct

    rows = (
        ConsumerProduct.objects.filter(lot__code=LOT_CODE)
        .order_by("id")
        .values_list(*UNIT_FIELDS)
        .iterator(chunk_size=UNIT_CHUNK)
    )
    count = 0
    sink.write("[")
    for row in rows:
        sink.write(("," if count else "") + json.dumps(row, default=str))
        count += 1
    sink.write("]\n")
    return count


def export(sink) -> None:
    from django.core.management import call_command

    call_command("export_epcis", "--lot", LOT_CODE, stdout=sink)


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        with open(os.devnull, "w", encoding="utf-8") as sink:
            t = time.perf_counter()
            fn(sink)
            best = min(best, time.perf_counter() - t)
    return best


class _Counter:
    def __init__(self) -> None:
        self.bytes = 0
        self.events = 0

    def write(self, text: str) -> None:
        self.bytes += len(text.encode())
        self.events += text.count('"eventID"')

    def flush(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    _setup_django()
    t = time.perf_counter()
    make_lot(args.units)
    print(f"made a lot of {args.units:,} units in {time.perf_counter() - t:.1f} s", flush=True)

    counter = _Counter()
    export(counter)
    tracemalloc.start()
    with open(os.devnull, "w", encoding="utf-8") as sink:
        export(sink)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    base_s = _best(baseline, args.repeats)
    export_s = _best(export, args.repeats)
    results = {
        "units": args.units,
        "events": counter.events,
        "document_mb": round(counter.bytes / 2**20, 2),
        "baseline_select_json_s": round(base_s, 3),
        "export_s": round(export_s, 3),
        "export_vs_baseline": round(export_s / base_s, 2),
        "export_units_per_s": round(args.units / export_s),
        "export_events_per_s": round(counter.events / export_s),
        "export_peak_python_mb": round(peak / 2**20, 1),
        "document_vs_peak_memory": round(counter.bytes / peak, 2),
        "repeats": args.repeats,
    }
    print(
        f"export_epcis --lot: {results['export_s']} s for {args.units:,} units, "
        f"{counter.events:,} events, {results['document_mb']} MB "
        f"({results['export_vs_baseline']}x a streamed SELECT to JSON of the same rows, "
        f"{results['baseline_select_json_s']} s); peak Python memory "
        f"{results['export_peak_python_mb']} MB",
        flush=True,
    )
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
