"""Registration pipeline benchmark: sample acknowledged → product scannable, and QR renders/s.

Run: ``.venv/bin/python bench/pipeline.py [--samples 200] [--rate 10] [--burst 500]``. Uses a
throwaway embedded PostgreSQL unless DATABASE_URL is set, and Redis at 127.0.0.1:6379 (database 15,
a per-run key prefix; REDIS_BENCH_URL to change it). For each broker (Redis, then the embedded
SQLAlchemy transport) it starts the real worker (``scripts/worker.sh``: prefork, 2 processes), then
ingests ``--samples`` compliant samples at ``--rate`` per second through
``sensors.services.ingest_sample`` (the websocket consumer's service; it acks after commit and
enqueues the registration on commit). The clock starts when ingestion returns (the moment the
station's ack is sent) and stops when a separate connection sees the committed product row (the
moment the scan page can show it), polled every 5 ms.

Baselines measured in the same run: the synchronous PL/pgSQL registration (``product_register``
in this process) and, on each broker, a no-op task's round trip on the same queue and worker
(``celery.accumulate``, observed by its committed result row, polled every 5 ms): their p95s
summed are the floor of an asynchronous registration (goal, Redis: ack -> product p95 <= 1.5 x
that floor). Then a burst of ``--burst`` eligible samples ingested back to back: its drain rate
(products/s from the burst's start to the last product), beside the synchronous registration's rate
in one process. ``segno.make`` alone (building the matrix) is the baseline of QR rendering.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import django_database_url as database_url  # noqa: E402
from bench.common import percentile, start_worker  # noqa: E402
from bench.common import stop_process as stop_worker  # noqa: E402


def setup_django() -> None:
    if not os.environ.get("DATABASE_URL"):
        os.environ["EMBEDDED_PG_DIR"] = tempfile.mkdtemp(prefix="gtbench.")
        os.environ["EMBEDDED_PG_CLEANUP"] = "delete"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gaveurs.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def make_lot():
    from datetime import timedelta

    from django.utils import timezone

    from gaveurs.models import Gaveur, Lot, Site

    site, _ = Site.objects.get_or_create(code="LL", defaults={"name": "Bench"})
    gaveur = Gaveur.objects.create(site=site, last_name="Bench", first_name="B")
    start = timezone.now() - timedelta(days=20)
    return Lot.objects.create(
        code=f"LLB{uuid.uuid4().hex[:8]}",
        gaveur=gaveur,
        site=site,
        feeding_start=start,
        planned_feeding_end=start + timedelta(days=14),
        duration_days=14,
        itm=125.0,
        mean_final_weight_g=7800,
        duck_count=100,
        status=Lot.Status.SLAUGHTERED,
    )


class Ingestor:
    """Creates one compliant sample per call, committed, with its registration requested."""

    def __init__(self, lot) -> None:
        self.lot = lot
        try:
            from sensors.schemas import Reading, SensorData
            from sensors.services import ingest_sample

            self.payload = (ROOT / "tests/fixtures/sensor_data_flat.json").read_text()
            message = SensorData.model_validate(json.loads(self.payload))
            self.reading = dataclasses.replace(
                Reading.from_message(message),
                lot_id=lot.id,
                site_code="LL",
                fusion_grade="A",
                fusion_score=0.8,
                is_compliant=True,
            )
            self.ingest = ingest_sample
            self.mode = "sensors.services.ingest_sample (full 190 KB flat message)"
        except ImportError:
            self.ingest = None
            self.mode = "ORM sample + product_registration_request"

    def __call__(self, sample_id: str) -> int:
        from django.db import transaction

        if self.ingest is not None:
            result = self.ingest(
                reading=dataclasses.replace(self.reading, sample_id=sample_id),
                payload=self.payload,
                allow_unregistered=True,
            )
            if result.status != "saved" or not result.product_requested:
                raise RuntimeError(f"ingestion did not request a product: {result}")
            return result.pk
        from django.utils import timezone

        from sensors.models import Device, SensorSample
        from traceability.tasks import product_registration_request

        device, _ = Device.objects.get_or_create(device_id="ESP32_LL_01")
        with transaction.atomic():
            sample = SensorSample.objects.create(
                device=device,
                sample_id=sample_id,
                lot=self.lot,
                time=timezone.now(),
                site_code="LL",
                fusion_score=0.8,
                fusion_grade="A",
                is_compliant=True,
                payload={},
            )
            product_registration_request(lot_id=self.lot.id, sample_id=sample_id, site_code="LL")
        return sample.pk


class ProductWatcher(threading.Thread):
    """Polls consumer_products on its own connection; records when each sample's row appears."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=True)
        with self.conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(id), 0) FROM consumer_products")
            self.last_id = cur.fetchone()[0]
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        with self.conn.cursor() as cur:
            while not self.stop.is_set():
                cur.execute(
                    "SELECT id, sqal_sample_pk FROM consumer_products WHERE id > %s",
                    [self.last_id],
                )
                rows = cur.fetchall()
                now = time.perf_counter()
                for pid, sample_pk in rows:
                    self.seen.setdefault(sample_pk, now)
                    self.last_id = max(self.last_id, pid)
                time.sleep(0.005)
        self.conn.close()


def use_broker(url: str, options: dict) -> None:
    from gaveurs.celery import app

    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None
    app.conf.broker_url = url
    app.conf.broker_transport_options = options


def measure_broker(name: str, broker_url: str, broker_env: dict, options: dict, args, lot, dsn):
    from django.db import connection

    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_PG")}
    env.pop("CELERY_REDIS_KEY_PREFIX", None)
    env.update(broker_env, DATABASE_URL=dsn, PRODUCT_SWEEP_GRACE_SECONDS="3600")
    env["CELERY_LOG_LEVEL"] = "info"  # the default of scripts/worker.sh; "ready." is at INFO
    log = Path(tempfile.mkdtemp(prefix="gtbench-worker.")) / f"{name}.log"
    use_broker(broker_url, options)
    proc = start_worker(env, log)
    ingest = Ingestor(lot)
    watcher = ProductWatcher(dsn.replace("postgres://", "postgresql://", 1))
    watcher.start()
    try:
        run = uuid.uuid4().hex[:6]
        for i in range(10):  # warm-up: worker processes, connections, queues
            ingest(f"WARM_{name}_{run}_{i}")
        time.sleep(1.0)
        acked: dict[int, float] = {}
        interval = 1.0 / args.rate
        t_next = time.perf_counter()
        for i in range(args.samples):
            now = time.perf_counter()
            if now < t_next:
                time.sleep(t_next - now)
            pk = ingest(f"BENCH_{name}_{run}_{i:04d}")
            acked[pk] = time.perf_counter()
            t_next += interval
        deadline = time.monotonic() + 120
        while not all(pk in watcher.seen for pk in acked) and time.monotonic() < deadline:
            time.sleep(0.01)
        missing = [pk for pk in acked if pk not in watcher.seen]
        latencies = [(watcher.seen[pk] - acked[pk]) * 1000 for pk in acked if pk in watcher.seen]
        noop = measure_noop(min(args.samples, 100), 1.0 / args.rate)
        drain = measure_drain(ingest, watcher, name, run, args.burst)
    finally:
        watcher.stop.set()
        watcher.join()
        stop_worker(proc)
        connection.close()
    return {
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "max_ms": round(max(latencies), 1),
        "missing": len(missing) + drain.pop("missing"),
        "noop_task": noop,
        "burst": drain,
        "ingest_mode": ingest.mode,
    }


def measure_noop(n: int, interval: float) -> dict:
    """The floor: a no-op task's round trip on the same broker, queue and worker, observed the
    same way as a product (its committed result row, polled every 5 ms). ``celery.accumulate``
    is Celery's built-in identity task; like the registration task it stores its result."""
    from gaveurs.celery import app

    latencies = []
    for _ in range(n):
        t0 = time.perf_counter()
        result = app.send_task("celery.accumulate", args=[1], queue="exports")
        result.get(timeout=60, interval=0.005)
        latencies.append((time.perf_counter() - t0) * 1000)
        result.forget()
        time.sleep(max(0.0, interval - (time.perf_counter() - t0)))
    return {
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "samples": n,
    }


def measure_drain(ingest, watcher, name: str, run: str, burst: int) -> dict:
    """A burst of ``burst`` eligible samples ingested back to back: products per second from the
    burst's start to the last product visible, and how long ingestion itself took."""
    acked: dict[int, float] = {}
    t0 = time.perf_counter()
    for i in range(burst):
        acked[ingest(f"BURST_{name}_{run}_{i:04d}")] = time.perf_counter()
    ingested = time.perf_counter() - t0
    deadline = time.monotonic() + 300
    while not all(pk in watcher.seen for pk in acked) and time.monotonic() < deadline:
        time.sleep(0.01)
    seen = [watcher.seen[pk] for pk in acked if pk in watcher.seen]
    elapsed = (max(seen) - t0) if seen else float("nan")
    return {
        "samples": burst,
        "ingest_s": round(ingested, 2),
        "drain_s": round(elapsed, 2),
        "products_per_s": round(len(seen) / elapsed, 1) if seen else 0.0,
        "missing": burst - len(seen),
    }


def measure_sync_baseline(lot, n: int) -> dict:
    from django.db import transaction

    from sensors.models import Device, SensorSample
    from traceability.services import product_register

    device, _ = Device.objects.get_or_create(device_id="ESP32_LL_01")
    latencies = []
    for i in range(n):
        with transaction.atomic():
            from django.utils import timezone

            SensorSample.objects.create(
                device=device,
                sample_id=f"SYNC_{uuid.uuid4().hex[:8]}_{i}",
                lot=lot,
                time=timezone.now(),
                site_code="LL",
                fusion_score=0.8,
                fusion_grade="A",
                is_compliant=True,
                payload={},
            )
        sample_id = SensorSample.objects.latest("id").sample_id
        t0 = time.perf_counter()
        product_register(lot_id=lot.id, sample_id=sample_id, site_code="LL")
        latencies.append((time.perf_counter() - t0) * 1000)
    return {
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "per_s": round(n / (sum(latencies) / 1000), 1),
    }


def measure_qr(n: int) -> dict:
    import segno
    from django.conf import settings

    from traceability import qr

    settings.MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="gtbench-media."))
    codes = [
        f"SQAL_{3000 + i}_ESP32_LL_01_{i:04d}_FG_LL_20260108_{i:04d}_{uuid.uuid4().hex[:16]}"
        for i in range(n)
    ]
    urls = [qr.scan_url(c) for c in codes]

    def rate(fn, items) -> float:
        t0 = time.perf_counter()
        for item in items:
            fn(item)
        return len(items) / (time.perf_counter() - t0)

    make = rate(lambda u: segno.make(u, error=qr.ERROR_LEVEL, boost_error=True, micro=False), urls)
    svg = rate(lambda u: qr.qr_render(u, kind="svg"), urls)
    png = rate(lambda u: qr.qr_render(u, kind="png"), urls)
    first = rate(lambda c: qr.product_qr_image(c, kind="svg"), codes)  # render + write
    cached = rate(lambda c: qr.product_qr_image(c, kind="svg"), codes)  # read from disk
    return {
        "segno_make_per_s": round(make),
        "svg_per_s": round(svg),
        "png_per_s": round(png),
        "svg_first_request_per_s": round(first),
        "svg_cached_per_s": round(cached),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="samples per second")
    parser.add_argument("--qr", type=int, default=300, help="QR codes to render")
    parser.add_argument("--burst", type=int, default=500, help="eligible samples in the burst")
    args = parser.parse_args()

    setup_django()
    from django.db import connection

    from gaveurs.settings import _embedded_broker_url

    dsn = database_url()
    lot = make_lot()
    baseline = measure_sync_baseline(lot, 50)
    print(
        f"baseline: synchronous product_register p50 {baseline['p50_ms']} ms, "
        f"p95 {baseline['p95_ms']} ms ({baseline['per_s']}/s in one process)",
        flush=True,
    )

    redis_url = os.environ.get("REDIS_BENCH_URL", "redis://127.0.0.1:6379/15")
    prefix = f"gt-bench-{uuid.uuid4().hex[:8]}:"
    sqla_url = _embedded_broker_url(connection.settings_dict)
    poll = os.environ.get("CELERY_SQLA_POLL_INTERVAL", "0.1")
    results = {}
    for name, url, env, options in [
        (
            "redis",
            redis_url,
            {"CELERY_BROKER_URL": redis_url, "CELERY_REDIS_KEY_PREFIX": prefix},
            {"global_keyprefix": prefix},
        ),
        (
            "embedded",
            sqla_url,
            {"CELERY_BROKER_URL": sqla_url, "CELERY_SQLA_POLL_INTERVAL": poll},
            {"polling_interval": float(poll)},
        ),
    ]:
        r = measure_broker(name, url, env, options, args, lot, dsn)
        # The floor of an asynchronous registration: the registration itself plus a task's
        # round trip on this broker (goal: ack -> product p95 <= 1.5 x that sum).
        floor = baseline["p95_ms"] + r["noop_task"]["p95_ms"]
        r["floor_p95_ms"] = round(floor, 1)
        r["p95_vs_floor"] = round(r["p95_ms"] / floor, 2)
        r["burst"]["drain_vs_sync_register_rate"] = round(
            r["burst"]["products_per_s"] / baseline["per_s"], 2
        )
        results[name] = r
        print(
            f"{name}: ack→product p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms; floor p95 "
            f"{r['floor_p95_ms']} ms (sync register p95 {baseline['p95_ms']} ms + no-op task p95 "
            f"{r['noop_task']['p95_ms']} ms): {r['p95_vs_floor']} of the floor (goal <= 1.5); "
            f"{r['missing']} missing; over {args.samples} samples at {args.rate}/s",
            flush=True,
        )
        b = r["burst"]
        print(
            f"{name}: burst of {b['samples']} eligible samples ingested in {b['ingest_s']} s, "
            f"drained in {b['drain_s']} s: {b['products_per_s']} products/s "
            f"({b['drain_vs_sync_register_rate']} of synchronous registration in one process, "
            f"{baseline['per_s']}/s)",
            flush=True,
        )
    results["embedded"]["p95_vs_redis"] = round(
        results["embedded"]["p95_ms"] / results["redis"]["p95_ms"], 1
    )

    q = measure_qr(args.qr)
    q["svg_vs_segno_make"] = round(q["svg_per_s"] / q["segno_make_per_s"], 2)
    q["png_vs_segno_make"] = round(q["png_per_s"] / q["segno_make_per_s"], 2)
    q["cached_vs_render"] = round(q["svg_cached_per_s"] / q["svg_per_s"], 1)
    print(
        f"QR: {q['svg_per_s']} SVG/s (×{q['svg_vs_segno_make']} of segno.make alone), "
        f"{q['png_per_s']} PNG/s, cached {q['svg_cached_per_s']}/s (×{q['cached_vs_render']})",
        flush=True,
    )
    print(
        json.dumps(
            {
                "bench": "pipeline",
                "samples": args.samples,
                "rate_per_s": args.rate,
                "sync_register": baseline,
                "redis": results["redis"],
                "embedded": results["embedded"],
                "embedded_poll_interval_s": float(poll),
                "qr": q,
                "goal_redis_p95_vs_floor": 1.5,
                "goal_met": results["redis"]["p95_vs_floor"] <= 1.5,
                "cpus": os.cpu_count(),
                "load_average_1min_at_end": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
