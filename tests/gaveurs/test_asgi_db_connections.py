"""The ASGI server opens a bounded number of database connections, however many requests wait.

Under Daphne, Django runs each HTTP request in a thread of its own with a connection of its own.
bench/soak.py (200 consumers) found that a slow moment of the database then opens one connection
per request in flight until PostgreSQL answers "too many clients" to everyone: scan pages, the
ingestion writers and the worker alike (500s, lost registrations). gaveurs/asgi.py lets at most
ASGI_HTTP_CONCURRENCY requests in at once; here a lock makes every scan wait on the database.
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
from urllib.parse import quote

import psycopg
import pytest
from django.db import connection

from tests.factories import make_lot, make_sample
from traceability.services import product_register

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 4
REQUESTS = 24


def _database_url() -> str:
    s = connection.settings_dict
    auth = quote(s["USER"] or "postgres", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}@{quote(s['HOST'] or '', safe='')}{port}/{s['NAME']}"


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


@pytest.fixture
def daphne(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_PG")}
    env.update(
        DATABASE_URL=_database_url(),
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


def test_requests_waiting_on_a_slow_database_hold_at_most_the_configured_connections(daphne):
    port, _ = daphne
    lot = make_lot()
    sample = make_sample(lot=lot)
    product = product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
    path = f"/p/{product.qr_code}"
    assert _get(port, path) == 200

    conninfo = _database_url().replace("postgres://", "postgresql://", 1)
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
