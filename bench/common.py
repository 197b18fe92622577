"""Helpers shared by the bench scripts: ports, percentiles, the database, the server and worker
processes, and their memory.

Each bench is a script (``.venv/bin/python bench/<name>.py``); they import this module as
``bench.common`` after putting the project root on ``sys.path``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and of its children alive now (a prefork server's
    workers, PostgreSQL's backends). Read before and after a turn: the difference is the turn's."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def tree_cpu_by_pid(pid: int) -> dict[int, float]:
    """User + system CPU seconds of a process and of each child alive now, by process id.

    ``cpu_seconds_between(before, after)`` of two readings counts only the processes alive at
    the second one: a child that exited in between (a PostgreSQL backend whose connection
    reached its CONN_MAX_AGE) takes its whole life's CPU with it, which a difference of
    ``tree_cpu_seconds`` would subtract from the turn (a negative figure)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {}
    found = {}
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        found[proc.pid] = times.user + times.system
    return found


def cpu_seconds_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two ``tree_cpu_by_pid`` readings by the processes alive at
    the second (a process started in between counts from zero)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points; 0 for fewer than two distinct x."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def throwaway_database_url(data_dir: Path | None = None) -> str:
    """DATABASE_URL when set, else a new embedded PostgreSQL (in ``data_dir``, default a new
    temporary folder) stopped and deleted when this process ends."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from gaveurs.embedded_pg import database_url

    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="gtbench.")) / "pg"
    return database_url(data_dir, cleanup_mode="delete")


def django_setup(db_url: str, *, migrate: bool = True) -> None:
    """Set Django up in this process on ``db_url`` (and migrate it)."""
    os.environ["DATABASE_URL"] = db_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gaveurs.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def django_database_url() -> str:
    """The URL of Django's default database, for subprocesses (psycopg accepts it too)."""
    from django.db import connection

    from gaveurs.embedded_pg import settings_database_url

    return settings_database_url(connection.settings_dict)


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_process(proc)
                raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.1)


def start_daphne(
    application: str, env: dict[str, str], log: Path, options: list[str] | None = None
) -> tuple[subprocess.Popen, int]:
    """A Daphne server on a free loopback port serving ``module:attribute``; (process, port)."""
    port = free_port()
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, *(options or []), application],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_for_port(port, proc, log)
    return proc, port


def granian_command(
    application: str, port: int, *, workers: int = 2, threads: int = 1
) -> list[str]:
    """granian serving the WSGI ``module:attribute`` on a loopback port, as the README deploys
    the consumer pages (``--interface wsgi``, no websockets)."""
    return [
        str(Path(sys.executable).parent / "granian"),
        "--interface",
        "wsgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--blocking-threads",
        str(threads),
        "--no-ws",
        "--log-level",
        "warning",
        "--working-dir",
        str(ROOT),
        application,
    ]


def start_granian(
    application: str,
    env: dict[str, str],
    log: Path,
    *,
    workers: int = 2,
    threads: int = 1,
    niceness: int = 0,
) -> tuple[subprocess.Popen, int]:
    """granian serving the WSGI ``module:attribute`` on a free loopback port, as the README
    deploys the consumer pages (``--interface wsgi``, no websockets); (process, port).
    ``niceness`` > 0 runs it at a lower CPU priority than the stations' server."""
    port = free_port()
    command = [
        *(["nice", "-n", str(niceness)] if niceness else []),
        *granian_command(application, port, workers=workers, threads=threads),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**env, "PYTHONPATH": str(ROOT)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_for_port(port, proc, log)
    return proc, port


def postgres_pid(connection) -> int | None:
    """The PostgreSQL postmaster's pid (the parent of this psycopg or Django connection's
    backend), when the server runs on this machine; else None."""
    import psutil

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        return psutil.Process(backend).ppid()
    except Exception:  # a remote server, or no permission to see it: no figure
        return None


def start_worker(
    env: dict[str, str],
    log: Path,
    timeout: float = 60,
    wait: bool = True,
    niceness: int = 0,
) -> subprocess.Popen:
    """The real Celery worker (``scripts/worker.sh``), once it logs that it is ready (or at once
    with ``wait=False``: then call ``wait_worker_ready``). ``niceness`` > 0 runs it (and its
    pool processes) at a lower CPU priority than the servers."""
    env = {**env, "CELERY_LOG_LEVEL": env.get("CELERY_LOG_LEVEL", "info")}  # "ready." is INFO
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*(["nice", "-n", str(niceness)] if niceness else []), "bash"]
            + [str(ROOT / "scripts/worker.sh")],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    if wait:
        wait_worker_ready(proc, log, timeout)
    return proc


def wait_worker_ready(proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while b" ready." not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            raise RuntimeError(f"worker did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)


def start_redis(directory: Path) -> tuple[subprocess.Popen, str]:
    """A private ``redis-server`` on a free loopback port, nothing saved to disk; (process, URL).

    A bench that counts the broker's CPU needs a server of its own: the shared one serves
    other work too."""
    port = free_port()
    log = directory / "redis.log"
    try:
        proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
            + ["--appendonly", "no", "--dir", str(directory), "--logfile", str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise SystemExit("redis-server is not installed (the bench's broker)") from None
    wait_for_port(port, proc, log, timeout=15)
    return proc, f"redis://127.0.0.1:{port}/0"


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the process group started for ``proc`` (its own session), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class RssSampler(threading.Thread):
    """Samples the resident memory (RSS) of process trees every ``interval`` seconds.

    ``samples[name]`` is a list of (seconds since start, MB) with the RSS of the named process
    and all its descendants summed (a prefork worker's children included).
    """

    def __init__(self, processes: dict[str, int], interval: float) -> None:
        super().__init__(daemon=True)
        self.pids = processes
        self.interval = interval
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in processes}
        self.started_at = time.monotonic()
        self.halt = threading.Event()

    @staticmethod
    def tree_rss_mb(pid: int) -> float | None:
        import psutil

        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return None
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total / 2**20

    def sample(self) -> None:
        now = time.monotonic() - self.started_at
        for name, pid in self.pids.items():
            rss = self.tree_rss_mb(pid)
            if rss is not None:
                self.samples[name].append((now, rss))

    def run(self) -> None:
        while not self.halt.is_set():
            self.sample()
            self.halt.wait(self.interval)

    def stop(self) -> None:
        self.halt.set()
        self.join()
        self.sample()

    def report(self, name: str, since: float, until: float) -> dict:
        """start/end/max RSS and the slope (MB/min) over the second half of [since, until]."""
        points = [(t, mb) for t, mb in self.samples[name] if since <= t <= until]
        if not points:
            return {"samples": 0}
        half = since + (until - since) / 2
        second = [(t / 60, mb) for t, mb in points if t >= half]
        return {
            "samples": len(points),
            "start_mb": round(points[0][1], 1),
            "end_mb": round(points[-1][1], 1),
            "max_mb": round(max(mb for _, mb in points), 1),
            "slope_second_half_mb_per_min": round(slope(second), 2),
        }
