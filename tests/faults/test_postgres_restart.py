"""PostgreSQL restarted while stations send: nothing acked is lost, nothing is stored twice.

A PostgreSQL of the module's own (the session's test database is not touched) serves a Daphne
process and a Celery worker (broker: a Redis of our own). Simulated stations (``sensors.simulator``,
what ``manage.py simulate_sqal`` runs) keep measuring and sending while the database is stopped
and started again; they resend whatever was not acked. Figures go to artifacts/fault-postgres.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path

import pytest

from sensors.simulator import SimulatorConfig, simulate
from tests.faults.conftest import seed_stations
from tests.sensors.conftest import DaphneServer
from tests.support.servers import wait_until
from tests.traceability.test_tasks_worker import Worker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STATIONS = 3  # sending from the start; one more connects for the first time during the outage
RATE = 5.0  # samples per second per station
DURATION = 7.0  # seconds of measuring
OUTAGE_AT, OUTAGE = 2.0, 2.5  # seconds after the start; seconds without database


def process_env(**values: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EMBEDDED_PG", "CELERY_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(DJANGO_SETTINGS_MODULE="gaveurs.settings", LOG_LEVEL="WARNING", **values)
    return env


def test_stations_keep_sending_through_a_postgresql_restart_and_every_acked_sample_is_stored_once(
    dedicated_pg, redis_server, tmp_path
):
    seed = seed_stations(dedicated_pg, STATIONS + 1)
    late_station = list(seed["tokens"])[-1]
    env = process_env(
        DATABASE_URL=dedicated_pg.url,
        CELERY_BROKER_URL=redis_server.url(1),
        PRODUCT_SWEEP_GRACE_SECONDS="3600",  # products must come from the tasks ingestion sent
    )
    server = DaphneServer(env).start()
    worker = Worker(env, tmp_path)
    worker.start()
    timeline: dict[str, float] = {}

    def count_samples() -> int:
        return dedicated_pg.query("SELECT count(*) FROM sqal_sensor_samples")[0][0]

    def restart_database() -> None:
        time.sleep(OUTAGE_AT)
        before = time.monotonic()
        dedicated_pg.stop("immediate")  # a crash: no checkpoint, recovery at start
        timeline["stopped"] = time.monotonic()
        timeline["stop_took"] = timeline["stopped"] - before
        time.sleep(OUTAGE)
        dedicated_pg.start()
        timeline["started"] = time.monotonic()
        stored = count_samples()
        wait_until(lambda: count_samples() > stored, timeout=30, what="a commit after restart")
        timeline["first_commit"] = time.monotonic()

    def config(device_ids: list[str], duration: float) -> SimulatorConfig:
        return SimulatorConfig(
            url=server.url,
            device_ids=device_ids,
            tokens=seed["tokens"],
            lot_codes={d: seed["lot_code"] for d in device_ids},
            rate=RATE,
            duration=duration,
            form="nested",
            reject_ratio=0.2,
            drain_timeout=45,
            seed=11,
        )

    async def stations() -> dict:
        async def late() -> dict:
            await asyncio.sleep(OUTAGE_AT + OUTAGE / 3)
            return await simulate(config([late_station], DURATION - OUTAGE_AT - OUTAGE / 3))

        first, second = await asyncio.gather(
            simulate(config(list(seed["tokens"])[:STATIONS], DURATION)), late()
        )
        return {**first, **second}

    chaos = threading.Thread(target=restart_database)
    started = time.monotonic()
    chaos.start()
    try:
        stats = asyncio.run(asyncio.wait_for(stations(), 90))
        drained = time.monotonic()
    finally:
        chaos.join()
    try:
        assert server.proc.poll() is None, "Daphne died during the outage"
        rows = dedicated_pg.query(
            "SELECT device_id, count(*), count(DISTINCT sample_id) FROM sqal_sensor_samples "
            "GROUP BY device_id"
        )
        stored = {device_id: (n, distinct) for device_id, n, distinct in rows}
        errors: dict[str, int] = {}
        for device_id, s in stats.items():
            for code, n in s.errors.items():
                errors[code] = errors.get(code, 0) + n
            assert s.measured >= RATE * (DURATION - OUTAGE_AT - OUTAGE) - 1, (device_id, s)
            # Every measured sample was acked (saved, or duplicate after a resend) and is stored
            # exactly once: nothing acked lost, nothing doubled.
            assert s.acked == s.measured, (device_id, s)
            assert stored[device_id] == (s.measured, s.measured), (device_id, s, stored)
        assert set(errors) <= {"storage_error", "internal_error"}, errors
        assert stats[late_station].connections >= 1 and stats[late_station].acked > 0

        eligible = dedicated_pg.query(
            "SELECT count(*) FROM sqal_sensor_samples WHERE is_compliant "
            "AND fusion_grade <> 'REJECT' AND lot_id IS NOT NULL"
        )[0][0]
        assert eligible > 0

        def products() -> tuple[int, int]:
            """Products, and products of an eligible sample."""
            return dedicated_pg.query(
                "SELECT count(*), count(*) FILTER (WHERE s.is_compliant "
                "AND s.fusion_grade <> 'REJECT' AND s.lot_id = p.lot_id) "
                "FROM consumer_products p JOIN sqal_sensor_samples s ON s.id = p.sqal_sample_pk"
            )[0]

        wait_until(lambda: products()[0] >= eligible, timeout=60, what="every product")
        time.sleep(1.0)  # a duplicate would show up now
        assert products() == (eligible, eligible)
        products_done = time.monotonic()
    finally:
        worker.stop()
        server.stop()

    measured = sum(s.measured for s in stats.values())
    figures = {
        "stations": STATIONS + 1,
        "late_station_refused_handshakes": stats[late_station].refused,
        "samples_measured": measured,
        "samples_stored": sum(n for n, _ in stored.values()),
        "samples_lost": measured - sum(d for _, d in stored.values()),
        "samples_duplicated": sum(n - d for n, d in stored.values()),
        "resent": sum(s.resent for s in stats.values()),
        "acked_as_duplicate": sum(s.duplicate for s in stats.values()),
        "reconnections": sum(s.connections - 1 for s in stats.values()),
        "error_frames": errors,
        "outage_s": round(timeline["started"] - timeline["stopped"], 2),
        "first_commit_after_restart_s": round(timeline["first_commit"] - timeline["started"], 2),
        "all_acked_after_restart_s": round(drained - timeline["started"], 2),
        "products": eligible,
        "all_products_after_restart_s": round(products_done - timeline["started"], 2),
        "run_s": round(drained - started, 2),
    }
    (ROOT / "artifacts").mkdir(exist_ok=True)
    (ROOT / "artifacts" / "fault-postgres.json").write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))
