"""Benchmark of the public scan page against a trivial Django view, on the same server.

Starts a throwaway embedded PostgreSQL (unless DATABASE_URL is set), registers products the
real way (PL/pgSQL function, sealed in the ledger), stores their consumer pages as the Celery
task a head signing enqueues does (``feedback.tasks``; its CPU per product is printed), then
serves the project with a WSGI server (granian, the consumer pages' server:
docs/architecture.md) or Daphne (ASGI), twice: once as deployed, and once with the page cache and
the proof cache off (``SCAN_PAGE_CACHE_SECONDS=0``, ``LEDGER_PROOF_CACHE_SECONDS=0``: the cold
path, as in production where a consumer scans one unit and a cache's hit rate is near zero). It
loads the URLs with keep-alive HTTP/1.1 clients in several processes for a fixed time each, taken
in turns (``--rounds`` slices each) so a change of the shared machine's load hits them alike:

- ``/p/<qr_code>``: the full scan page (scan counted), on the deployed server for ``--products``
  products scanned over and over; on the cold server for products never scanned before, each
  requested once (``--fresh`` of them, with their stored pages: the scan statement reads the
  page), and for products without a stored page (``--unstored``: registered before stored pages
  existed, or whose page went stale; their first scan renders the page and stores it);
- ``/bench/trivial``: a Django view returning "ok" through the same middleware (on both
  servers: each path is compared with the trivial view of its own server);
- ``/bench/trivial-db``: the same plus one ``SELECT 1`` (one database round trip);
- ``/bench/trivial-scan-write/<qr_code>``: the trivial view plus the scan page's own scan write
  (``product_scan`` as the page calls it: the code's format and signature, then the one
  statement that resolves it, stores the scan event in the request's language and bumps the
  counter) and its cache operations (the day's salt, the per-client limit's add + incr), no
  page: the floor of any page that counts every scan.

A cold turn ends when its fresh products have all been scanned once (its rate is over the time
it took). The cached page and "trivial + scan write" are loaded apart from the others, in
``--pair-turns`` pairs of short alternating turns: their ratio is the median of the pairs'
ratios (neighbouring turns share the machine's load), printed with its quartiles, the pooled
ratio and the ratio of CPU per request.

Prints requests/s, p50/p99 latency, the server's and PostgreSQL's CPU per request for
each, and the ratios with their goals: cached page >= 0.9 x "trivial + scan write", cold page
>= 0.25 x the trivial view. Last line: one JSON object. The servers run as deployed: JSON logs
at INFO with one access line per request (to a file here), and for granian Django's
connection health checks off (``DB_CONN_HEALTH_CHECKS=false``: else a ``SELECT 1`` per request,
which the trivial view never sends); ``DB_CONN_HEALTH_CHECKS=true .venv/bin/python
bench/scan.py`` measures with them.

Durability: a scan is counted by one prepared statement whose transaction sets
``synchronous_commit = off`` (``traceability.scans``). PostgreSQL then answers the commit before
the WAL is flushed to disk, so the page never waits for the disk. A crash of the application
loses nothing (the scan is committed before the page is sent). A crash of PostgreSQL itself or
of the machine may lose the scans committed in its last few hundred milliseconds (up to
3 x ``wal_writer_delay``, 0.6 s by default): those scan events and counter increments are gone,
the counts stay consistent (never corrupt, never half a scan). Nothing else is affected: reviews
(``feedback_submit``), samples and products commit with the default ``synchronous_commit = on``,
so what they acknowledge is on disk.

    .venv/bin/python bench/scan.py [--server granian|daphne] [--workers 2] [--seconds 8]
                                   [--rounds 4] [--clients 2] [--threads 4] [--products 20]
                                   [--fresh 7000] [--unstored 2500] [--pair-turns 16]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import (  # noqa: E402
    cpu_seconds_between,
    free_port,
    granian_command,
    postgres_pid,
    tree_cpu_by_pid,
)

BIN = Path(sys.executable).parent


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from gaveurs.embedded_pg import database_url

    return database_url(Path(tempfile.mkdtemp(prefix="gtbench.")), cleanup_mode="delete")


def _setup_products(count: int, fresh: int, unstored: int) -> tuple[list[str], ...]:
    """Migrate, register products from compliant samples, seal the ledger, and store their
    consumer pages as the Celery task a head signing enqueues does (``feedback.tasks``), but
    for ``unstored`` products left as if registered before stored pages existed. Returns the
    QR codes: ``count`` products scanned over and over, ``fresh`` never scanned before (with
    stored pages), ``unstored`` never scanned and without a stored page, and 40 of the latter
    for the warm-up. Prints what rendering and storing the pages cost per product."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gaveurs.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from bench.builders import make_lot, make_sample
    from feedback.pages import scan_pages_render
    from feedback.tasks import CHUNK
    from traceability.services import product_register

    call_command("migrate", verbosity=0)
    lot = make_lot()
    products = []
    for _ in range(count + fresh + unstored + 40):
        sample = make_sample(lot=lot)
        products.append(product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL"))
    call_command("seal_ledger", verbosity=0, stdout=open(os.devnull, "w"))
    from traceability.models import ConsumerProduct

    pks = dict(ConsumerProduct.objects.values_list("product_id", "pk"))
    stored = [pks[p.product_id] for p in products[: count + fresh]]
    started = time.process_time()
    pages = 0
    for first in range(0, len(stored), CHUNK):
        pages += scan_pages_render(product_pks=stored[first : first + CHUNK])
    cpu = time.process_time() - started
    print(
        f"pages stored ahead of their scans: {pages} for {len(stored)} products, "
        f"{cpu / max(1, len(stored)) * 1000:.2f} ms of this process's CPU per product "
        "(both languages; off the request path, in the Celery worker)"
    )
    from django.db import connections

    connections.close_all()
    codes = [p.qr_code for p in products]
    cut = (count, count + fresh, count + fresh + unstored)
    return codes[: cut[0]], codes[cut[0] : cut[1]], codes[cut[1] : cut[2]], codes[cut[2] :]


def _cached_scan_round_trips(code: str) -> dict:
    """Database round trips of one cached scan page, counted in this process: for a loaded
    unit, and for a unit of another lot under a recall (whose state the scan statement reads;
    the recall must add none)."""
    from django.core.cache import cache
    from django.db import connection, connections
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from bench.builders import make_lot, make_sample
    from traceability.recalls import recall_declare
    from traceability.services import product_register

    lot = make_lot()
    recalled = product_register(
        lot_id=lot.id, sample_id=make_sample(lot=lot).sample_id, site_code="LL"
    ).qr_code
    recall_declare(
        kind="recall",
        reference=f"BENCH-{lot.pk}",
        reason="bench",
        instructions_fr="bench",
        instructions_en="bench",
        starts_at=timezone.now(),
        scope="lots",
        lot_ids=[lot.pk],
    )
    client = Client(SERVER_NAME="127.0.0.1")
    counts = {}
    for name, qr in (("plain", code), ("recalled", recalled)):
        client.get(f"/p/{qr}")  # renders and caches the page
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"/p/{qr}")
        assert response.status_code == 200, response.status_code
        assert (name == "recalled") == (b'data-testid="recall-banner"' in response.content)
        counts[name] = len(queries)
    cache.clear()
    connections.close_all()
    return counts


def _start_server(
    kind: str, port: int, workers: int, threads: int, extra_env: dict[str, str] | None = None
) -> subprocess.Popen:
    # As deployed (README): JSON logs with one access line per request, at INFO. The lines go
    # to a file here, but each is formatted and written like in production.
    env = {
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        **os.environ,
        "PYTHONPATH": str(ROOT),
        **(extra_env or {}),
    }
    if kind == "granian":
        # The consumer pages' WSGI deployment (README): no per-request health check.
        env.setdefault("DB_CONN_HEALTH_CHECKS", "false")
        cmd = granian_command(
            "bench._scan_site:application", port, workers=workers, threads=threads
        )
    else:
        # Daphne is single-process: the ASGI path as the websocket server runs it.
        env["DJANGO_SETTINGS_MODULE"] = "gaveurs.settings"
        cmd = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "bench._scan_asgi:app"]
    # The servers' output (the access lines among it) goes to a file, not to this bench's output.
    log = open(Path(tempfile.mkdtemp(prefix="gtbench-scan.")) / f"{kind}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/bench/trivial")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise SystemExit(f"{kind} exited with {proc.returncode}")
    proc.kill()
    raise SystemExit(f"{kind} did not answer within 30 s")


def _client(
    port: int,
    paths: list[str],
    seconds: float,
    threads: int,
    out: mp.Queue,
    unique_slot: int | None = None,
    slots: int = 1,
) -> None:
    """One load process: ``threads`` keep-alive connections, each sending requests back to back
    (cycling through ``paths``) until the deadline; puts (count, errors, latencies in ms,
    connections that ran out of paths, seconds until the last connection stopped). With
    ``unique_slot`` (this process's number among ``slots``), the process takes its own share of
    ``paths``, its connections take the next path of that share in turn, and they stop when it
    is done (within one request of each other): no path is requested twice, and no connection
    idles while another still has paths."""
    started = time.perf_counter()
    deadline = started + seconds
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    ran_out = [0]
    stopped = [started]

    def loop(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        n = offset
        mine: list[float] = []
        bad = 0
        out_of_paths = False
        while True:
            t = time.perf_counter()
            if t >= deadline:
                break
            if fresh is not None:
                path = next(fresh, None)  # one shared iterator: atomic under the GIL
                if path is None:
                    out_of_paths = True
                    break
            else:
                path = paths[n % len(paths)]
                n += 1
            try:
                conn.request("GET", path, headers={"Accept-Language": "fr-FR"})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    bad += 1
            except OSError:
                bad += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            mine.append((time.perf_counter() - t) * 1000)
        end = min(time.perf_counter(), deadline)
        conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += bad
            ran_out[0] += out_of_paths
            stopped[0] = max(stopped[0], end)

    fresh = iter(paths[unique_slot::slots]) if unique_slot is not None else None
    start = random.randrange(len(paths))
    workers = [threading.Thread(target=loop, args=(start + i * 7,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.put((len(latencies), errors[0], latencies, ran_out[0], stopped[0] - started))


def _load(
    port: int,
    paths: list[str],
    *,
    seconds: float,
    clients: int,
    threads: int,
    unique: bool = False,
) -> tuple[list[float], int, float, int]:
    """Load ``paths`` for ``seconds``: (latencies in ms, errors, elapsed seconds, connections
    that ran out of paths). ``unique``: each path at most once; a connection stops when its
    share is done, and the elapsed time is then the time until the last one stopped (so a rate
    is never that of repeated paths, nor diluted by idle time)."""
    queue: mp.Queue = mp.Queue()
    procs = [
        mp.Process(
            target=_client,
            args=(port, paths, seconds, threads, queue, i if unique else None, clients),
        )
        for i in range(clients)
    ]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    # Each client sends requests for ``seconds`` from its own start (process start-up left out).
    return (
        [lat for _, _, lats, _, _ in results for lat in lats],
        sum(r[1] for r in results),
        max(r[4] for r in results) if unique else seconds,
        sum(r[3] for r in results),
    )


def _summary(latencies: list[float], errors: int, elapsed: float) -> dict:
    latencies = sorted(latencies)
    count = len(latencies)

    def pct(q: float) -> float:
        return latencies[min(count - 1, int(q * count))] if count else float("nan")

    return {
        "requests": count,
        "errors": errors,
        "rps": round(count / elapsed, 1),
        "p50_ms": round(pct(0.50), 2),
        "p99_ms": round(pct(0.99), 2),
        "max_ms": round(latencies[-1], 2) if count else float("nan"),
    }


def _measure(port: int, paths: list[str], *, seconds: float, clients: int, threads: int) -> dict:
    return _summary(*_load(port, paths, seconds=seconds, clients=clients, threads=threads)[:3])


def _measure_interleaved(
    targets: dict[str, tuple[subprocess.Popen, int, list[str]]],
    *,
    seconds: float,
    rounds: int,
    clients: int,
    threads: int,
    pg_pid: int | None = None,
) -> dict[str, dict]:
    """Each target (server, port, paths) for ``seconds`` in all, in ``rounds`` slices taken in
    turn: on a shared machine a change of load from other programs then weighs on every target
    alike. Adds the server's CPU (all its processes) per request, and PostgreSQL's (all its
    processes) when it runs here."""
    totals = {name: ([], 0, 0.0, 0.0, 0.0) for name in targets}
    ran_out = dict.fromkeys(targets, 0)
    for turn in range(rounds):
        for name, (server, port, paths) in targets.items():
            # A ``FreshPaths`` target gets paths never requested before, a new share each turn.
            unique = isinstance(paths, FreshPaths)
            turn_paths = paths.turn(turn, rounds) if unique else paths
            cpu = tree_cpu_by_pid(server.pid)
            db_cpu = tree_cpu_by_pid(pg_pid) if pg_pid else {}
            lats, errors, elapsed, out_of_paths = _load(
                port,
                turn_paths,
                seconds=seconds / rounds,
                clients=clients,
                threads=threads,
                unique=unique,
            )
            ran_out[name] += out_of_paths > 0
            used = cpu_seconds_between(cpu, tree_cpu_by_pid(server.pid))
            db_used = cpu_seconds_between(db_cpu, tree_cpu_by_pid(pg_pid)) if pg_pid else 0.0
            all_lats, all_errors, all_elapsed, all_cpu, all_db = totals[name]
            totals[name] = (
                all_lats + lats,
                all_errors + errors,
                all_elapsed + elapsed,
                all_cpu + used,
                all_db + db_used,
            )
    results = {}
    for name, (lats, errors, elapsed, cpu, db_cpu) in totals.items():
        results[name] = _summary(lats, errors, elapsed)
        results[name]["server_cpu_ms_per_req"] = round(cpu / max(1, len(lats)) * 1000, 3)
        if pg_pid:
            results[name]["db_cpu_ms_per_req"] = round(db_cpu / max(1, len(lats)) * 1000, 3)
        if isinstance(targets[name][2], FreshPaths):
            # Turns that ended early because their fresh products were all scanned (the rate
            # is over the time actually spent): raise --fresh/--unstored for full turns.
            results[name]["turns_out_of_products"] = ran_out[name]
            results[name]["seconds"] = round(elapsed, 6)  # its rps is over this: keep it exact
    return results


def _measure_pairs(
    server: subprocess.Popen,
    port: int,
    first: tuple[str, list[str]],
    second: tuple[str, list[str]],
    *,
    seconds: float,
    turns: int,
    clients: int,
    threads: int,
    pg_pid: int | None = None,
) -> tuple[dict[str, dict], dict]:
    """Two URLs of the same server in alternating short turns (``turns`` pairs, ``seconds`` per
    URL in all; the order within a pair alternates, ABBA, so neither always goes first): each
    pair's rate ratio first/second is taken on neighbouring turns, so a change of the shared
    machine's load between turns weighs on both alike; the median of the pairs' ratios is the
    figure. Returns each URL's summary (as ``_measure_interleaved``) and the pair figures: the
    median, the quartiles, and the ratio of CPU per request (server and PostgreSQL) second/first
    over all turns."""
    names = (first[0], second[0])
    paths = dict((first, second))
    totals = {
        name: {"lats": [], "errors": 0, "elapsed": 0.0, "cpu": 0.0, "db": 0.0} for name in names
    }
    ratios = []
    for turn in range(turns):
        rates = {}
        for name in names if turn % 2 == 0 else names[::-1]:
            cpu = tree_cpu_by_pid(server.pid)
            db_cpu = tree_cpu_by_pid(pg_pid) if pg_pid else {}
            lats, errors, elapsed, _ = _load(
                port, paths[name], seconds=seconds / turns, clients=clients, threads=threads
            )
            t = totals[name]
            t["lats"] += lats
            t["errors"] += errors
            t["elapsed"] += elapsed
            t["cpu"] += cpu_seconds_between(cpu, tree_cpu_by_pid(server.pid))
            if pg_pid:
                t["db"] += cpu_seconds_between(db_cpu, tree_cpu_by_pid(pg_pid))
            rates[name] = len(lats) / elapsed
        if rates[names[1]]:
            ratios.append(rates[names[0]] / rates[names[1]])
    results = {}
    for name, t in totals.items():
        results[name] = _summary(t["lats"], t["errors"], t["elapsed"])
        count = max(1, len(t["lats"]))
        results[name]["server_cpu_ms_per_req"] = round(t["cpu"] / count * 1000, 3)
        if pg_pid:
            results[name]["db_cpu_ms_per_req"] = round(t["db"] / count * 1000, 3)
    ratios.sort()

    def quantile(q: float) -> float | None:
        return round(ratios[min(len(ratios) - 1, int(q * len(ratios)))], 3) if ratios else None

    cpu = {
        name: r["server_cpu_ms_per_req"] + r.get("db_cpu_ms_per_req", 0.0)
        for name, r in results.items()
    }
    pairs = {
        "median": round(statistics.median(ratios), 3) if ratios else None,
        "q1": quantile(0.25),
        "q3": quantile(0.75),
        "pairs": len(ratios),
        "by_cpu": round(cpu[names[1]] / cpu[names[0]], 3) if cpu[names[0]] else None,
    }
    return results, pairs


class FreshPaths:
    """Paths to request at most once each (products never scanned before), shared out in
    equal parts between the turns of ``_measure_interleaved``."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def turn(self, turn: int, turns: int) -> list[str]:
        size = len(self.paths) // turns
        return self.paths[turn * size : (turn + 1) * size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=["granian", "daphne"], default="granian")
    parser.add_argument("--workers", type=int, default=2, help="server processes (granian)")
    parser.add_argument(
        "--server-threads", type=int, default=1, help="threads per server process (granian)"
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="load time per URL")
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="the URLs are loaded in turn, each for seconds/rounds, this many times",
    )
    parser.add_argument(
        "--pair-turns",
        type=int,
        default=16,
        help="the cached page and trivial + scan write are loaded in this many alternating "
        "pairs of turns, each seconds/pair-turns long; their ratio is the median of the pairs'",
    )
    parser.add_argument("--clients", type=int, default=2, help="load processes")
    parser.add_argument("--threads", type=int, default=4, help="connections per load process")
    parser.add_argument(
        "--fresh",
        type=int,
        default=7000,
        help="products never scanned before, with stored pages, for the cold page (each "
        "requested once: a cold turn ends when its share runs out, and its rate is over the "
        "time it took (the JSON's turns_out_of_products counts such turns)",
    )
    parser.add_argument(
        "--unstored",
        type=int,
        default=2500,
        help="products never scanned before and without a stored page (registered before "
        "stored pages existed): their first scan renders and stores the page",
    )
    parser.add_argument(
        "--products",
        type=int,
        default=20,
        help="distinct products scanned (one unit is "
        "scanned by one consumer: many codes, not one hot code)",
    )
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = _database_url()
    # A real deployment counts every scan; a high threshold keeps the bench from measuring the
    # one-off alert insert.
    os.environ.setdefault("SCAN_ALERT_THRESHOLD", "1000000000")
    # The bench's few clients scan thousands of times a minute: every scan must still be
    # written (the per-client limit would turn the measured path into a read).
    os.environ.setdefault("SCAN_RECORD_PER_MINUTE", "1000000000")
    # Pages stay cached for the whole run, so the figures are the steady state (in production
    # a page is rendered again once per SCAN_PAGE_CACHE_SECONDS per process and product).
    os.environ.setdefault("SCAN_PAGE_CACHE_SECONDS", "3600")
    codes, fresh_codes, unstored_codes, warm_codes = _setup_products(
        args.products, args.fresh, args.unstored
    )
    import psycopg

    with psycopg.connect(
        os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    ) as db:
        pg_pid = postgres_pid(db)
    round_trips = _cached_scan_round_trips(codes[0])
    port = free_port()
    cold_port = free_port()
    server = _start_server(args.server, port, args.workers, args.server_threads)
    # The cold path: the same server with the page and proof caches off, so every scan renders
    # its page (a consumer scans one unit: in production the cache's hit rate is near zero).
    cold = _start_server(
        args.server,
        cold_port,
        args.workers,
        args.server_threads,
        {"SCAN_PAGE_CACHE_SECONDS": "0", "LEDGER_PROOF_CACHE_SECONDS": "0"},
    )
    try:
        scan_paths = [f"/p/{code}" for code in codes]
        trivial_paths = ["/bench/trivial"]
        load = {"seconds": args.seconds, "clients": args.clients, "threads": args.threads}
        # Warm up both paths (templates, translations, DB connections, each page's first render
        # in each server process).
        warm = {"clients": args.clients, "threads": args.threads}
        # Each server process renders each page once (then serves it from its cache): warm up
        # until that is done, i.e. until two passes in a row show no slow request.
        needed = args.products * args.workers * 3
        done = 0
        calm = 0
        for _ in range(60):
            r = _measure(port, scan_paths, seconds=1.0, **warm)
            done += r["requests"]
            calm = calm + 1 if done >= needed and r["max_ms"] < 40 else 0
            if calm == 2:
                break
        _measure(port, trivial_paths, seconds=1.0, **warm)
        _measure(cold_port, scan_paths, seconds=1.0, **warm)
        _measure(cold_port, [f"/p/{code}" for code in warm_codes], seconds=1.0, **warm)
        _measure(cold_port, trivial_paths, seconds=1.0, **warm)
        results = _measure_interleaved(
            {
                "trivial": (server, port, trivial_paths),
                "trivial_db": (server, port, ["/bench/trivial-db"]),
                "cold_trivial": (cold, cold_port, trivial_paths),
                "cold_scan": (cold, cold_port, FreshPaths([f"/p/{c}" for c in fresh_codes])),
                "cold_unstored": (
                    cold,
                    cold_port,
                    FreshPaths([f"/p/{c}" for c in unstored_codes]),
                ),
            },
            rounds=args.rounds,
            pg_pid=pg_pid,
            **load,
        )
        # The cached page against its floor, in short alternating turns of their own: the
        # goal's ratio, whose two rates differ by less than the shared machine's swings.
        paired, pairs = _measure_pairs(
            server,
            port,
            ("scan", scan_paths),
            ("scan_write", [f"/bench/trivial-scan-write/{code}" for code in codes]),
            turns=args.pair_turns,
            pg_pid=pg_pid,
            **load,
        )
        results = {"trivial": results["trivial"], **paired, **results}
    finally:
        for proc in (server, cold):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    trivial, scan, trivial_db = results["trivial"], results["scan"], results["trivial_db"]
    scan_write, cold_trivial, cold_scan, cold_unstored = (
        results["scan_write"],
        results["cold_trivial"],
        results["cold_scan"],
        results["cold_unstored"],
    )

    def ratio(a: dict, b: dict) -> float | None:
        return round(a["rps"] / b["rps"], 3) if b["rps"] else None

    server_kind = f"WSGI, {args.workers} workers" if args.server == "granian" else "ASGI, 1 process"
    setup = (
        f"{args.server} ({server_kind}), {args.clients}x{args.threads} keep-alive clients, "
        f"{args.seconds:g} s per URL in {args.rounds} turns, {args.products} products, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}"
    )
    if args.server == "granian":
        setup += f", DB_CONN_HEALTH_CHECKS={os.environ.get('DB_CONN_HEALTH_CHECKS', 'false')}"
    print(f"setup: {setup}")
    print(
        f"cached scan page: {round_trips['plain']} database round trip(s); "
        f"a unit under a recall: {round_trips['recalled']}"
    )
    for name, r in [
        ("trivial view", trivial),
        ("scan page (cached)", scan),
        ("trivial + 1 query", trivial_db),
        ("trivial + scan write", scan_write),
        ("trivial (cold server)", cold_trivial),
        ("scan page (cold)", cold_scan),
        ("cold, no stored page", cold_unstored),
    ]:
        print(
            f"{name:>22}: {r['rps']:8.1f} req/s  p50 {r['p50_ms']:6.2f} ms  "
            f"p99 {r['p99_ms']:6.2f} ms  server CPU {r['server_cpu_ms_per_req']:6.3f} ms/req "
            f"(PostgreSQL {r.get('db_cpu_ms_per_req', float('nan')):.3f})  "
            f"({r['requests']} requests, {r['errors']} errors)"
        )
    goals = {"cached_vs_scan_write": 0.9, "cold_vs_trivial": 0.25}
    figures = {
        "cached_vs_trivial": ratio(scan, trivial),
        "cached_vs_trivial_db": ratio(scan, trivial_db),
        # The median of neighbouring turns' ratios (``_measure_pairs``); pooled: all turns'
        # requests over all their time.
        "cached_vs_scan_write": pairs["median"],
        "cached_vs_scan_write_pooled": ratio(scan, scan_write),
        "scan_write_vs_trivial": ratio(scan_write, trivial),
        "cold_vs_trivial": ratio(cold_scan, cold_trivial),
        "cold_unstored_vs_trivial": ratio(cold_unstored, cold_trivial),
    }
    print(f"ratio scan (cached)/trivial: {figures['cached_vs_trivial']}")
    print(f"ratio scan (cached)/(trivial + 1 query): {figures['cached_vs_trivial_db']}")
    print(
        f"ratio scan (cached)/(trivial + scan write): {figures['cached_vs_scan_write']}, the "
        f"median of {pairs['pairs']} pairs of alternating turns (quartiles {pairs['q1']}–"
        f"{pairs['q3']}; pooled {figures['cached_vs_scan_write_pooled']}; by CPU per request, "
        f"server and PostgreSQL, {pairs['by_cpu']}) (goal >= {goals['cached_vs_scan_write']})"
    )
    print(f"ratio (trivial + scan write)/trivial: {figures['scan_write_vs_trivial']}")
    print(
        f"ratio scan (cold)/trivial: {figures['cold_vs_trivial']} "
        f"(goal >= {goals['cold_vs_trivial']})"
    )
    print(
        "ratio scan (cold, first scan of a product with no stored page)/trivial: "
        f"{figures['cold_unstored_vs_trivial']}"
    )
    short = cold_scan["turns_out_of_products"] + cold_unstored["turns_out_of_products"]
    if short:
        print(
            f"note: {short} cold turns ran out of fresh products before their time and were "
            "measured over the time they took (raise --fresh/--unstored for full turns)"
        )
    print(
        json.dumps(
            {
                "bench": "scan",
                "server": args.server,
                "workers": args.workers if args.server == "granian" else 1,
                "products": args.products,
                "health_checks": (
                    os.environ.get(
                        "DB_CONN_HEALTH_CHECKS", "false" if args.server == "granian" else "true"
                    )
                ),
                "urls": results,
                "ratios": figures,
                "cached_vs_scan_write_pairs": pairs,
                "goals": goals,
                "goals_met": all(
                    figures[name] is not None and figures[name] >= goal
                    for name, goal in goals.items()
                ),
                "errors": sum(r["errors"] for r in results.values()),
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "cached_scan_round_trips": round_trips["plain"],
                "cached_recalled_scan_round_trips": round_trips["recalled"],
            }
        )
    )


if __name__ == "__main__":
    main()
