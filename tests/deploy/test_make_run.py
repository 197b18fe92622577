"""``make run`` (scripts/run.sh) starts the servers as the README deploys them: Daphne serves the
stations' websockets (and the staff pages) on PORT, granian the consumer pages the QR codes lead
to on PAGES_PORT, so that stations never wait behind consumers; one command, stopped cleanly by
SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.servers import django_database_url, free_port, wait_until
from traceability.models import ConsumerProduct

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def make_run(django_db_setup, django_db_blocker, tmp_path):
    """scripts/run.sh on the test database (it migrates, seeds the demo data and starts
    everything), with its output in a file; yields (process, Daphne's port, granian's port)."""
    with django_db_blocker.unblock():
        database_url = django_database_url()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EMBEDDED_PG", "CELERY_", "REDIS_URL", "CACHE_URL", "DATABASE_URL"))
    }
    port, pages_port = free_port(), free_port()
    env.update(
        DATABASE_URL=database_url, PORT=str(port), PAGES_PORT=str(pages_port), LOG_LEVEL="INFO"
    )
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", "scripts/run.sh"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def running() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"run.sh exited {proc.returncode}: {log.read_text()[-3000:]}")
        return "Gaveurs Trace is running." in log.read_text(errors="replace")

    try:
        wait_until(running, timeout=240, what="make run", step=0.5)
        yield proc, port, pages_port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def listener_of(proc: subprocess.Popen, port: int) -> psutil.Process:
    """The process started by run.sh that listens on ``port``."""
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            if any(c.laddr.port == port for c in child.net_connections(kind="tcp")):
                return child
        except psutil.NoSuchProcess:
            continue
    raise AssertionError(f"nothing started by run.sh listens on {port}")


async def greeting(url: str, **headers: str) -> dict:
    async with connect(url, open_timeout=10, additional_headers=headers) as ws:
        return json.loads(await asyncio.wait_for(ws.recv(), 10))


def test_make_run_serves_consumer_pages_from_granian_and_stations_from_daphne_and_stops_on_sigterm(
    make_run, django_db_blocker
):
    proc, port, pages_port = make_run
    with django_db_blocker.unblock():
        product = ConsumerProduct.objects.order_by("pk").first()
    assert product, "seed_demo registered no product"

    assert "daphne" in " ".join(listener_of(proc, port).cmdline())
    assert "granian" in " ".join(listener_of(proc, pages_port).cmdline())
    # The QR codes lead to granian's port, which serves the consumer page.
    page = httpx.get(f"http://127.0.0.1:{pages_port}/p/{product.qr_code}", timeout=10)
    assert page.status_code == 200 and 'name="overall_rating"' in page.text
    # Daphne, on the port stations already know, serves the websockets and the staff pages.
    assert httpx.get(f"http://127.0.0.1:{port}/admin/login/", timeout=10).status_code == 200
    ws = f"ws://127.0.0.1:{port}/ws/sensors/"
    assert asyncio.run(greeting(ws))["type"] == "connection_established"
    # The staff pages' origin and the consumer pages' origin may open the websockets, another
    # site may not.
    for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{pages_port}"):
        assert asyncio.run(greeting(ws, Origin=origin))["type"] == "connection_established"
    with pytest.raises(InvalidStatus):
        asyncio.run(greeting(ws, Origin="http://evil.example"))

    started = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 143
    gone, alive = psutil.wait_procs(started, timeout=30)
    assert not [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
