"""PostgreSQL, Daphne, then the broker crashed and restarted while stations send: nothing acked is
lost, nothing is stored twice, every eligible sample becomes exactly one product.

A PostgreSQL of the module's own (the session's test database is not touched) serves a Daphne
process and a Celery worker (broker: a Redis of our own). Simulated stations (``sensors.simulator``,
what ``manage.py simulate_sqal`` runs) keep measuring and sending through the fault; they reconnect
with backoff and resend whatever was not acked. The worker's start-up sweep is held off, so every
product comes from a request ingestion made. Figures go to artifacts/fault-*.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from sensors.simulator import SimulatorConfig, StationStats, simulate
from tests.support.integrity import assert_integrity
from tests.support.servers import (
    DaphneServer,
    DedicatedPostgres,
    Worker,
    seed_stations,
    wait_until,
    workers_idle,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RATE = 5.0  # samples per second per station


@dataclass
class Stack:
    pg: DedicatedPostgres
    server: DaphneServer
    worker: Worker
    tokens: dict[str, str]
    lot_code: str

    def config(self, device_ids: list[str], duration: float) -> SimulatorConfig:
        return SimulatorConfig(
            url=self.server.url,
            device_ids=device_ids,
            tokens=self.tokens,
            lot_codes={d: self.lot_code for d in device_ids},
            rate=RATE,
            duration=duration,
            form="nested",
            reject_ratio=0.2,
            drain_timeout=45,
            seed=11,
        )

    def count_samples(self) -> int:
        return self.pg.query("SELECT count(*) FROM sqal_sensor_samples")[0][0]

    def wait_for_a_new_commit(self) -> float:
        stored = self.count_samples()
        wait_until(lambda: self.count_samples() > stored, timeout=30, what="a new commit")
        return time.monotonic()


@pytest.fixture(scope="module")
def stack(dedicated_pg, redis_server, tmp_path_factory):
    seed = seed_stations(dedicated_pg, 8)  # each test sends from stations of its own
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EMBEDDED_PG", "CELERY_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="gaveurs.settings",
        LOG_LEVEL="WARNING",
        DATABASE_URL=dedicated_pg.url,
        CELERY_BROKER_URL=redis_server.url(1),
        PRODUCT_SWEEP_GRACE_SECONDS="3600",
    )
    server = DaphneServer(env)
    worker = Worker(env, tmp_path_factory.mktemp("worker"))
    try:
        with ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(server.start), pool.submit(worker.start)]:
                future.result()
        yield Stack(dedicated_pg, server, worker, seed["tokens"], seed["lot_code"])
    finally:
        worker.stop()
        server.stop()


def check_every_sample_stored_once(stack: Stack, stats: dict[str, StationStats]) -> dict:
    """Every measured sample acked and stored exactly once; the error frames received."""
    rows = stack.pg.query(
        "SELECT device_id, count(*), count(DISTINCT sample_id) FROM sqal_sensor_samples "
        "GROUP BY device_id"
    )
    stored = {device_id: (n, distinct) for device_id, n, distinct in rows}
    errors: dict[str, int] = {}
    for device_id, s in stats.items():
        for code, n in s.errors.items():
            errors[code] = errors.get(code, 0) + n
        # Acked: saved, or duplicate after a resend. Nothing acked lost, nothing doubled.
        assert s.acked == s.measured > 0, (device_id, s)
        assert stored[device_id] == (s.measured, s.measured), (device_id, s, stored)
    assert set(errors) <= {"storage_error", "internal_error"}, errors
    measured = sum(s.measured for s in stats.values())
    mine = [stored[d] for d in stats]
    return {
        "stations": len(stats),
        "samples_measured": measured,
        "samples_stored": sum(n for n, _ in mine),
        "samples_lost": measured - sum(d for _, d in mine),
        "samples_duplicated": sum(n - d for n, d in mine),
        "resent": sum(s.resent for s in stats.values()),
        "acked_as_duplicate": sum(s.duplicate for s in stats.values()),
        "reconnections": sum(max(0, s.connections - 1) for s in stats.values()),
        "refused_handshakes": sum(s.refused for s in stats.values()),
        "error_frames": errors,
    }


def check_every_eligible_sample_has_one_product(stack: Stack) -> tuple[int, float]:
    """(products, the time the last one appeared)."""
    eligible = stack.pg.query(
        "SELECT count(*) FROM sqal_sensor_samples WHERE is_compliant "
        "AND fusion_grade <> 'REJECT' AND lot_id IS NOT NULL"
    )[0][0]
    assert eligible > 0

    def products() -> tuple[int, int]:
        """Products, and products of an eligible sample of their lot."""
        return stack.pg.query(
            "SELECT count(*), count(*) FILTER (WHERE s.is_compliant "
            "AND s.fusion_grade <> 'REJECT' AND s.lot_id = p.lot_id) "
            "FROM consumer_products p JOIN sqal_sensor_samples s ON s.id = p.sqal_sample_pk"
        )[0]

    wait_until(lambda: products()[0] >= eligible, timeout=60, what="every product")
    done = time.monotonic()
    workers_idle([stack.worker])
    assert products() == (eligible, eligible)
    return eligible, done


def write_figures(name: str, figures: dict) -> None:
    (ROOT / "artifacts").mkdir(exist_ok=True)
    (ROOT / "artifacts" / f"fault-{name}.json").write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))


def test_stations_keep_sending_through_a_postgresql_crash_and_every_acked_sample_is_stored_once(
    stack,
):
    duration, outage_at, outage = 7.0, 2.0, 2.5
    first_three, late_station = list(stack.tokens)[:3], list(stack.tokens)[3]
    timeline: dict[str, float] = {}

    def restart_database() -> None:
        time.sleep(outage_at)
        stack.pg.stop("immediate")  # a crash: no checkpoint, recovery at start
        timeline["stopped"] = time.monotonic()
        time.sleep(outage)
        stack.pg.start()
        timeline["started"] = time.monotonic()
        timeline["first_commit"] = stack.wait_for_a_new_commit()

    async def stations() -> dict[str, StationStats]:
        async def late() -> dict[str, StationStats]:
            # Its first connection comes during the outage: the handshake needs the database.
            await asyncio.sleep(outage_at + outage / 3)
            return await simulate(stack.config([late_station], duration - outage_at - outage / 3))

        first, second = await asyncio.gather(simulate(stack.config(first_three, duration)), late())
        return {**first, **second}

    chaos = threading.Thread(target=restart_database)
    chaos.start()
    try:
        stats = asyncio.run(asyncio.wait_for(stations(), 90))
        drained = time.monotonic()
    finally:
        chaos.join()

    assert stack.server.proc.poll() is None, "Daphne died during the outage"
    figures = check_every_sample_stored_once(stack, stats)
    assert stats[late_station].acked > 0
    products, products_done = check_every_eligible_sample_has_one_product(stack)
    assert_integrity(stack.pg)
    assert stack.worker.proc is not None and stack.worker.proc.poll() is None, "the worker died"
    started = timeline["started"]
    write_figures(
        "postgres",
        {
            **figures,
            "outage_s": round(started - timeline["stopped"], 2),
            "first_commit_after_restart_s": round(timeline["first_commit"] - started, 2),
            "all_acked_after_restart_s": round(drained - started, 2),
            "products": products,
            "all_products_after_restart_s": round(products_done - started, 2),
        },
    )


def test_daphne_killed_with_stations_connected_loses_and_doubles_nothing(stack):
    duration, kill_at, down_for = 5.0, 1.5, 0.5
    device_ids = list(stack.tokens)[4:6]
    timeline: dict[str, float] = {}

    def kill_and_restart() -> None:
        time.sleep(kill_at)
        stack.server.kill()  # SIGKILL: no close frames, batches in flight die with it
        timeline["killed"] = time.monotonic()
        time.sleep(down_for)
        stack.server.start()
        timeline["started"] = time.monotonic()
        timeline["first_commit"] = stack.wait_for_a_new_commit()

    chaos = threading.Thread(target=kill_and_restart)
    chaos.start()
    try:
        stats = asyncio.run(asyncio.wait_for(simulate(stack.config(device_ids, duration)), 90))
        drained = time.monotonic()
    finally:
        chaos.join()

    figures = check_every_sample_stored_once(stack, stats)
    assert all(s.connections >= 2 for s in stats.values()), stats  # each one reconnected
    products, products_done = check_every_eligible_sample_has_one_product(stack)
    assert_integrity(stack.pg)
    started = timeline["started"]
    write_figures(
        "daphne",
        {
            **figures,
            "down_s": round(started - timeline["killed"], 2),
            "first_commit_after_restart_s": round(timeline["first_commit"] - started, 2),
            "all_acked_after_restart_s": round(drained - started, 2),
            "products_total": products,
            "all_products_after_restart_s": round(products_done - started, 2),
        },
    )


def test_the_broker_crashing_while_stations_send_loses_no_sample_and_no_product(
    stack, redis_server
):
    duration, crash_at, down_for = 5.0, 1.5, 2.0
    device_ids = list(stack.tokens)[6:8]
    timeline: dict[str, float] = {}

    def crash_broker() -> None:
        time.sleep(crash_at)
        redis_server.kill()  # the broker of Daphne's product requests and of the worker
        timeline["killed"] = time.monotonic()
        time.sleep(down_for)
        redis_server.start()
        timeline["started"] = time.monotonic()

    chaos = threading.Thread(target=crash_broker)
    chaos.start()
    try:
        stats = asyncio.run(asyncio.wait_for(simulate(stack.config(device_ids, duration)), 90))
        drained = time.monotonic()
    finally:
        chaos.join()

    assert stack.server.proc.poll() is None and stack.worker.proc.poll() is None
    figures = check_every_sample_stored_once(stack, stats)
    products, products_done = check_every_eligible_sample_has_one_product(stack)
    assert_integrity(stack.pg)
    started = timeline["started"]
    write_figures(
        "broker",
        {
            **figures,
            "down_s": round(started - timeline["killed"], 2),
            "all_acked_after_restart_s": round(drained - started, 2),
            "products_total": products,
            "all_products_after_restart_s": round(products_done - started, 2),
        },
    )
