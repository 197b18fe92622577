"""Registration pipeline benchmark: sample acknowledged → product scannable, and QR renders/s.

Run: ``.venv/bin/python bench/pipeline.py [--samples 200] [--rate 10] [--burst 500] [--batch 13]``.
Uses a throwaway embedded PostgreSQL unless DATABASE_URL is set, and Redis at 127.0.0.1:6379
(database 15, a per-run key prefix; REDIS_BENCH_URL to change it). For each broker (Redis, then the
embedded SQLAlchemy transport) it starts the real worker (``scripts/worker.sh``: prefork, 2
processes), then ingests ``--samples`` compliant samples at ``--rate`` per second in two ways:

- ``single``: one sample at a time through ``sensors.services.ingest_sample``;
- ``batch`` (the websocket consumer's path under load): batches of ``--batch`` samples through
  ``sensors.services.ingest_samples``, as ``sensors.batching`` stores what queued while the
  previous batch was written (a mean batch of about 13 samples in ``bench/ingest.py``), one batch
  every ``--batch / --rate`` seconds, so the same samples per second as ``single``.

Both ack after commit and enqueue the registrations on commit, as the consumer does. The clock
starts when ingestion returns (the moment the stations' acks are sent: every sample of a batch is
acked then) and stops when a separate connection sees the committed product row (the moment the
scan page can show it), polled every 5 ms. The worker's CPU (its process tree, from ``/proc``) is
printed per product. ``--compare-tasks-per-batch 2,13`` alternates, batch by batch, the
configured ``PRODUCT_TASKS_PER_BATCH`` with those values (13: one task per sample), so that each
variant meets the same load; ``--brokers redis`` skips the embedded transport.

Baselines measured in the same run: the synchronous PL/pgSQL registration (``product_register``
in this process) and, on each broker, a no-op task's round trip on the same queue and worker
(``celery.accumulate``, observed by its committed result row, polled every 5 ms): their p95s
summed are the floor of an asynchronous registration (goal, Redis: ack -> product p95 <= 1.5 x
that floor). Then, in each mode, a burst of ``--burst`` eligible samples ingested back to back
(``batch``: in batches of ``--batch``): its drain rate (products/s from the burst's start to the
last product), beside the synchronous registration's rate in one process. ``segno.make`` alone
(building the matrix) is the baseline of QR rendering. The last line is one JSON object.
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
from bench.common import percentile, start_worker, tree_cpu_seconds  # noqa: E402
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

    def batch(self, sample_ids: list[str]) -> list[int]:
        """Stores ``sample_ids`` in one batch, as the websocket consumer's batcher does
        (``sensors.services.ingest_samples``: one transaction, registrations asked on commit)."""
        from sensors.services import SampleInput, ingest_samples

        items = [
            SampleInput(
                reading=dataclasses.replace(self.reading, sample_id=sample_id),
                payload=self.payload,
            )
            for sample_id in sample_ids
        ]
        results = ingest_samples(items=items, allow_unregistered=True)
        for result in results:
            if result.status != "saved" or not result.product_requested:
                raise RuntimeError(f"ingestion did not request a product: {result}")
        return [result.pk for result in results]

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
    from kombu import pools

    from gaveurs.celery import app

    if app._pool is not None:
        app._pool.force_close_all()
    # kombu keeps the producer and connection pools in global registries: a closed pool left
    # there fails the next broker's first publish ("Acquire on closed pool").
    pools.reset()
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
    result: dict = {"ingest_mode": ingest.mode}
    try:
        run = uuid.uuid4().hex[:6]
        for i in range(10):  # warm-up: worker processes, connections, queues
            ingest(f"WARM_{name}_{run}_{i}")
        time.sleep(1.0)
        for mode in args.modes:
            size = 1 if mode == "single" else args.batch
            variants = [None] if mode == "single" else [None, *args.compare_tasks_per_batch]
            found = measure_latency(
                ingest, watcher, proc, f"{name}_{mode}_{run}", args, size, variants
            )
            for variant, r in found.items():
                tag = f"{name}_{mode}_{variant}_{run}"
                r["burst"] = measure_drain(ingest, watcher, proc, tag, args, size, variant)
                r["missing"] += r["burst"].pop("missing")
            if mode == "single":
                result.update(found[None])
            else:
                result[mode] = {"batch_size": size, **found[None]}
                if len(variants) > 1:
                    result[mode]["tasks_per_batch"] = {
                        str(v): found[v] for v in args.compare_tasks_per_batch
                    }
        result["noop_task"] = measure_noop(min(args.samples, 100), 1.0 / args.rate)
    finally:
        watcher.stop.set()
        watcher.join()
        stop_worker(proc)
        connection.close()
    return result


def _store(ingest, sample_ids: list[str]) -> list[int]:
    if len(sample_ids) == 1:
        return [ingest(sample_ids[0])]
    return ingest.batch(sample_ids)


def _wait_products(watcher, pks, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(pk in watcher.seen for pk in pks) and time.monotonic() < deadline:
        time.sleep(0.01)


def measure_latency(
    ingest, watcher, proc, tag: str, args, size: int, variants: list[int | None]
) -> dict[int | None, dict]:
    """``args.samples`` samples per variant at ``args.rate`` per second, in batches of ``size``
    (one batch every ``size / rate`` seconds): ack -> product percentiles per sample, and the
    worker's CPU per product (from each batch's start to the next one's). A variant is a value of
    ``settings.PRODUCT_TASKS_PER_BATCH`` (None: as configured); with several, batches take them
    in turn, so every variant meets the same load on this shared machine."""
    from django.conf import settings

    configured = getattr(settings, "PRODUCT_TASKS_PER_BATCH", None)
    acked: dict[int, float] = {}
    variant_of: dict[int, int | None] = {}
    cpu = dict.fromkeys(variants, 0.0)
    interval = size / args.rate
    t_next = time.perf_counter()
    batches = [
        (start, variants[k % len(variants)])
        for k, start in enumerate(range(0, args.samples * len(variants), size))
    ]
    previous: tuple[int | None, float] | None = None
    try:
        for start, variant in batches:
            now = time.perf_counter()
            if now < t_next:
                time.sleep(t_next - now)
            cpu_now = tree_cpu_seconds(proc.pid)
            if previous is not None:
                cpu[previous[0]] += cpu_now - previous[1]
            previous = (variant, cpu_now)
            settings.PRODUCT_TASKS_PER_BATCH = configured if variant is None else variant
            end = min(start + size, args.samples * len(variants))
            pks = _store(ingest, [f"BENCH_{tag}_{i:05d}" for i in range(start, end)])
            t_ack = time.perf_counter()
            for pk in pks:
                acked[pk] = t_ack
                variant_of[pk] = variant
            t_next += interval
    finally:
        settings.PRODUCT_TASKS_PER_BATCH = configured
    _wait_products(watcher, acked, 120)
    if previous is not None:
        cpu[previous[0]] += tree_cpu_seconds(proc.pid) - previous[1]
    results = {}
    for variant in variants:
        mine = [pk for pk in acked if variant_of[pk] == variant]
        seen = [pk for pk in mine if pk in watcher.seen]
        latencies = [(watcher.seen[pk] - acked[pk]) * 1000 for pk in seen]
        results[variant] = {
            "p50_ms": round(percentile(latencies, 50), 1),
            "p95_ms": round(percentile(latencies, 95), 1),
            "max_ms": round(max(latencies), 1),
            "worker_cpu_ms_per_product": round(cpu[variant] * 1000 / max(1, len(seen)), 2),
            "missing": len(mine) - len(seen),
        }
    return results


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


def measure_drain(
    ingest, watcher, proc, tag: str, args, size: int, variant: int | None = None
) -> dict:
    """A burst of ``args.burst`` eligible samples ingested back to back (in batches of ``size``,
    ``variant`` tasks per batch as in ``measure_latency``): products per second from the burst's
    start to the last product visible, how long ingestion itself took, and the worker's CPU per
    product."""
    from django.conf import settings

    configured = getattr(settings, "PRODUCT_TASKS_PER_BATCH", None)
    acked: dict[int, float] = {}
    cpu0 = tree_cpu_seconds(proc.pid)
    t0 = time.perf_counter()
    try:
        settings.PRODUCT_TASKS_PER_BATCH = configured if variant is None else variant
        for start in range(0, args.burst, size):
            ids = [f"BURST_{tag}_{i:04d}" for i in range(start, min(start + size, args.burst))]
            for pk in _store(ingest, ids):
                acked[pk] = time.perf_counter()
    finally:
        settings.PRODUCT_TASKS_PER_BATCH = configured
    ingested = time.perf_counter() - t0
    _wait_products(watcher, acked, 300)
    cpu = tree_cpu_seconds(proc.pid) - cpu0
    seen = [watcher.seen[pk] for pk in acked if pk in watcher.seen]
    elapsed = (max(seen) - t0) if seen else float("nan")
    return {
        "samples": args.burst,
        "ingest_s": round(ingested, 2),
        "drain_s": round(elapsed, 2),
        "products_per_s": round(len(seen) / elapsed, 1) if seen else 0.0,
        "worker_cpu_ms_per_product": round(cpu * 1000 / max(1, len(seen)), 2),
        "missing": args.burst - len(seen),
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


def _report(name: str, label: str, r: dict, baseline: dict, args) -> None:
    """Adds the floor ratios to ``r`` (one mode on one broker) and prints them."""
    # The floor of an asynchronous registration: the registration itself plus a task's round
    # trip on this broker (goal: ack -> product p95 <= 1.5 x that sum).
    floor = r["floor_p95_ms"]
    r["p95_vs_floor"] = round(r["p95_ms"] / floor, 2)
    r["burst"]["drain_vs_sync_register_rate"] = round(
        r["burst"]["products_per_s"] / baseline["per_s"], 2
    )
    print(
        f"{name} {label}: ack→product p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms; floor p95 "
        f"{floor} ms (sync register p95 {baseline['p95_ms']} ms + no-op task p95 "
        f"{round(floor - baseline['p95_ms'], 1)} ms): {r['p95_vs_floor']} of the floor "
        f"(goal <= 1.5); {r['missing']} missing; over {args.samples} samples at {args.rate}/s; "
        f"worker CPU {r['worker_cpu_ms_per_product']} ms per product",
        flush=True,
    )
    b = r["burst"]
    print(
        f"{name} {label}: burst of {b['samples']} eligible samples ingested in {b['ingest_s']} s, "
        f"drained in {b['drain_s']} s: {b['products_per_s']} products/s "
        f"({b['drain_vs_sync_register_rate']} of synchronous registration in one process, "
        f"{baseline['per_s']}/s); worker CPU {b['worker_cpu_ms_per_product']} ms per product",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="samples per second")
    parser.add_argument("--qr", type=int, default=300, help="QR codes to render")
    parser.add_argument("--burst", type=int, default=500, help="eligible samples in the burst")
    parser.add_argument("--batch", type=int, default=13, help="samples per batch in the batch mode")
    parser.add_argument(
        "--modes",
        default="single,batch",
        type=lambda v: [m for m in v.split(",") if m],
        help="single (one sample per ingestion), batch (--batch samples per ingestion)",
    )
    parser.add_argument(
        "--brokers", default="redis,embedded", type=lambda v: [b for b in v.split(",") if b]
    )
    parser.add_argument(
        "--compare-tasks-per-batch",
        default=[],
        type=lambda v: [int(n) for n in v.split(",") if n],
        help="values of PRODUCT_TASKS_PER_BATCH whose batches alternate with the configured "
        "one's in the batch mode (e.g. 1,13: one task per batch, one per sample)",
    )
    args = parser.parse_args()
    if not set(args.modes) <= {"single", "batch"} or "single" not in args.modes:
        parser.error("--modes: single, then optionally batch")
    if not args.brokers or not set(args.brokers) <= {"redis", "embedded"}:
        parser.error("--brokers: redis and/or embedded")

    setup_django()
    from django.conf import settings
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
    brokers = {
        "redis": (
            redis_url,
            {"CELERY_BROKER_URL": redis_url, "CELERY_REDIS_KEY_PREFIX": prefix},
            {"global_keyprefix": prefix},
        ),
        "embedded": (
            sqla_url,
            {"CELERY_BROKER_URL": sqla_url, "CELERY_SQLA_POLL_INTERVAL": poll},
            {"polling_interval": float(poll)},
        ),
    }
    results = {}
    for name in args.brokers:
        r = measure_broker(name, *brokers[name], args, lot, dsn)
        floor = round(baseline["p95_ms"] + r["noop_task"]["p95_ms"], 1)
        r["floor_p95_ms"] = floor
        _report(name, "single", r, baseline, args)
        if "batch" in r:
            r["batch"]["floor_p95_ms"] = floor
            r["batch"]["configured_tasks_per_batch"] = getattr(
                settings, "PRODUCT_TASKS_PER_BATCH", None
            )
            label = (
                f"batch of {args.batch}, {r['batch']['configured_tasks_per_batch']} tasks a batch"
            )
            _report(name, label, r["batch"], baseline, args)
            for variant, v in r["batch"].get("tasks_per_batch", {}).items():
                v["floor_p95_ms"] = floor
                _report(name, f"batch of {args.batch}, {variant} tasks a batch", v, baseline, args)
                v["p95_vs_configured"] = round(v["p95_ms"] / r["batch"]["p95_ms"], 2)
            r["batch"]["p95_vs_single"] = round(r["batch"]["p95_ms"] / r["p95_ms"], 2)
            r["batch"]["drain_vs_single"] = round(
                r["batch"]["burst"]["products_per_s"] / r["burst"]["products_per_s"], 2
            )
        results[name] = r
    if {"redis", "embedded"} <= set(results):
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
    redis = results.get("redis", {})
    goal_met = None
    if redis:
        goal_met = redis["p95_vs_floor"] <= 1.5 and redis.get("batch", redis)["p95_vs_floor"] <= 1.5
    print(
        json.dumps(
            {
                "bench": "pipeline",
                "samples": args.samples,
                "rate_per_s": args.rate,
                "batch_size": args.batch if "batch" in args.modes else None,
                "sync_register": baseline,
                **results,
                "embedded_poll_interval_s": float(poll),
                "qr": q,
                "goal_redis_p95_vs_floor": 1.5,
                "goal_met": goal_met,
                "cpus": os.cpu_count(),
                "load_average_1min_at_end": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
