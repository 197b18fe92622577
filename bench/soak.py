"""Soak and load: stations over websockets and consumers on the scan page and feedback form.

Run: ``.venv/bin/python bench/soak.py [--duration 600] [--stations 50] [--consumers 200]
[--broker redis|embedded]`` (``make soak ARGS="--duration 60"``). Everything real, on loopback:

* a throwaway embedded PostgreSQL (or DATABASE_URL), migrated, with one site, a few lots, the
  stations registered with their own tokens, and ``--seed-products`` products already sold;
* the servers as the README deploys them: Daphne (``gaveurs.asgi``) for the stations'
  websockets, and granian (WSGI, ``--http-workers`` processes, ``DB_CONN_HEALTH_CHECKS=false``)
  for the consumer pages, both with a trivial Django view at ``/bench/trivial`` for the
  baseline (``--http daphne``: one Daphne serves everything, as ``make run`` once did); and the
  real Celery worker (``scripts/worker.sh``), on Redis at 127.0.0.1:6379 (database 15, a
  per-run key prefix, deleted afterwards; REDIS_BENCH_URL to change it) or the embedded
  transport on the same PostgreSQL;
* ``--stations`` simulated SQAL stations (``sensors.simulator.Station``: realistic flat ~190 KB
  and nested messages, 10 % rejects; one in ten stations reports a lot code the server does not
  know) measuring at ``--rate`` samples/s each, waiting for acks, reconnecting with backoff and
  resending what was not acknowledged. Each station's connection is cut abruptly every
  ``--drop-every`` seconds on average (flaky Wi-Fi), so resends and duplicates really happen;
* ``--consumers`` consumers, each with its own keep-alive connection from its own loopback
  address (127.0.x.y: per-client rate limits apply as for real phones), scanning ``/p/<code>``
  of products as they get registered (and the seed products; 2 % of scans use an altered code),
  thinking ``--think`` s on average between requests, and reviewing ``--feedback-share`` of
  what they scan: half through the page's form (CSRF token from the page), half through
  ``POST /api/consumer/feedback``. Several consumers may review the same unit at once.

Before and after the load, the consumers hammer ``/bench/trivial`` (no think time): the
baseline the figures are compared with, measured in the same run on the same server. The RSS
of the server and of the worker (with its pool processes) is sampled every ``--rss-interval``
seconds.

After the stations have drained and the registration queue is empty (bounded waits), the
invariants are checked against the database:

1. every acknowledged sample is stored exactly once, and every measured sample was acked;
2. every stored compliant sample (grade not REJECT) with a lot has exactly one product, the
   others none;
3. every accepted review exists exactly once, no unit is accepted twice, and no review exists
   that was not accepted (except for requests whose answer was lost);
4. no 5xx answer and no traceback in the server or worker logs;
5. runs of at least ``--memory-min-duration`` seconds: neither the server's nor the worker's
   RSS grows faster than ``--max-rss-slope`` MB/min over the second half of the load.

The load clients run in two processes: the stations in one (spawned before the warm-up, started
with the load), the consumers, the catalog poll and the checks in this one. Until 30 November
2026 they shared this process and its event loop, and a station's ack waited there for the
200 consumers' HTTP work before the client read it: that wait was the client's, not the
server's. ``--one-client-process`` keeps that layout to compare. Each client process reports
its event loop's lag (how late a 50 ms sleep wakes up, p50/p99/max) beside the latencies it
measured, and its CPU (``load_clients`` is this process, ``load_clients_stations`` the
stations'). Nothing else changed in what is measured: an ack's latency still runs from the
sample's measurement to the ack read by the station, through its own send loop.

The consumers' HTTP client is ``bench.lean_http`` (one keep-alive connection each), not
httpx's ``AsyncClient`` (``--http-client httpx``), which took 3.7 ms of the load process's CPU
per request under the soak, against 0.6 ms: with 200 consumers on 2 cores that client was the
bottleneck of its own measurement (its closed loop on the trivial view topped out at 135–410
requests/s). A scan's latency runs from the request's first byte written to the answer's last
byte read; the JSON's ``awaited`` figures add the time the request waited in the client's
event loop.

Each consumer request carries an ``X-Bench-Id``; granian's application logs what the request
cost inside it (``bench._scan_site.RequestLog``: wall time, thread CPU, queries and their
database wall time). The report puts, per kind of request (scan page by number of queries:
one is a stored or cached page, more a page rendered at that scan; review form; review API),
the client's latency beside the application's share: the rest is the time the request waited
for a server thread.

Figures: station ack latency and scan latency percentiles against their goals (under the soak,
on the same cores: ack p99 <= 1 s, scan p99 <= 500 ms), and where the CPU went during the load
(each server, the worker, PostgreSQL, and this process's clients). The only rate ratio is the
trivial view's closed loop after the load against before it: the scan load has think time, so
its rate compared with a closed loop would measure nothing.

Prints the figures, then one JSON object as the last line; exits 1 when an invariant fails.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import multiprocessing
import os
import random
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    RssSampler,
    django_database_url,
    django_setup,
    percentile,
    postgres_pid,
    start_daphne,
    start_granian,
    start_worker,
    stop_process,
    throwaway_database_url,
    tree_cpu_seconds,
    wait_worker_ready,
)
from bench.lean_http import HTTPError, LeanClient, Response, Timeout  # noqa: E402

# Under the full soak, on the same 2 cores: stations must not starve behind consumers.
GOALS = {"station_ack_p99_ms": 1000, "scan_p99_ms": 500}
_TAGS = itertools.count()  # X-Bench-Id of the review requests
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
TRACEBACK = b"Traceback (most recent call last)"


# --- the server side: the project plus a trivial view --------------------------------------------


def _trivial(request):
    from django.http import HttpResponse

    return HttpResponse("ok", content_type="text/plain")


def __getattr__(name: str):
    """``bench.soak:application`` for Daphne (the real ASGI application, with this module as the
    URL configuration: ``/bench/trivial`` plus every project URL), built lazily: this module is
    also the client."""
    if name == "urlpatterns":
        from django.urls import path

        from gaveurs.urls import urlpatterns as project

        value = [path("bench/trivial", _trivial), *project]
    elif name == "application":
        from django.conf import settings

        from gaveurs.asgi import application as value

        settings.ROOT_URLCONF = __name__
    else:
        raise AttributeError(name)
    globals()[name] = value
    return value


# --- stations ------------------------------------------------------------------------------------


def soak_station_class():
    from sensors.simulator import Station

    class SoakStation(Station):
        """The simulator's station, recording which samples were acked, when, and how."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.acked: dict[str, str] = {}  # sample id -> "saved" | "duplicate"
            self.measured_at: dict[str, float] = {}
            self.ack_latencies: list[float] = []
            # Acks of samples measured while the connection that acked them was up: the
            # server's latency, without the wait for a reconnection after a deliberate cut.
            self.live_ack_latencies: list[float] = []
            self.connected_at = float("inf")
            self.ws = None
            self.drops = 0
            self.last_ack_at = 0.0

        def measure(self) -> None:
            super().measure()
            self.measured_at[next(reversed(self.unacked))] = time.monotonic()

        async def read(self, ws) -> None:
            self.ws = ws
            self.connected_at = time.monotonic()
            await super().read(self._tap(ws))

        async def _tap(self, ws):
            async for raw in ws:
                frame = json.loads(raw)
                sid = frame.get("sample_id")
                if frame.get("type") == "ack" and sid in self.unacked:
                    self.acked[sid] = frame.get("status", "")
                    self.last_ack_at = time.monotonic()
                    latency = self.last_ack_at - self.measured_at[sid]
                    self.ack_latencies.append(latency)
                    if self.measured_at[sid] >= self.connected_at:
                        self.live_ack_latencies.append(latency)
                yield raw

        def drop(self) -> None:
            """Cut the connection without a closing handshake, like a lost Wi-Fi link."""
            ws = self.ws
            if ws is not None and getattr(ws, "transport", None) is not None:
                self.drops += 1
                ws.transport.abort()

    return SoakStation


async def chaos(stations: list, deadline: float, mean_interval: float, rng: random.Random):
    """Cut one station's connection at random, each about every ``mean_interval`` s."""
    if mean_interval <= 0 or not stations:
        return
    while True:
        await asyncio.sleep(rng.expovariate(len(stations) / mean_interval))
        if time.monotonic() >= deadline:
            return
        rng.choice(stations).drop()


class LoopLag:
    """How late this process's event loop resumes a task that slept ``INTERVAL`` s: the time
    every frame and response waits before the client code even sees it. A latency measured by
    a client whose loop is this late is partly the client's own."""

    INTERVAL = 0.05

    def __init__(self) -> None:
        self.lags_ms: list[float] = []

    async def run(self, until: float) -> None:
        while time.monotonic() < until:
            started = time.perf_counter()
            await asyncio.sleep(self.INTERVAL)
            late = time.perf_counter() - started - self.INTERVAL
            self.lags_ms.append(max(0.0, late * 1000))

    def summary(self) -> dict:
        lags = self.lags_ms
        return {
            "p50_ms": round(percentile(lags, 50), 1) if lags else None,
            "p99_ms": round(percentile(lags, 99), 1) if lags else None,
            "max_ms": round(max(lags), 1) if lags else None,
            "samples": len(lags),
        }


async def run_stations(spec: dict, acked_now=None) -> dict:
    """The stations' side of the load: the simulated stations, the connection cuts, a probe of
    the event loop's lag. Runs in a process of its own (``stations_process``) unless
    ``--one-client-process``; returns what ``report`` needs, as plain data."""
    import dataclasses

    from sensors.simulator import SimulatorConfig

    SoakStation = soak_station_class()
    config = SimulatorConfig(**spec["config"])
    rng = random.Random(spec["seed"])
    stations = [SoakStation(d, config, random.Random(rng.random())) for d in config.device_ids]
    deadline = time.monotonic() + config.duration
    lag = LoopLag()
    cpu_started = time.process_time()

    async def count_acks() -> None:
        while acked_now is not None:
            acked_now.value = sum(len(s.acked) for s in stations)
            await asyncio.sleep(1.0)

    helpers = [
        asyncio.create_task(lag.run(deadline)),
        asyncio.create_task(chaos(stations, deadline, spec["drop_every"], rng)),
        asyncio.create_task(count_acks()),
    ]
    await asyncio.gather(*(s.run() for s in stations))
    for task in helpers:
        task.cancel()
    return {
        "stations": [
            {
                "device_id": s.device_id,
                "acked": s.acked,
                "unacked": list(s.unacked),
                "stats": dataclasses.asdict(s.stats),
                "drops": s.drops,
                "ack_latencies": s.ack_latencies,
                "live_ack_latencies": s.live_ack_latencies,
                "last_ack_at": s.last_ack_at,
            }
            for s in stations
        ],
        "loop_lag": lag.summary(),
        "cpu_s": time.process_time() - cpu_started,
    }


def station_views(result: dict) -> list:
    """``run_stations``' plain data as the station objects ``report`` reads."""
    from types import SimpleNamespace

    return [
        SimpleNamespace(**{**s, "stats": SimpleNamespace(**s["stats"])}) for s in result["stations"]
    ]


def stations_process(spec: dict, pipe, acked_now) -> None:
    """Entry point of the stations' process: imports, waits for the go, runs, sends the result."""
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("sensors.simulator").setLevel(logging.ERROR)
    soak_station_class()  # the imports, before the go
    pipe.send("ready")
    pipe.recv()
    pipe.send(asyncio.run(run_stations(spec, acked_now)))


# --- consumers -----------------------------------------------------------------------------------


@dataclass
class Figures:
    latencies: dict[str, list[float]] = field(
        default_factory=lambda: {"scan": [], "scan_awaited": [], "trivial": []}
    )
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    feedback: Counter = field(default_factory=Counter)
    accepted: list[str] = field(default_factory=list)  # qr codes reviewed with success
    unknown: list[str] = field(default_factory=list)  # reviews whose answer was lost
    server_errors: int = 0
    # Client-side latency (ms) of each request tagged with an X-Bench-Id header, by that id: the
    # server's request log (bench._scan_site.RequestLog) has the application's share of it.
    tagged: dict[str, float] = field(default_factory=dict)


class Catalog:
    """QR codes consumers can scan: the seed products and those registered during the run."""

    def __init__(self, seed: list[str]) -> None:
        self.seed = list(seed)
        self.recent: list[str] = []
        self.last_id = 0

    def pick(self, rng: random.Random) -> str:
        if self.recent and rng.random() < 0.7:
            return rng.choice(self.recent[-100:])  # a unit just sold
        pool = self.seed + self.recent
        return rng.choice(pool)

    def poll(self, conn) -> None:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT id, qr_code FROM consumer_products WHERE id > %s ORDER BY id",
                [self.last_id],
            )
            for pid, code in cur.fetchall():
                self.last_id = pid
                if code not in self.seed:
                    self.recent.append(code)


def _forge(code: str) -> str:
    last = code[-1]
    return code[:-1] + ("0" if last != "0" else "1")


def _ratings(rng: random.Random) -> dict[str, int]:
    names = ("overall", "taste", "texture", "appearance", "value")
    return {f"{n}_rating": rng.randint(1, 5) for n in names}


async def consumer(client, *, index: int, catalog: Catalog, figs: Figures, deadline: float, args):
    rng = random.Random(index)
    language = "fr-FR,fr;q=0.9" if index % 3 else "en-GB,en;q=0.8"
    seq = 0
    while time.monotonic() < deadline:
        code = catalog.pick(rng)
        forged = rng.random() < 0.02
        if forged:
            code = _forge(code)
        seq += 1
        tag = f"{index}-{seq}"
        t0 = time.perf_counter()
        try:
            r = await client.get(
                f"/p/{code}", headers={"Accept-Language": language, "X-Bench-Id": tag}
            )
        except Timeout:
            figs.errors["scan:timeout"] += 1
            continue
        except HTTPError as exc:
            figs.errors[f"scan:{type(exc).__name__}"] += 1
            await asyncio.sleep(0.5)
            continue
        # From the request's first byte sent to its answer's last byte read; and as the consumer
        # saw it, with the time the request waited in this process before and after.
        figs.latencies["scan"].append(r.elapsed_ms)
        figs.latencies["scan_awaited"].append((time.perf_counter() - t0) * 1000)
        figs.tagged[tag] = r.elapsed_ms
        figs.statuses[f"scan:{r.status_code}"] += 1
        expected = 404 if forged else 200
        if r.status_code >= 500:
            figs.server_errors += 1
        if r.status_code != expected:
            figs.errors[f"scan:{r.status_code}{' (forged code)' if forged else ''}"] += 1
        elif not forged and rng.random() < args.feedback_share:
            await asyncio.sleep(rng.uniform(0, 2 * args.think))  # reading, tasting
            if rng.random() < 0.5:
                await review_form(client, code, r.text, rng, figs)
            else:
                await review_api(client, code, rng, figs)
        await asyncio.sleep(rng.expovariate(1 / args.think) if args.think > 0 else 0)


async def review_form(client, code: str, page: str, rng: random.Random, figs: Figures) -> None:
    match = CSRF_RE.search(page)
    if match is None:  # already reviewed: the page shows no form
        figs.feedback["form_not_offered"] += 1
        return
    data = {
        "csrfmiddlewaretoken": match.group(1),
        **{k: str(v) for k, v in _ratings(rng).items()},
        "comment": rng.choice(["", "Très bon, fondant.", "Un peu trop salé <b>?</b>", "Parfait"]),
        "consent_to_publish": "on",
        "website": "",
    }
    figs.feedback["attempted"] += 1
    tag = f"form-{next(_TAGS)}"
    try:
        r = await client.post(f"/p/{code}/avis", data=data, headers={"X-Bench-Id": tag})
        figs.tagged[tag] = r.elapsed_ms
    except HTTPError as exc:
        figs.errors[f"feedback_form:{type(exc).__name__}"] += 1
        figs.unknown.append(code)
        return
    figs.statuses[f"feedback_form:{r.status_code}"] += 1
    if r.status_code == 200:
        figs.feedback["accepted_form"] += 1
        figs.accepted.append(code)
    elif r.status_code in (409, 429):
        figs.feedback[f"refused_{'already_reviewed' if r.status_code == 409 else 'rate'}"] += 1
    else:
        figs.server_errors += r.status_code >= 500
        figs.errors[f"feedback_form:{r.status_code}"] += 1


async def review_api(client, code: str, rng: random.Random, figs: Figures) -> None:
    body = {"qr_code": code, **_ratings(rng), "comment": "Bon produit", "consent_to_publish": True}
    figs.feedback["attempted"] += 1
    tag = f"api-{next(_TAGS)}"
    try:
        r = await client.post("/api/consumer/feedback", json=body, headers={"X-Bench-Id": tag})
        figs.tagged[tag] = r.elapsed_ms
    except HTTPError as exc:
        figs.errors[f"feedback_api:{type(exc).__name__}"] += 1
        figs.unknown.append(code)
        return
    figs.statuses[f"feedback_api:{r.status_code}"] += 1
    if r.status_code == 201:
        figs.feedback["accepted_api"] += 1
        figs.accepted.append(code)
    elif r.status_code in (409, 429):
        figs.feedback[f"refused_{'already_reviewed' if r.status_code == 409 else 'rate'}"] += 1
    else:
        figs.server_errors += r.status_code >= 500
        figs.errors[f"feedback_api:{r.status_code}"] += 1


async def hammer(client, path: str, deadline: float, figs: Figures) -> None:
    """Closed loop, no think time: the baseline."""
    while time.monotonic() < deadline:
        try:
            r = await client.get(path)
        except HTTPError as exc:
            figs.errors[f"trivial:{type(exc).__name__}"] += 1
            continue
        figs.latencies["trivial"].append(r.elapsed_ms)
        if r.status_code != 200:
            figs.errors[f"trivial:{r.status_code}"] += 1
            figs.server_errors += r.status_code >= 500


class HttpxClient:
    """httpx's ``AsyncClient`` (``--http-client httpx``, the client before 30 November 2026)
    behind ``bench.lean_http.LeanClient``'s interface. Its ``elapsed_ms`` is the awaited time:
    it includes what the request waited inside the client."""

    def __init__(self, base_url: str, address: str) -> None:
        import httpx

        self.httpx = httpx
        self.client = httpx.AsyncClient(
            base_url=base_url,
            transport=httpx.AsyncHTTPTransport(local_address=address, retries=0),
            timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    async def _call(self, method: str, path: str, **kwargs) -> Response:
        t0 = time.perf_counter()
        try:
            r = await self.client.request(method, path, **kwargs)
        except self.httpx.TimeoutException as exc:
            raise Timeout(str(exc)) from exc
        except self.httpx.HTTPError as exc:
            raise HTTPError(type(exc).__name__) from exc
        elapsed = (time.perf_counter() - t0) * 1000
        return Response(r.status_code, dict(r.headers), r.content, elapsed)

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return await self._call("GET", path, headers=headers)

    async def post(self, path: str, **kwargs) -> Response:
        return await self._call("POST", path, **kwargs)

    async def aclose(self) -> None:
        await self.client.aclose()


def make_clients(base_url: str, n: int, kind: str = "lean") -> list:
    """One keep-alive connection per consumer, each from its own loopback address."""
    from urllib.parse import urlsplit

    url = urlsplit(base_url)
    clients = []
    for i in range(n):
        address = f"127.0.{1 + i // 250}.{2 + i % 250}"
        if kind == "httpx":
            clients.append(HttpxClient(base_url, address))
        else:
            clients.append(LeanClient(url.hostname, url.port, address, timeout=30.0))
    return clients


async def baseline(clients: list, seconds: float) -> dict:
    figs = Figures()
    deadline = time.monotonic() + seconds
    started = time.perf_counter()
    await asyncio.gather(*(hammer(c, "/bench/trivial", deadline, figs) for c in clients))
    elapsed = time.perf_counter() - started
    lat = figs.latencies["trivial"]
    return {
        "rps": round(len(lat) / elapsed, 1),
        "p50_ms": round(percentile(lat, 50), 2),
        "p99_ms": round(percentile(lat, 99), 2),
        "requests": len(lat),
        "errors": sum(figs.errors.values()),
        "server_errors": figs.server_errors,
    }


# --- set-up --------------------------------------------------------------------------------------


def prepare_data(run: str, stations: int, seed_products: int) -> tuple[dict, dict, list[str]]:
    """Lots, registered stations with tokens, seed products (sealed in the ledger)."""
    from django.core.management import call_command

    from bench.builders import make_gaveur, make_lot, make_sample, make_site
    from sensors.models import Device
    from sensors.services import device_issue_token
    from traceability.services import product_register

    site = make_site(code="LL")
    gaveur = make_gaveur(site=site, last_name="Soak", first_name="Run")
    lots = [make_lot(site=site, gaveur=gaveur, code=f"LLS{run}{n:02d}") for n in range(5)]
    tokens: dict[str, str] = {}
    lot_codes: dict[str, str] = {}
    for n in range(1, stations + 1):
        device_id = f"SOAK{run}_LL_{n:02d}"
        device = Device.objects.create(device_id=device_id, site=site, location=f"Ligne {n}")
        tokens[device_id] = device_issue_token(device=device)
        # One station in ten reports a slaughter lot the server does not know: stored, no product.
        lot_codes[device_id] = f"INCONNU-{run}" if n % 10 == 0 else lots[n % len(lots)].code
    seed_device = Device.objects.create(device_id=f"SOAK{run}_LL_SEED", site=site)
    codes = []
    for n in range(seed_products):
        sample = make_sample(device=seed_device, lot=lots[n % len(lots)], sample_id=f"seed{n}")
        product = product_register(lot_id=sample.lot_id, sample_id=sample.sample_id, site_code="LL")
        codes.append(product.qr_code)
    with open(os.devnull, "w") as devnull:
        call_command("seal_ledger", verbosity=0, stdout=devnull)
    return tokens, lot_codes, codes


def broker_env(kind: str, run: str) -> tuple[dict[str, str], str]:
    if kind == "redis":
        url = os.environ.get("REDIS_BENCH_URL", "redis://127.0.0.1:6379/15")
        import redis

        try:
            redis.Redis.from_url(url, socket_timeout=2).ping()
        except redis.RedisError as exc:
            raise SystemExit(
                f"Redis at {url} does not answer ({exc}); try --broker embedded"
            ) from None
        prefix = f"gt-soak-{run}:"
        return {"CELERY_BROKER_URL": url, "CELERY_REDIS_KEY_PREFIX": prefix}, prefix
    return {"CELERY_BROKER_URL": "", "CELERY_SQLA_POLL_INTERVAL": "0.1"}, ""


def redis_cleanup(prefix: str) -> None:
    import redis

    r = redis.Redis.from_url(os.environ.get("REDIS_BENCH_URL", "redis://127.0.0.1:6379/15"))
    keys = list(r.scan_iter(match=f"{prefix}*", count=1000))
    for i in range(0, len(keys), 500):
        r.delete(*keys[i : i + 500])


# --- checks --------------------------------------------------------------------------------------


def product_counts(conn, run: str) -> list[tuple]:
    """(device, sample id, compliant with a lot, products) for every stored sample of the run."""
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT s.device_id, s.sample_id,
                   (s.is_compliant AND s.fusion_grade <> 'REJECT' AND s.lot_id IS NOT NULL),
                   (SELECT count(*) FROM consumer_products p WHERE p.sqal_sample_pk = s.id)
            FROM sqal_sensor_samples s
            WHERE s.device_id LIKE %s AND s.device_id NOT LIKE %s
            """,
            [f"SOAK{run}\\_%", "%\\_SEED"],
        )
        return cur.fetchall()


def wait_for_products(conn, run: str, timeout: float) -> tuple[list[tuple], float]:
    started = time.monotonic()
    while True:
        rows = product_counts(conn, run)
        pending = [r for r in rows if r[2] and r[3] == 0]
        if not pending or time.monotonic() - started > timeout:
            return rows, time.monotonic() - started
        time.sleep(0.5)


def count_lines(path: Path, needle: bytes) -> int:
    try:
        return path.read_bytes().count(needle)
    except OSError:
        return 0


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--stations", type=int, default=50)
    parser.add_argument("--consumers", type=int, default=200)
    parser.add_argument("--rate", type=float, default=0.2, help="samples/s per station")
    parser.add_argument("--form", choices=["flat", "nested", "mixed"], default="mixed")
    parser.add_argument("--think", type=float, default=1.0, help="mean think time (s)")
    parser.add_argument("--feedback-share", type=float, default=0.05)
    parser.add_argument("--drop-every", type=float, default=120.0, help="s between cuts/station")
    parser.add_argument("--seed-products", type=int, default=50)
    parser.add_argument("--broker", choices=["redis", "embedded"], default="redis")
    parser.add_argument("--baseline-seconds", type=float, default=None, help="default: ≤ 5 s")
    parser.add_argument("--rss-interval", type=float, default=None, help="default: ≤ 5 s")
    parser.add_argument("--max-rss-slope", type=float, default=2.0, help="MB/min, 2nd half")
    parser.add_argument("--memory-min-duration", type=float, default=120.0)
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--http",
        choices=["granian", "daphne"],
        default="granian",
        help="server of the consumer pages: granian (WSGI) beside Daphne as the README deploys "
        "them, or the Daphne that serves the stations",
    )
    parser.add_argument("--http-workers", type=int, default=2, help="granian worker processes")
    parser.add_argument(
        "--http-threads",
        type=int,
        default=1,
        help="granian blocking threads per worker (each runs one request at a time, with a "
        "database connection of its own)",
    )
    parser.add_argument(
        "--http-nice",
        type=int,
        default=0,
        help="run granian at this nice level (stations' Daphne keeps the default priority)",
    )
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=0,
        help="run the Celery worker at this nice level (it renders each new head's pages in a "
        "burst; the servers keep the default priority)",
    )
    parser.add_argument(
        "--one-client-process",
        action="store_true",
        help="stations and consumers in this one process and event loop (the layout before the "
        "stations got their own process; their acks then wait for the consumers' work)",
    )
    parser.add_argument(
        "--http-client",
        choices=["lean", "httpx"],
        default="lean",
        help="the consumers' HTTP client: bench.lean_http (one keep-alive connection each, "
        "little CPU) or httpx's AsyncClient (the client before 30 November 2026)",
    )
    args = parser.parse_args()
    baseline_seconds = args.baseline_seconds or min(5.0, max(1.0, args.duration / 5))
    rss_interval = args.rss_interval or min(5.0, max(0.5, args.duration / 30))

    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("sensors.simulator").setLevel(logging.ERROR)  # reconnects: counted
    run = uuid.uuid4().hex[:6]
    workdir = Path(tempfile.mkdtemp(prefix="gtbench-soak."))
    db_url = throwaway_database_url()  # its own folder, deleted when this process ends
    django_setup(db_url)
    db_url = django_database_url()
    tokens, lot_codes, seed_codes = prepare_data(run, args.stations, args.seed_products)
    from django.db import connections

    connections.close_all()

    broker, prefix = broker_env(args.broker, run)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_PG")}
    env.update(broker, DATABASE_URL=db_url, LOG_LEVEL="WARNING")
    env["DJANGO_SETTINGS_MODULE"] = "gaveurs.settings"
    # 200 consumers share one address here: count every scan, as distinct phones would be.
    env.setdefault("SCAN_RECORD_PER_MINUTE", "1000000000")
    if not env["CELERY_BROKER_URL"]:
        del env["CELERY_BROKER_URL"]  # the embedded transport on DATABASE_URL
    server_log, worker_log = workdir / "daphne.log", workdir / "worker.log"
    http_log = workdir / "granian.log"
    requests_log = workdir / "requests"
    worker = start_worker(env, worker_log, wait=False, niceness=args.worker_nice)
    server = http = None
    try:
        # The websocket limits scripts/run.sh gives Daphne (2 x SQAL_MAX_MESSAGE_BYTES).
        ws_max = str(2 * int(env.get("SQAL_MAX_MESSAGE_BYTES", 512 * 1024)))
        limits = ["--websocket-max-message-size", ws_max, "--websocket-max-frame-size", ws_max]
        server, port = start_daphne("bench.soak:application", env, server_log, limits)
        http_port = port
        if args.http == "granian":
            # As the README deploys the consumer pages: no per-request connection check.
            # Each request's cost inside the application, logged by bench._scan_site.
            requests_log.mkdir()
            http_env = {
                "DB_CONN_HEALTH_CHECKS": "false",
                **env,
                "BENCH_REQUEST_LOG": str(requests_log),
            }
            http, http_port = start_granian(
                "bench._scan_site:application",
                http_env,
                http_log,
                workers=args.http_workers,
                threads=args.http_threads,
                niceness=args.http_nice,
            )
        wait_worker_ready(worker, worker_log)
        result = asyncio.run(
            soak(args, port, http_port, tokens, lot_codes, seed_codes, db_url, run,
                 {"server": server, "worker": worker, "http": http},
                 baseline_seconds, rss_interval)
        )  # fmt: skip
    finally:
        if http is not None:
            stop_process(http)
        if server is not None:
            stop_process(server)
        stop_process(worker)
        if prefix:
            redis_cleanup(prefix)
    result["server_log_tracebacks"] = count_lines(server_log, TRACEBACK) + (
        count_lines(http_log, TRACEBACK) if http_log.exists() else 0
    )
    result["worker_log_tracebacks"] = count_lines(worker_log, TRACEBACK)
    result["requests"] = request_breakdown(requests_log, result["figs"].tagged)
    status = report(args, result, server_log, worker_log)
    if status == 0:
        shutil.rmtree(workdir, ignore_errors=True)  # the logs are kept when an invariant fails
    return status


async def soak(
    args, port, http_port, tokens, lot_codes, seed_codes, db_url, run, procs, baseline_s, rss_s
) -> dict:
    import psutil
    import psycopg

    conn = psycopg.connect(db_url.replace("postgres://", "postgresql://", 1), autocommit=True)
    clients = make_clients(f"http://127.0.0.1:{http_port}", args.consumers, args.http_client)
    # CPU of each part over the load: the servers, the worker, PostgreSQL, and this process
    # (the stations' and consumers' clients share the same cores).
    pids = {name: proc.pid for name, proc in procs.items() if proc is not None}
    pg = postgres_pid(conn)
    cpu_pids = {**pids, **({"postgres": pg} if pg else {}), "load_clients": os.getpid()}
    sampler = RssSampler(pids, rss_s)
    me = psutil.Process()
    spec = {
        "config": {
            "url": f"ws://127.0.0.1:{port}/ws/sensors/",
            "device_ids": list(tokens),
            "rate": args.rate,
            "duration": args.duration,
            "reject_ratio": 0.1,
            "form": args.form,
            "tokens": tokens,
            "lot_codes": lot_codes,
            "drain_timeout": 60.0,
            "seed": args.seed,
        },
        "seed": args.seed,
        "drop_every": args.drop_every,
    }
    stations_proc = pipe = acked_now = None
    if not args.one_client_process:
        # The stations get a process (an event loop, a core when one is free) of their own: an
        # ack read late because 200 consumers keep the client's loop busy is the client's delay.
        ctx = multiprocessing.get_context("spawn")
        pipe, child_pipe = ctx.Pipe()
        acked_now = ctx.Value("i", 0, lock=False)
        stations_proc = ctx.Process(
            target=stations_process, args=(spec, child_pipe, acked_now), daemon=True
        )
        stations_proc.start()
        if not pipe.poll(60) or pipe.recv() != "ready":
            raise RuntimeError("the stations' process did not start")
        cpu_pids["load_clients_stations"] = stations_proc.pid
    sampler.start()
    try:
        # Warm-up (connections, templates, first renders), then the baseline.
        warm = Figures()
        catalog = Catalog(seed_codes)
        warm_deadline = time.monotonic() + min(3.0, baseline_s)
        await asyncio.gather(*(hammer(c, "/bench/trivial", warm_deadline, warm) for c in clients))
        trivial_start = await baseline(clients, baseline_s)
        print(
            f"baseline /bench/trivial at start: {trivial_start['rps']} req/s, "
            f"p50 {trivial_start['p50_ms']} ms, p99 {trivial_start['p99_ms']} ms "
            f"({args.consumers} connections, no think time)",
            flush=True,
        )

        figs = Figures()
        load_started = time.monotonic()
        load_t0 = load_started - sampler.started_at
        cpu_start = {name: tree_cpu_seconds(pid) for name, pid in cpu_pids.items()}
        cpu_start["load_clients"] = sum(me.cpu_times()[:2])
        deadline = load_started + args.duration

        async def poll_catalog():
            while time.monotonic() < deadline:
                await asyncio.to_thread(catalog.poll, conn)
                await asyncio.sleep(1.0)

        async def progress():
            while True:
                await asyncio.sleep(max(10.0, args.duration / 10))
                if time.monotonic() >= deadline:
                    return
                acked = acked_now.value if acked_now is not None else "-"
                print(
                    f"  t={time.monotonic() - load_started:5.0f} s  samples acked {acked}  "
                    f"products {len(catalog.recent)}  scans {len(figs.latencies['scan'])}  "
                    f"reviews accepted {len(figs.accepted)}  errors {sum(figs.errors.values())}",
                    flush=True,
                )

        consumer_tasks = [
            consumer(c, index=i, catalog=catalog, figs=figs, deadline=deadline, args=args)
            for i, c in enumerate(clients)
        ]
        if stations_proc is not None:
            pipe.send("go")
            station_results = asyncio.ensure_future(asyncio.to_thread(pipe.recv))
        else:
            station_results = asyncio.ensure_future(run_stations(spec))
        lag = LoopLag()
        helpers = [
            asyncio.create_task(poll_catalog()),
            asyncio.create_task(progress()),
            asyncio.create_task(lag.run(deadline)),
        ]
        await asyncio.gather(*consumer_tasks)
        consumers_done = time.monotonic()
        stations_result = await station_results
        stations_done = time.monotonic()
        stations = station_views(stations_result)
        cpu_end = {name: tree_cpu_seconds(pid) for name, pid in cpu_pids.items()}
        cpu_end["load_clients"] = sum(me.cpu_times()[:2])
        for task in helpers:
            task.cancel()
        load_t1 = time.monotonic() - sampler.started_at

        # The registration queue drains; then the end baseline (same server, after the soak).
        rows, drain_s = await asyncio.to_thread(wait_for_products, conn, run, args.drain_timeout)
        trivial_end = await baseline(clients, baseline_s)
        print(
            f"baseline /bench/trivial at end:   {trivial_end['rps']} req/s, "
            f"p50 {trivial_end['p50_ms']} ms, p99 {trivial_end['p99_ms']} ms",
            flush=True,
        )
    finally:
        sampler.stop()
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
        if stations_proc is not None:
            stations_proc.join(10)
            if stations_proc.is_alive():
                stations_proc.kill()

    # Reviews as stored.
    with conn.cursor() as cur:
        reviewed = sorted(set(figs.accepted) | set(figs.unknown))
        cur.execute(
            "SELECT p.qr_code, count(f.id) FROM consumer_products p "
            "JOIN consumer_feedback f ON f.product_id = p.id WHERE p.qr_code = ANY(%s) "
            "GROUP BY p.qr_code",
            [reviewed],
        )
        stored_reviews = dict(cur.fetchall())
        cur.execute(
            "SELECT count(*) FROM consumer_feedback f JOIN consumer_products p "
            "ON f.product_id = p.id WHERE p.qr_code = ANY(%s)",
            [seed_codes + catalog.recent],
        )
        reviews_total = cur.fetchone()[0]
    conn.close()

    return {
        "run": run,
        "stations": stations,
        "figs": figs,
        "rows": rows,
        "drain_s": drain_s,
        "load_s": consumers_done - load_started,
        "stations_s": stations_done - load_started,
        "last_ack_after_load_s": max((s.last_ack_at for s in stations), default=deadline)
        - deadline,
        "trivial_start": trivial_start,
        "trivial_end": trivial_end,
        "stored_reviews": stored_reviews,
        "reviews_total": reviews_total,
        "memory": {name: sampler.report(name, load_t0, load_t1) for name in pids},
        "cpu_s": {name: cpu_end[name] - cpu_start[name] for name in cpu_pids},
        "loop_lag": (
            {"stations": stations_result["loop_lag"], "consumers": lag.summary()}
            if stations_proc is not None
            else {"clients": lag.summary()}
        ),
        "products_seen": len(catalog.recent),
    }


def request_breakdown(folder: Path, tagged: dict[str, float]) -> dict:
    """The consumers' requests by kind, the client's latency beside the application's share
    of it (from the server's request log): what a request cost inside the application (wall,
    thread CPU, queries, database wall) and how long it waited outside it (client latency minus
    application wall: the server's queue, the network, the client's own loop)."""
    rows = []
    for log in sorted(folder.glob("requests.*.log")) if folder.is_dir() else []:
        for line in log.read_text().splitlines():
            tag, method, kind, status, wall, cpu, queries, db, *_ = line.split(" ")
            if tag in tagged:
                rows.append((kind, status, queries, float(wall), float(cpu), float(db), tag))
    groups: dict[str, list] = {}
    for kind, status, queries, wall, cpu, db, tag in rows:
        label = f"{kind} {status}" + (f" ({queries} queries)" if kind == "p" else "")
        groups.setdefault(label, []).append((tagged[tag], wall, cpu, db))
    out = {}
    for label, items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        client = [i[0] for i in items]
        wall = [i[1] for i in items]
        wait = [i[0] - i[1] for i in items]
        out[label] = {
            "requests": len(items),
            "client_p50_ms": round(percentile(client, 50), 1),
            "client_p99_ms": round(percentile(client, 99), 1),
            "app_wall_p50_ms": round(percentile(wall, 50), 1),
            "app_wall_p99_ms": round(percentile(wall, 99), 1),
            "app_cpu_mean_ms": round(sum(i[2] for i in items) / len(items), 2),
            "db_wall_mean_ms": round(sum(i[3] for i in items) / len(items), 2),
            "waiting_p50_ms": round(percentile(wait, 50), 1),
            "waiting_p99_ms": round(percentile(wait, 99), 1),
        }
    out["_matched"] = {
        "logged": len(rows),
        "tagged": len(tagged),
        "app_cpu_s": round(sum(row[4] for row in rows) / 1000, 2),
    }
    return out


def report(args, r: dict, server_log: Path, worker_log: Path) -> int:
    stations, figs = r["stations"], r["figs"]
    failures: list[str] = []

    # 1. Acked samples stored exactly once; everything measured was acked.
    stored = Counter((device, sid) for device, sid, _, _ in r["rows"])
    acked = {(s.device_id, sid): st for s in stations for sid, st in s.acked.items()}
    not_stored = [k for k in acked if stored.get(k, 0) != 1]
    measured = sum(s.stats.measured for s in stations)
    unacked = sum(len(s.unacked) for s in stations)
    phantom = [k for k in stored if k not in acked]
    if not_stored:
        failures.append(f"{len(not_stored)} acked samples not stored once: {not_stored[:3]}")
    if phantom:
        failures.append(f"{len(phantom)} samples stored that were never acked: {phantom[:3]}")
    if unacked:
        failures.append(f"{unacked} of {measured} measured samples never acked")
    # 2. One product per compliant sample with a lot, none for the others.
    wrong = [(d, s, c, n) for d, s, c, n in r["rows"] if n != (1 if c else 0)]
    if wrong:
        failures.append(f"{len(wrong)} samples with a wrong number of products: {wrong[:3]}")
    expected_products = sum(1 for row in r["rows"] if row[2])
    # 3. Reviews.
    accepted = Counter(figs.accepted)
    twice = [c for c, n in accepted.items() if n > 1]
    missing_reviews = [c for c in accepted if r["stored_reviews"].get(c, 0) != 1]
    extra = r["reviews_total"] - len(accepted)
    if twice:
        failures.append(f"{len(twice)} units accepted a review twice")
    if missing_reviews:
        failures.append(f"{len(missing_reviews)} accepted reviews not stored exactly once")
    if not 0 <= extra <= len(set(figs.unknown)):
        failures.append(f"{extra} reviews stored beyond those accepted")
    # 4. Server errors.
    server_errors = (
        figs.server_errors + r["trivial_start"]["server_errors"] + r["trivial_end"]["server_errors"]
    )
    if server_errors:
        failures.append(f"{server_errors} answers 5xx")
    if r["server_log_tracebacks"] or r["worker_log_tracebacks"]:
        failures.append(
            f"tracebacks: {r['server_log_tracebacks']} in {server_log}, "
            f"{r['worker_log_tracebacks']} in {worker_log}"
        )
    # 5. Memory.
    memory_judged = args.duration >= args.memory_min_duration
    for name, m in r["memory"].items():
        growth = m.get("slope_second_half_mb_per_min", 0.0)
        m["flagged"] = memory_judged and growth > args.max_rss_slope
        if m["flagged"]:
            failures.append(f"{name} RSS grows {growth} MB/min over the second half")

    load_s = r["load_s"]
    scan_lat = figs.latencies["scan"]
    ack_lat = [x for s in stations for x in s.ack_latencies]
    live_ack_lat = [x for s in stations for x in s.live_ack_latencies]
    saved = sum(1 for st in acked.values() if st == "saved")
    duplicate = sum(1 for st in acked.values() if st == "duplicate")
    ws_errors = Counter()
    for s in stations:
        ws_errors.update({f"ws:{k}": v for k, v in s.stats.errors.items()})
        if s.stats.refused:
            ws_errors["ws:connection_refused"] += s.stats.refused
    errors = Counter(figs.errors) + ws_errors
    ts, te = r["trivial_start"], r["trivial_end"]
    # Where the cores went during the load (seconds, and share of all cores), per part.
    cores_s = max(r["stations_s"], 1e-9) * (os.cpu_count() or 1)
    cpu = {
        name: {"cpu_s": round(sec, 1), "share_of_cores": round(sec / cores_s, 3)}
        for name, sec in r.get("cpu_s", {}).items()
    }
    scan_rps = len(scan_lat) / load_s
    feedback = dict(figs.feedback)
    feedback["accepted"] = len(figs.accepted)
    feedback["refused"] = sum(v for k, v in figs.feedback.items() if k.startswith("refused"))
    feedback["answer_lost"] = len(figs.unknown)
    figures = {
        "bench": "soak",
        "duration_s": args.duration,
        "stations": args.stations,
        "consumers": args.consumers,
        "broker": args.broker,
        "rate_per_station": args.rate,
        "samples": {
            "measured": measured,
            "acked": len(acked),
            "saved": saved,
            "acked_duplicate": duplicate,
            "resent": sum(s.stats.resent for s in stations),
            "connections": sum(s.stats.connections for s in stations),
            "connections_cut": sum(s.drops for s in stations),
            "acked_per_s": round(len(acked) / args.duration, 2),
            "last_ack_after_load_s": round(r["last_ack_after_load_s"], 1),
            "offered_per_s": round(args.stations * args.rate, 2),
            "ack_latency_p50_ms": round(percentile(ack_lat, 50) * 1000, 1),
            "ack_latency_p99_ms": round(percentile(ack_lat, 99) * 1000, 1),
            "live_acks": len(live_ack_lat),
            "live_ack_latency_p50_ms": round(percentile(live_ack_lat, 50) * 1000, 1),
            "live_ack_latency_p99_ms": round(percentile(live_ack_lat, 99) * 1000, 1),
            "stored": len(stored),
        },
        "products": {
            "expected": expected_products,
            "registered": sum(1 for row in r["rows"] if row[3]),
            "queue_drain_after_load_s": round(r["drain_s"], 1),
        },
        "scan": {
            "requests": len(scan_lat),
            "rps": round(scan_rps, 1),
            "p50_ms": round(percentile(scan_lat, 50), 1),
            "p99_ms": round(percentile(scan_lat, 99), 1),
            # As the consumer task awaited it: plus the time the request waited in the client.
            "awaited_p50_ms": round(percentile(figs.latencies["scan_awaited"], 50), 1),
            "awaited_p99_ms": round(percentile(figs.latencies["scan_awaited"], 99), 1),
            "statuses": dict(sorted(figs.statuses.items())),
        },
        "feedback": feedback,
        "errors": dict(sorted(errors.items())),
        "server_errors_5xx": server_errors,
        "tracebacks": {"server": r["server_log_tracebacks"], "worker": r["worker_log_tracebacks"]},
        "memory": r["memory"],
        "memory_judged": memory_judged,
        "baseline_trivial": {"start": ts, "end": te},
        # Capacity ratios only: closed loop against closed loop. The scan load has think time,
        # so its rate against the trivial view's closed loop would say nothing.
        "ratios": {
            "trivial_rps_end_vs_start": round(te["rps"] / ts["rps"], 3) if ts["rps"] else None,
            "acked_vs_offered": round(len(acked) / args.duration / (args.stations * args.rate), 3),
        },
        "http_server": getattr(args, "http", "daphne"),
        "http_workers": getattr(args, "http_workers", None),
        "http_threads": getattr(args, "http_threads", 1),
        "http_nice": getattr(args, "http_nice", 0),
        "worker_nice": getattr(args, "worker_nice", 0),
        "http_client": getattr(args, "http_client", "httpx"),
        "cpu": cpu,
        "requests_by_kind": r.get("requests", {}),
        # How late each load client's event loop ran (a sleep of 50 ms that took longer): what
        # a latency measured by that client owes to the client itself.
        "client_loop_lag": r.get("loop_lag", {}),
        "clients_in_one_process": bool(getattr(args, "one_client_process", False)),
        "goals": GOALS,
        "goals_met": {
            # Judged on the server's part: samples measured and acked on one live connection
            # (a sample buffered through a deliberate cut waits for the reconnection backoff).
            "station_ack_p99_ms": percentile(live_ack_lat, 99) * 1000
            <= GOALS["station_ack_p99_ms"],
            "scan_p99_ms": percentile(scan_lat, 99) <= GOALS["scan_p99_ms"],
        },
        "invariants_ok": not failures,
        "failures": failures,
        "cpus": os.cpu_count(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }
    s = figures["samples"]
    print(
        f"stations: {s['acked']} samples acked over {args.duration:g} s "
        f"({s['acked_per_s']}/s of {s['offered_per_s']}/s offered; the last ack "
        f"{s['last_ack_after_load_s']} s after the load; {s['acked_duplicate']} as "
        f"duplicates after {s['connections_cut']} cut connections, {s['resent']} resent), "
        f"ack latency p50 {s['ack_latency_p50_ms']} ms p99 {s['ack_latency_p99_ms']} ms; "
        f"on a live connection ({s['live_acks']} acks: measured and acked with no cut between) "
        f"p50 {s['live_ack_latency_p50_ms']} ms p99 {s['live_ack_latency_p99_ms']} ms"
    )
    p = figures["products"]
    print(
        f"products: {p['registered']} of {p['expected']} expected; queue drained "
        f"{p['queue_drain_after_load_s']} s after the load"
    )
    sc = figures["scan"]
    print(
        f"scan page: {sc['requests']} requests, {sc['rps']} req/s, p50 {sc['p50_ms']} ms, "
        f"p99 {sc['p99_ms']} ms, as awaited by the consumer task p50 {sc['awaited_p50_ms']} ms "
        f"p99 {sc['awaited_p99_ms']} ms (trivial view at start: p50 {ts['p50_ms']} ms, "
        f"{ts['rps']} req/s; at end {te['rps']} req/s)"
    )
    print(
        f"feedback: {feedback['accepted']} accepted, {feedback['refused']} refused "
        f"({', '.join(f'{k} {v}' for k, v in sorted(figs.feedback.items()))}), "
        f"{feedback['answer_lost']} answers lost"
    )
    print(f"errors by kind: {dict(sorted(errors.items())) or 'none'}")
    if cpu:
        print(
            f"CPU over the load ({r['stations_s']:.0f} s x {os.cpu_count()} cores): "
            + ", ".join(
                f"{name} {c['cpu_s']} s ({c['share_of_cores'] * 100:.0f} %)"
                for name, c in cpu.items()
            )
        )
    matched = r.get("requests", {}).get("_matched")
    if matched:
        print(
            f"consumer requests seen by the application: {matched['logged']} of "
            f"{matched['tagged']}, {matched['app_cpu_s']} s of its threads' CPU"
        )
    for label, q in r.get("requests", {}).items():
        if label.startswith("_"):
            continue
        print(
            f"  {label:>24}: {q['requests']:5d} requests, client p50/p99 {q['client_p50_ms']}/"
            f"{q['client_p99_ms']} ms = waiting {q['waiting_p50_ms']}/{q['waiting_p99_ms']} + "
            f"in the application {q['app_wall_p50_ms']}/{q['app_wall_p99_ms']} ms (thread CPU "
            f"{q['app_cpu_mean_ms']} ms, database {q['db_wall_mean_ms']} ms, means)"
        )
    labels = {
        "stations": "stations'",
        "consumers": "consumers'",
        "clients": "load clients' (stations and consumers)",
    }
    for name, lag in figures["client_loop_lag"].items():
        print(
            f"event-loop lag of the {labels[name]} client process: "
            f"p50 {lag['p50_ms']} ms, "
            f"p99 {lag['p99_ms']} ms, max {lag['max_ms']} ms"
        )
    met = figures["goals_met"]
    print(
        f"goals: station ack p99 on a live connection {s['live_ack_latency_p99_ms']} ms (<= "
        f"{GOALS['station_ack_p99_ms']}: {'met' if met['station_ack_p99_ms'] else 'MISSED'}), "
        f"scan p99 {sc['p99_ms']} ms (<= {GOALS['scan_p99_ms']}: "
        f"{'met' if met['scan_p99_ms'] else 'MISSED'}); consumer pages on "
        f"{figures['http_server']}"
    )
    for name, m in r["memory"].items():
        print(
            f"memory {name}: start {m.get('start_mb')} MB, end {m.get('end_mb')} MB, max "
            f"{m.get('max_mb')} MB, slope over the second half "
            f"{m.get('slope_second_half_mb_per_min')} MB/min"
            + ("" if memory_judged else " (not judged: run shorter than --memory-min-duration)")
            + (" FLAGGED" if m.get("flagged") else "")
        )
    print("invariants: " + ("all hold" if not failures else "FAILED: " + "; ".join(failures)))
    print(json.dumps(figures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
