"""Servers of our own for fault and deployment tests: a Redis and a PostgreSQL we may restart.

The machine's Redis on 127.0.0.1:6379 and the session's test database are shared: a test that
kills or restarts its broker or database uses one of these instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import psycopg

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, *, timeout: float = 30.0, what: str = "condition", step: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


def stop_process(proc: subprocess.Popen | None, *, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL if the process has not exited after ``grace`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class RedisServer:
    """``redis-server`` on a free port with its own directory; queued tasks survive a restart,
    even a SIGKILL: with ``appendfsync always`` Redis writes and syncs its append-only file before
    it answers (with ``everysec`` it may answer up to 2 s before writing: a busy machine lost a
    whole queue that way)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port)]
            + ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
            + ["--dir", str(self.directory)]
            + ["--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        wait_until(self.ping, timeout=15, what=f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited: {self.directory / 'redis.log'}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


class DedicatedPostgres:
    """An embedded PostgreSQL (pgserver) in a data folder of its own, migrated, restartable.

    Started through ``gaveurs.embedded_pg.database_url`` like the project's own; stopped and
    started again with pgserver's ``pg_ctl`` on the same Unix socket, so ``url`` stays valid.
    """

    def __init__(self, data_dir: Path) -> None:
        import pgserver

        from gaveurs.embedded_pg import database_url

        self.data_dir = data_dir.resolve()
        self.url = database_url(self.data_dir, cleanup_mode="delete")
        self.server = pgserver.get_server(self.data_dir)
        self.socket_dir = unquote(self.url.split("@", 1)[1].split("/", 1)[0])

    def psycopg_conninfo(self) -> str:
        return f"host={self.socket_dir} user=postgres dbname=postgres"

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.psycopg_conninfo(), autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def manage(self, *args: str, timeout: float = 120) -> str:
        """Run ``manage.py`` on this database; its stdout."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_PG")}
        env["DATABASE_URL"] = self.url
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode:
            raise AssertionError(f"manage.py {' '.join(args)} failed: {done.stderr[-3000:]}")
        return done.stdout

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.data_dir, user=self.server.system_user, timeout=60)

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every session and shuts down cleanly; ``immediate`` is a crash."""
        self._pg_ctl("-w", "-m", mode, "stop")

    def start(self) -> None:
        self._pg_ctl(
            "-w",
            "-o",
            '-h ""',
            "-o",
            f"-k {self.socket_dir}",
            "-l",
            str(self.data_dir / "log"),
            "start",
        )

    def close(self) -> None:
        # pgserver counts two handles here (database_url and get_server) and stops the server
        # only when both are released, so stop it ourselves: the test run leaves no postgres.
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop("fast")
        self.server.cleanup()


class GranianServer:
    """The consumer pages under WSGI (granian, the project's WSGI server), ``workers`` processes."""

    def __init__(self, env: dict[str, str], log_dir: Path, workers: int = 2) -> None:
        self.env = env
        self.port = free_port()
        self.workers = workers
        self.log = log_dir / f"granian-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> GranianServer:
        cmd = [str(Path(sys.executable).parent / "granian"), "--interface", "wsgi"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)]
        cmd += ["--no-ws", "--log-level", "warning", "--working-dir", str(ROOT)]
        cmd += ["gaveurs.wsgi:application"]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

        def listening() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"granian exited: {self.log.read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        wait_until(listening, timeout=timeout, what="granian")
        return self

    def stop(self) -> None:
        stop_process(self.proc, grace=15)
        self.proc = None
