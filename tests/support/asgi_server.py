"""A Daphne process serving gaveurs.asgi with an environment of the test's choosing.

For tests that read what the server itself says: its health and metrics endpoints, its log lines
(captured in ``log``). The database defaults to the test session's.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from tests.support.servers import ROOT, free_port, stop_process, wait_until


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for another process, from a Django connection's settings."""
    s = settings_dict
    auth = quote(s["USER"] or "postgres", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}@{quote(s['HOST'] or '', safe='')}{port}/{s['NAME']}"


def wait_for_sessions_to_close(connection, timeout: float = 5.0) -> None:
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


class AsgiServer:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.port = free_port()
        self.log = log_dir / f"daphne-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/sensors/"

    def start(self, timeout: float = 60) -> AsgiServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_PG")}
        env.update({"DJANGO_SETTINGS_MODULE": "gaveurs.settings", **self.env})
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)]
                + ["gaveurs.asgi:application"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

        def listening() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"daphne exited: {self.log.read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        wait_until(listening, timeout=timeout, what="daphne")
        return self

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None
