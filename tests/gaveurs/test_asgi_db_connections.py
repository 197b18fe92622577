"""The ASGI server holds a bounded number of database connections, and none once idle.

Under Daphne, Django runs each HTTP request in a context (and thread) of its own with a database
connection of its own. bench/soak.py (200 consumers) found both ways this runs PostgreSQL out of
connections, answering "too many clients" to everyone (scan pages, ingestion writers, the worker:
500s and lost registrations): a slow moment of the database opens one connection per request in
flight, and connections kept for reuse (CONN_MAX_AGE) are never reused nor closed.
gaveurs/asgi.py lets at most ASGI_HTTP_CONCURRENCY requests in at once, and closes a request's
connections when it finishes.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.factories import make_lot, make_sample
from tests.support.servers import django_database_url
from traceability.services import product_register

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 4
REQUESTS = 24


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.fixture(scope="module")
def daphne(django_db_setup, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("daphne")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_PG")}
    env.update(
        DATABASE_URL=django_database_url(),
        DJANGO_SETTINGS_MODULE="gaveurs.settings",
        ASGI_HTTP_CONCURRENCY=str(LIMIT),
    )
    log = tmp_path / "daphne.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
            + ["gaveurs.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield port, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _scan_path() -> str:
    lot = make_lot()
    sample = make_sample(lot=lot)
    product = product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
    return f"/p/{product.qr_code}"


def _concurrently(port: int, path: str, n: int) -> list[int]:
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(_get(port, path))) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return statuses


def _backends(watch) -> int:
    return watch.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
        "AND datname = current_database()"
    ).fetchone()[0]


def test_the_server_keeps_no_database_connection_once_its_requests_are_answered(daphne):
    port, _ = daphne
    path = _scan_path()
    conninfo = django_database_url().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(conninfo, autocommit=True) as watch:
        before = _backends(watch)
        for _ in range(3):
            assert _concurrently(port, path, REQUESTS) == [200] * REQUESTS
        deadline = time.monotonic() + 10
        while _backends(watch) > before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _backends(watch) <= before


def test_requests_waiting_on_a_slow_database_hold_at_most_the_configured_connections(daphne):
    port, _ = daphne
    path = _scan_path()
    assert _get(port, path) == 200

    conninfo = django_database_url().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(conninfo) as locker, psycopg.connect(conninfo, autocommit=True) as watch:
        locker.execute("LOCK TABLE consumer_products IN ACCESS EXCLUSIVE MODE")
        statuses: list[int] = []
        threads = [
            threading.Thread(target=lambda: statuses.append(_get(port, path)))
            for _ in range(REQUESTS)
        ]
        for thread in threads:
            thread.start()
        waiting_max = 0
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            waiting = watch.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            ).fetchone()[0]
            waiting_max = max(waiting_max, waiting)
            time.sleep(0.05)
        locker.rollback()
        for thread in threads:
            thread.join(60)

    assert 1 <= waiting_max <= LIMIT
    assert statuses == [200] * REQUESTS
