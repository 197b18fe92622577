"""Real Daphne servers and websocket clients for the station protocol tests."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from sensors.services import device_issue_token
from tests.factories import make_device
from tests.support.servers import stop_process

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


def live_database_url() -> str:
    s = connection.settings_dict
    host = quote(s["HOST"] or "", safe="")
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{s['USER']}@{host}{port}/{s['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DaphneServer:
    """A Daphne process serving gaveurs.asgi on the test database."""

    def __init__(self, env: dict[str, str], app: str = "gaveurs.asgi:application") -> None:
        self.env = env
        self.app = app
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = Path(os.environ.get("TMPDIR", "/tmp")) / f"daphne-{self.port}.log"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/sensors/"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> DaphneServer:
        env = {**os.environ, **self.env}
        env.pop("EMBEDDED_PG_CLEANUP", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), self.app],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daphne exited: {self.log.read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"daphne did not start in {timeout:g} s")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        stop_process(self.proc)


def server_env(**extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": live_database_url(),
        "DJANGO_SETTINGS_MODULE": "gaveurs.settings",
        "SQAL_ALLOW_UNREGISTERED_DEVICES": "false",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


@pytest.fixture(scope="module")
def daphne(django_db_setup, django_db_blocker):
    """A Daphne server refusing unregistered stations, shared by a test module."""
    with django_db_blocker.unblock():
        server = DaphneServer(server_env(SQAL_THROTTLE_RATE="200", SQAL_THROTTLE_BURST="400"))
    server.start()
    yield server
    server.stop()
    with django_db_blocker.unblock():
        wait_for_sessions_to_close()


def wait_for_sessions_to_close(timeout: float = 5.0) -> None:
    """Let PostgreSQL end a stopped server's sessions before the test database is dropped."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.05)


@pytest.fixture
def station(db):
    """A registered station with a token: (device, token)."""
    device = make_device(device_id="ESP32_LL_01")
    return device, device_issue_token(device=device)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def open_station(url: str, token: str | None = None, **kw):
    """Connect like a station: no Origin header, token as a bearer token."""
    from websockets.asyncio.client import connect

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ws = await connect(url, additional_headers=headers, max_size=None, open_timeout=10, **kw)
    greeting = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert greeting["type"] == "connection_established"
    return ws


async def exchange(ws, message: str | dict) -> dict:
    await ws.send(message if isinstance(message, str) else json.dumps(message))
    return json.loads(await asyncio.wait_for(ws.recv(), 20))
