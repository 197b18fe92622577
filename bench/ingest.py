"""SQAL ingestion benchmark: samples stored and acknowledged per second, vs a fair echo ceiling.

Run: ``.venv/bin/python bench/ingest.py [--flat 600] [--nested 3000] [--window 16] [--repeat 3]``.
Uses a throwaway embedded PostgreSQL (migrated) and ONE Daphne server process serving both:

* ``/ws/echo/``: the ceiling, a trivial consumer that answers every frame with a constant ack
  without even parsing it (what Daphne + Channels + the client cost by themselves). It has the
  same dispatch as the station consumer (``sensors.consumers.FrameDispatch``: no per-frame
  thread hop, a request id per frame), so the ceiling gets every advantage the station path has;
* ``/ws/sensors/``: the real station endpoint (``gaveurs.asgi``: origin check, auth middleware,
  validation, group commit, ack after commit).

For each message (the real 190 KB ESP32 fixture, and a compact nested message of ~5 KB) and for
1 station and 20 stations, the clients (websockets, in this process) keep ``--window`` frames
in flight per connection and measure frames acknowledged per second and each frame's ack
latency (send to ack). Echo and stored runs alternate (E S E S ...), ``--repeat`` of each, so a
change of the shared machine's load weighs on both; rates and CPU are the medians of the turns,
latency percentiles are over every frame of every turn. Server CPU per message is the Daphne
process's user + system time over each turn (and PostgreSQL's, all its processes, beside it),
with its event-loop thread's share (validation runs there; the rest is the batch writers'
threads: compression and the database work). After the runs, the per-message steps of the
stored path are timed alone in this process (validation by the consumer's parser and by
pydantic's, zstd at the stored level and at -1, and ``json.loads`` for comparison).
Goals, both on rate and on server CPU per message (echo CPU / stored CPU): 190 KB >= 0.5,
5 KB nested >= 0.4. The per-connection throttle is lifted for the run: it is a protection, and
here we measure capacity. The mean batch size (samples per transaction) comes from the database
(one ``received_at`` per transaction). The last line is one JSON object.

The stations are what production runs (since 30 November 2026, evening): registered, each with
its token (sent in ``Authorization: Bearer`` to both routes; the echo ignores it) and a lot staff
assigned, unregistered stations refused. Both messages are compliant (grade A and A+), so every
stored sample also asks for its consumer product: the writer thread enqueues a Celery task on
commit, on a private ``redis-server`` started by the bench, whose CPU is printed beside
PostgreSQL's. No worker runs: the tasks stay queued, and registering the products (worker and
PostgreSQL CPU) is not counted here (``bench/pipeline.py`` measures that path).
``--unregistered`` runs the bench's former set-up instead (development mode: anonymous stations
created on their first sample, no lot, so a ``no_lot`` alert counted per sample and no product
asked for), a path production does not take.

After the runs, the stored row's codec is weighed in the same PostgreSQL: the CPU per message of
each codec in this process (zstd level 1, the stored one; lz4 when the ``lz4`` package is
importable) beside PostgreSQL's CPU per row to store what it produced (batches of 12 rows in a
``bytea`` column with ``STORAGE EXTERNAL``, as ``sqal_sensor_samples.payload``, alternating rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench.common import (  # noqa: E402
    django_setup,
    percentile,
    start_redis,
    stop_process,
    tree_cpu_seconds,
)

FIXTURE = ROOT / "tests" / "fixtures" / "sensor_data_flat.json"


# --- the server side: echo route + the real application ---------------------------------------


def __getattr__(name: str):
    """``bench.ingest:application`` for Daphne, built lazily (this module is also the client)."""
    if name != "application":
        raise AttributeError(name)
    from channels.generic.websocket import AsyncWebsocketConsumer

    from gaveurs.asgi import application as real
    from sensors.consumers import FrameDispatch

    class Echo(FrameDispatch, AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept()
            await self.send(text_data='{"type": "connection_established"}')

        async def receive(self, text_data=None, bytes_data=None) -> None:
            await self.send(text_data='{"type": "ack", "status": "echo"}')

    echo = Echo.as_asgi()

    async def app(scope, receive, send):
        if scope["type"] == "websocket" and scope["path"].startswith("/ws/echo/"):
            return await echo(scope, receive, send)
        return await real(scope, receive, send)

    globals()["application"] = app
    return app


# --- the client side ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loop_thread_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process's main thread (Daphne's event loop; the batch writers
    and the sync-to-async threads are the others)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def codec_breakdown(texts: dict[str, str], repeat: int = 200) -> dict[str, dict[str, float]]:
    """CPU ms per message of the stored path's per-message steps, in this process: validation
    (``parse_frame``, what the event loop runs: msgspec's fast path; ``parse_message``, pydantic's
    path, which decides every refusal), ``json.loads`` for comparison, and the zstd compression
    the writer threads run (level 1, stored; level -1 for comparison)."""
    import zstandard

    from sensors.frames import parse_frame
    from sensors.payload import LEVEL
    from sensors.schemas import parse_message

    def cpu_ms(step) -> float:
        step()
        started = time.process_time()
        for _ in range(repeat):
            step()
        return round((time.process_time() - started) / repeat * 1000, 3)

    out = {}
    for name, text in texts.items():
        data = text.encode()
        stored, faster = zstandard.ZstdCompressor(level=LEVEL), zstandard.ZstdCompressor(level=-1)
        out[name] = {
            "parse_frame_ms": cpu_ms(lambda t=text: parse_frame(t, max_bytes=10**8)),
            "parse_message_ms": cpu_ms(lambda t=text: parse_message(t, max_bytes=10**8)),
            "json_loads_ms": cpu_ms(lambda t=text: json.loads(t)),
            f"zstd_level_{LEVEL}_ms": cpu_ms(lambda d=data, c=stored: c.compress(d)),
            f"zstd_level_{LEVEL}_bytes": len(stored.compress(data)),
            "zstd_level_-1_ms": cpu_ms(lambda d=data, c=faster: c.compress(d)),
            "zstd_level_-1_bytes": len(faster.compress(data)),
        }
    return out


def codecs() -> dict:
    """The stored codec (zstd at ``sensors.payload.LEVEL``), and lz4 (level 0, the fast one) when
    the package is importable: name -> compress(bytes) -> bytes."""
    import zstandard

    from sensors.payload import LEVEL

    found = {f"zstd_level_{LEVEL}": zstandard.ZstdCompressor(level=LEVEL).compress}
    try:
        import lz4.frame
    except ImportError:
        return found
    found["lz4_level_0"] = lambda data: lz4.frame.compress(data, compression_level=0)
    return found


def payload_row_cost(
    text: str | None, pg_pid: int | None, rounds: int = 5, batches: int = 40, batch: int = 12
) -> dict[str, dict]:
    """Each codec's CPU per message here, its output size, and PostgreSQL's CPU per row to store
    that output (all its processes: backend, WAL writer...), in batches of ``batch`` rows per
    transaction, codecs alternating round by round; medians over the rounds."""
    if text is None or pg_pid is None:
        return {}
    from django.db import connection, transaction

    data = text.replace("__DEV__", "ESP32_LL_01").replace("__SID__", "S1").encode()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_payload_rows (id bigserial PRIMARY KEY, payload bytea)")
        cursor.execute("ALTER TABLE bench_payload_rows ALTER payload SET STORAGE EXTERNAL")
    session = connection.connection
    sql = "INSERT INTO bench_payload_rows (payload) VALUES " + ", ".join(["(%s)"] * batch)
    found = {}
    pg_ms: dict[str, list[float]] = {}
    for name, compress in codecs().items():
        out = compress(data)
        started = time.process_time()
        for _ in range(200):
            compress(data)
        found[name] = {
            "bytes": len(out),
            "compress_ms": round((time.process_time() - started) / 200 * 1000, 3),
        }
        pg_ms[name] = []
    for _ in range(rounds):
        for name, compress in codecs().items():
            payloads = [compress(data)] * batch
            before = tree_cpu_seconds(pg_pid)
            for _ in range(batches):
                with transaction.atomic():
                    session.execute(sql, payloads, prepare=True)
            spent = tree_cpu_seconds(pg_pid) - before
            pg_ms[name].append(spent / (batches * batch) * 1000)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_payload_rows")
    for name, values in pg_ms.items():
        found[name]["postgres_ms"] = round(statistics.median(values), 3)
    return found


def products_queued(broker_url: str) -> int:
    """Product registrations waiting in the broker (queue "exports"; no worker runs): one per
    single-sample task, one per request of a batch task."""
    import base64

    import redis

    client = redis.Redis.from_url(broker_url)
    try:
        messages = client.lrange("exports", 0, -1)
    finally:
        client.close()
    count = 0
    for raw in messages:
        message = json.loads(raw)
        body = message["body"]
        if message["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        _args, kwargs, _embed = json.loads(body)
        count += len(kwargs["requests"]) if "requests" in kwargs else 1
    return count


def flat_template() -> str:
    """The fixture byte for byte (190 KB), with placeholders for its own ids."""
    text = FIXTURE.read_text()
    text = text.replace('"sample_id": "MG-261124-9595-018"', '"sample_id": "__SID__"', 1)
    text = text.replace('"device_id": "ESP32_LL_01"', '"device_id": "__DEV__"', 1)
    assert json.loads(text)["sample_id"] == "__SID__" and json.loads(text)["device_id"] == "__DEV__"
    return text


def nested_template() -> str:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from sensors.examples import nested_example

    flat = json.loads(FIXTURE.read_text())
    matrices = ("distance_matrix", "reflectance_matrix", "amplitude_matrix", "ambient_matrix")
    message = nested_example(
        flat,
        matrices=matrices,
        device_id="__DEV__",
        sample_id="__SID__",
        meta={"firmware_version": "1.0.0", "temperature_c": 4.1, "humidity_percent": 48},
        lot_abattage="LL2610001",
    )
    return json.dumps(message)


async def station(
    url: str,
    template: str,
    device_id: str,
    run_id: str,
    count: int,
    window: int,
    token: str | None = None,
) -> tuple[int, float, list[float]]:
    """One station: (frames acknowledged as saved, seconds, ack latencies in ms)."""
    from websockets.asyncio.client import connect

    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with connect(
        url, max_size=None, open_timeout=20, compression=None, additional_headers=headers
    ) as ws:
        assert json.loads(await ws.recv())["type"] == "connection_established"
        body = template.replace("__DEV__", device_id)
        saved = 0
        sent = 0
        # Send time of each frame in flight, by sample id; the echo's ack names no sample, so
        # it settles the oldest (the echo answers in order).
        in_flight: dict[str, float] = {}
        latencies: list[float] = []
        started = time.perf_counter()
        while sent < count or in_flight:
            while sent < count and len(in_flight) < window:
                sample_id = f"{device_id}_{run_id}_{sent:06d}"
                in_flight[sample_id] = time.perf_counter()
                await ws.send(body.replace("__SID__", sample_id))
                sent += 1
            frame = json.loads(await ws.recv())
            if frame.get("type") != "ack":
                raise RuntimeError(f"{device_id}: {frame}")
            sample_id = frame.get("sample_id") or next(iter(in_flight))
            latencies.append((time.perf_counter() - in_flight.pop(sample_id)) * 1000)
            saved += frame.get("status") in ("saved", "echo")
        return saved, time.perf_counter() - started, latencies


def device_name(n: int) -> str:
    return f"ESP32_LL_{n + 1:02d}"


async def measure(
    url: str,
    template: str,
    devices: int,
    total: int,
    window: int,
    run_id: str,
    tokens: dict[str, str],
) -> tuple[float, int, list[float]]:
    """(acknowledged frames per second, frames, ack latencies in ms) for ``devices`` stations
    (``tokens``: each registered station's token; empty for anonymous stations)."""
    per_device = max(1, total // devices)
    started = time.perf_counter()
    results = await asyncio.gather(
        *(
            station(
                url,
                template,
                device_name(n),
                run_id,
                per_device,
                window,
                tokens.get(device_name(n)),
            )
            for n in range(devices)
        )
    )
    elapsed = time.perf_counter() - started
    saved = sum(r[0] for r in results)
    if saved != per_device * devices:
        raise RuntimeError(f"{saved} of {per_device * devices} acknowledged as saved")
    return saved / elapsed, saved, [lat for r in results for lat in r[2]]


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


GOALS = {"flat_190KB": 0.5, "nested": 0.4}
STATIONS = 20


def register_stations(count: int) -> dict[str, str]:
    """Stations as production has them: registered on site LL, each with its token and a lot
    staff assigned to it; returns the tokens by station id."""
    from bench.builders import make_device, make_gaveur, make_lot, make_site
    from sensors.services import device_issue_token

    site = make_site(code="LL")
    gaveur = make_gaveur(site=site, last_name="Bench", first_name="Ingest")
    tokens = {}
    for n in range(count):
        lot = make_lot(site=site, gaveur=gaveur)
        device = make_device(device_id=device_name(n), site=site, assigned_lot=lot)
        tokens[device.device_id] = device_issue_token(device=device)
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flat", type=int, default=600, help="190 KB messages per run")
    parser.add_argument("--nested", type=int, default=3000, help="compact messages per run")
    parser.add_argument("--window", type=int, default=16, help="frames in flight per station")
    parser.add_argument("--only", choices=["flat_190KB", "nested"], help="one message kind")
    parser.add_argument(
        "--repeat", type=int, default=3, help="alternating echo/stored turns per figure (medians)"
    )
    parser.add_argument(
        "--unregistered",
        action="store_true",
        help="the former set-up: anonymous stations, no lot (a path production does not take)",
    )
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    workdir = tempfile.mkdtemp(prefix="gtbench-ingest.")
    from gaveurs.embedded_pg import database_url

    db_url = database_url(Path(workdir) / "pg", cleanup_mode="delete")
    redis, broker_url = start_redis(Path(workdir))
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "DJANGO_SETTINGS_MODULE": "gaveurs.settings",
        "SQAL_ALLOW_UNREGISTERED_DEVICES": "true" if args.unregistered else "false",
        "SQAL_THROTTLE_RATE": "1000000",
        "SQAL_THROTTLE_BURST": "1000000",
        "LOG_LEVEL": "WARNING",
        "CELERY_BROKER_URL": broker_url,
    }
    env.pop("CELERY_REDIS_KEY_PREFIX", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    django_setup(db_url, migrate=False)
    from django.db import connection

    tokens = {} if args.unregistered else register_stations(STATIONS)
    connection.close()
    port = free_port()
    log = open(Path(workdir) / "daphne.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "bench.ingest:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        base = f"ws://127.0.0.1:{port}"
        templates = {
            "flat_190KB": (flat_template(), args.flat),
            "nested": (nested_template(), args.nested),
        }
        if args.only:
            templates = {args.only: templates[args.only]}
        figures: dict[str, dict] = {}
        run = 0
        pg_pid = postmaster_pid(Path(workdir) / "pg")

        async def turn(route: str, template: str, devices: int, total: int) -> dict:
            """One run: rate, frames, latencies, server and database CPU ms per message."""
            nonlocal run
            run += 1
            cpu = server_cpu_seconds(server.pid)
            loop_cpu = loop_thread_cpu_seconds(server.pid)
            db_cpu = tree_cpu_seconds(pg_pid) if pg_pid else 0.0
            broker_cpu = server_cpu_seconds(redis.pid)
            rate, n, latencies = await measure(
                base + route, template, devices, total, args.window, f"{run}", tokens
            )
            return {
                "rate": rate,
                "n": n,
                "latencies": latencies,
                "cpu_ms": (server_cpu_seconds(server.pid) - cpu) / n * 1000,
                "loop_cpu_ms": (loop_thread_cpu_seconds(server.pid) - loop_cpu) / n * 1000,
                "db_cpu_ms": ((tree_cpu_seconds(pg_pid) - db_cpu) / n * 1000) if pg_pid else 0.0,
                "broker_cpu_ms": (server_cpu_seconds(redis.pid) - broker_cpu) / n * 1000,
            }

        def summary(turns: list[dict]) -> dict:
            latencies = [lat for t in turns for lat in t["latencies"]]
            return {
                "per_s": round(statistics.median(t["rate"] for t in turns), 1),
                "cpu_ms_per_msg": round(statistics.median(t["cpu_ms"] for t in turns), 3),
                # Of which Daphne's event-loop thread; the rest is the batch writers' threads.
                "loop_thread_cpu_ms_per_msg": round(
                    statistics.median(t["loop_cpu_ms"] for t in turns), 3
                ),
                "db_cpu_ms_per_msg": round(statistics.median(t["db_cpu_ms"] for t in turns), 3),
                "broker_cpu_ms_per_msg": round(
                    statistics.median(t["broker_cpu_ms"] for t in turns), 3
                ),
                "ack_p50_ms": round(percentile(latencies, 50), 1),
                "ack_p95_ms": round(percentile(latencies, 95), 1),
                "ack_p99_ms": round(percentile(latencies, 99), 1),
                "frames": sum(t["n"] for t in turns),
            }

        async def all_runs():
            # Warm up both routes (connections, imports, the database's caches).
            warm_template = next(iter(templates.values()))[0]
            await measure(base + "/ws/echo/", warm_template, 2, 40, 4, "warm", tokens)
            await measure(base + "/ws/sensors/", warm_template, 2, 40, 4, "warm", tokens)
            for name, (template, total) in templates.items():
                size = len(template.encode())
                for devices in (1, 20):
                    echo_turns, stored_turns = [], []
                    for _ in range(args.repeat):  # E S E S ...
                        echo_turns.append(await turn("/ws/echo/", template, devices, total))
                        stored_turns.append(await turn("/ws/sensors/", template, devices, total))
                    echo, stored = summary(echo_turns), summary(stored_turns)
                    ratio = stored["per_s"] / echo["per_s"]
                    cpu_ratio = echo["cpu_ms_per_msg"] / stored["cpu_ms_per_msg"]
                    key = f"{name}_{devices}_station{'s' if devices > 1 else ''}"
                    figures[key] = {
                        "bytes": size,
                        "echo": echo,
                        "stored": stored,
                        "ratio": round(ratio, 3),
                        "cpu_ratio": round(cpu_ratio, 3),
                        "goal": GOALS[name],
                        "goal_met": ratio >= GOALS[name] and cpu_ratio >= GOALS[name],
                    }
                    print(
                        f"{key:24s} {size / 1024:6.1f} KB  echo {echo['per_s']:7.1f}/s "
                        f"p50/p95/p99 {echo['ack_p50_ms']:.1f}/{echo['ack_p95_ms']:.1f}/"
                        f"{echo['ack_p99_ms']:.1f} ms, {echo['cpu_ms_per_msg']:.2f} ms cpu | "
                        f"stored+acked {stored['per_s']:7.1f}/s p50/p95/p99 "
                        f"{stored['ack_p50_ms']:.1f}/{stored['ack_p95_ms']:.1f}/"
                        f"{stored['ack_p99_ms']:.1f} ms, {stored['cpu_ms_per_msg']:.2f} ms cpu "
                        f"(event loop {stored['loop_thread_cpu_ms_per_msg']:.2f}; "
                        f"+{stored['db_cpu_ms_per_msg']:.2f} ms PostgreSQL, "
                        f"+{stored['broker_cpu_ms_per_msg']:.2f} ms Redis) | ratio "
                        f"{ratio:4.2f}, cpu ratio {cpu_ratio:4.2f} (goal {GOALS[name]})",
                        flush=True,
                    )

        asyncio.run(all_runs())
        queued = products_queued(broker_url)
    finally:
        server.terminate()
        server.wait(10)
        stop_process(redis)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT received_at), count(lot_id) FROM sqal_sensor_samples "
            "WHERE sample_id NOT LIKE %s",
            ["%\\_warm\\_%"],
        )
        samples, transactions, with_lot = cursor.fetchone()
    mean_batch = samples / transactions if transactions else 0.0
    print(
        f"samples stored {samples} in {transactions} transactions (mean batch {mean_batch:.1f}); "
        f"{with_lot} with a lot; product registrations queued (warm-up included): {queued}"
    )
    if not args.unregistered and (with_lot != samples or queued < samples):
        raise SystemExit("the stored samples did not all get their lot and product request")
    rows = payload_row_cost(
        templates["flat_190KB"][0] if "flat_190KB" in templates else None, pg_pid
    )
    if rows:
        print(
            "stored row of the 190 KB message, by codec (CPU ms per message here, then "
            "PostgreSQL's to store the row): "
            + "; ".join(
                f"{codec} {r['bytes']} B, {r['compress_ms']} + {r['postgres_ms']} ms"
                for codec, r in rows.items()
            )
        )
    breakdown = codec_breakdown(
        {
            name: text.replace("__DEV__", "ESP32_LL_01").replace("__SID__", "S1")
            for name, (text, _) in templates.items()
        }
    )
    for name, steps in breakdown.items():
        print(
            f"{name}: CPU ms per message in one process: "
            + ", ".join(f"{step} {value}" for step, value in steps.items())
        )
    print(
        json.dumps(
            {
                "bench": "ingest",
                "window": args.window,
                "repeat": args.repeat,
                "figures": figures,
                "min_ratio_to_echo": min(f["ratio"] for f in figures.values()),
                "min_cpu_ratio_to_echo": min(f["cpu_ratio"] for f in figures.values()),
                "goals": GOALS,
                "goals_met": all(f["goal_met"] for f in figures.values()),
                "mean_batch_size": round(mean_batch, 1),
                "stations": "unregistered, no lot" if args.unregistered else "registered, lot",
                "products_queued": queued,
                "payload_row_by_codec": rows,
                "per_message_steps": breakdown,
                "cpus": os.cpu_count(),
                "load_average": [round(x, 2) for x in os.getloadavg()],
            }
        )
    )


if __name__ == "__main__":
    main()
