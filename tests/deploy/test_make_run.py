"""``make run`` (scripts/run.sh) starts the servers as the README deploys them: granian serves
every HTTP request (consumer pages, admin) and Daphne the websockets, so that stations never
wait behind consumers; one command, stopped cleanly by SIGTERM."""

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
    everything), with its output in a file; yields (process, HTTP port, websocket port)."""
    with django_db_blocker.unblock():
        database_url = django_database_url()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EMBEDDED_PG", "CELERY_", "REDIS_URL", "CACHE_URL", "DATABASE_URL"))
    }
    port, ws_port = free_port(), free_port()
    env.update(DATABASE_URL=database_url, PORT=str(port), WS_PORT=str(ws_port), LOG_LEVEL="INFO")
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
        yield proc, port, ws_port
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


def test_make_run_serves_http_from_granian_and_websockets_from_daphne_and_stops_on_sigterm(
    make_run, django_db_blocker
):
    proc, port, ws_port = make_run
    with django_db_blocker.unblock():
        code = ConsumerProduct.objects.order_by("pk").values_list("qr_code", flat=True).first()
    assert code, "seed_demo registered no product"

    http = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{http}/admin/login/", timeout=10).status_code == 200
    page = httpx.get(f"{http}/p/{code}", timeout=10)
    assert page.status_code == 200 and 'name="overall_rating"' in page.text
    assert "granian" in " ".join(listener_of(proc, port).cmdline())
    assert "daphne" in " ".join(listener_of(proc, ws_port).cmdline())
    ws = f"ws://127.0.0.1:{ws_port}/ws/sensors/"
    assert asyncio.run(greeting(ws))["type"] == "connection_established"
    # The pages' origin (granian's port) may open Daphne's websockets, another site may not.
    page_origin = {"Origin": f"http://localhost:{port}"}
    assert asyncio.run(greeting(ws, **page_origin))["type"] == "connection_established"
    with pytest.raises(InvalidStatus):
        asyncio.run(greeting(ws, Origin="http://evil.example"))

    started = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 143
    gone, alive = psutil.wait_procs(started, timeout=30)
    assert not [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
