"""Processes the end-to-end tests start, and the database URL they are given.

- ``django_database_url`` (the session's test database, for subprocesses);
- ``DaphneServer`` (gaveurs.asgi on the test database), ``server_env``,
  ``wait_for_sessions_to_close``; ``GranianServer``;
- ``Worker`` (a real Celery worker) and ``use_broker`` (where this process publishes);
- a Redis and a PostgreSQL of a test's own (``RedisServer``, ``DedicatedPostgres``,
  ``seed_stations``): the machine's Redis on 127.0.0.1:6379 and the session's test database are
  shared, so a test that kills or restarts its broker or database uses one of these instead.
Wait on a condition (``wait_until``), never on a fixed sleep.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import unquote

import psycopg
from django.db import connection
from kombu import pools as kombu_pools

from gaveurs.celery import app as celery_app
from gaveurs.embedded_pg import settings_database_url

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


def django_database_url() -> str:
    """The URL of the test database Django is connected to, for subprocesses."""
    return settings_database_url(connection.settings_dict)


class DaphneServer:
    """A Daphne process serving gaveurs.asgi on the test database."""

    def __init__(
        self,
        env: dict[str, str],
        app: str = "gaveurs.asgi:application",
        log_dir: Path | None = None,
    ) -> None:
        self.env = env
        self.app = app
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        directory = log_dir or Path(os.environ.get("TMPDIR", "/tmp"))
        self.log = directory / f"daphne-{self.port}.log"

    @property
    def ws(self) -> str:
        return self.url

    def log_text(self) -> str:
        """What the server logged (tests that read its own lines)."""
        return self.log.read_text(errors="replace")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/sensors/"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> DaphneServer:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gaveurs.settings", **self.env}
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
        "DATABASE_URL": django_database_url(),
        "DJANGO_SETTINGS_MODULE": "gaveurs.settings",
        "SQAL_ALLOW_UNREGISTERED_DEVICES": "false",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


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


_RECEIVED = re.compile(r"\] received$", re.MULTILINE)
_FINISHED = re.compile(r"\] (succeeded in|raised (un)?expected|retry:|ignored)")


def workers_idle(workers: list[Worker], *, timeout: float = 30.0) -> None:
    """Wait until no task is in flight in any of ``workers`` (instead of sleeping "a duplicate
    would show up now"): after that, what the database holds is what the tasks wrote."""
    wait_until(lambda: all(w.idle() for w in workers), timeout=timeout, what="idle workers")


class Worker:
    """A `celery worker` subprocess on queues exports and default (solo pool)."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.log: Path | None = None

    def start(self, timeout: float = 30.0, **extra_env: str) -> None:
        self.log = self.log_dir / f"worker-{uuid.uuid4().hex[:8]}.log"
        cmd = [sys.executable, "-m", "celery", "-A", "gaveurs", "worker"]
        cmd += ["-Q", "exports,default", "--pool=solo", "-l", "info"]
        cmd += ["-n", f"gt-test-{uuid.uuid4().hex[:8]}@%h"]
        cmd += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env={**self.env, **extra_env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until(self._ready, timeout=timeout, what=f"worker ready (log {self.log})")
        except BaseException:
            self.kill()
            raise

    def _ready(self) -> bool:
        assert self.proc is not None and self.log is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"worker exited: {self.log.read_text()[-3000:]}")
        return b" ready." in self.log.read_bytes()

    def idle(self) -> bool:
        """Every task this worker has received has finished (succeeded, raised or was retried):
        nothing it could still write is in flight. Read from its log (``-l info``)."""
        if self.log is None or not self.log.exists():
            return True
        text = self.log.read_text(errors="replace")
        return len(_RECEIVED.findall(text)) == len(_FINISHED.findall(text))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


def use_broker(url: str, options: dict) -> None:
    """Point this (publishing) process at ``url``; its pools are rebuilt on next use."""
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    # kombu keeps producer pools in a registry keyed by broker URL: one made for the same URL
    # earlier (another test module's broker) would hand out its closed connection pool
    # ("Acquire on closed pool"). Start from an empty registry.
    kombu_pools.reset()
    celery_app.conf.broker_url = url
    celery_app.conf.broker_transport_options = options


SEED_STATIONS = """
import json
from sensors.services import device_issue_token
from tests.factories import make_device, make_lot
lot = make_lot()
tokens = {}
for n in range(1, %(count)d + 1):
    device = make_device(device_id=f"ESP32_LL_{n:02d}", assigned_lot=lot)
    tokens[device.device_id] = device_issue_token(device=device)
print(json.dumps({"lot_id": lot.id, "lot_code": lot.code, "tokens": tokens}))
"""


def seed_stations(pg: DedicatedPostgres, count: int) -> dict:
    """A lot and ``count`` stations assigned to it, with tokens, in ``pg``'s database."""
    out = pg.manage("shell", "-c", SEED_STATIONS % {"count": count})
    return json.loads(out.strip().splitlines()[-1])
