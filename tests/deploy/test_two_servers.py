"""Beyond one machine, on one machine: two Daphne servers and two Celery workers share Redis
(channel layer and broker, a redis-server of the module's own) and PostgreSQL (the test database),
as they would on separate hosts behind a load balancer (README, "Deployment beyond one machine").

A sample sent to either server is stored once, becomes exactly one product (whichever worker takes
its task), and reaches a staff dashboard connected to the other server.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.test import Client
from websockets.asyncio.client import connect

from sensors.models import SensorSample
from sensors.services import device_issue_token
from tests.factories import make_device, make_lot, make_staff
from tests.support.servers import (
    DaphneServer,
    GranianServer,
    Worker,
    django_database_url,
    wait_until,
    workers_idle,
)
from tests.support.stations import exchange, nested, open_station
from traceability.models import ConsumerProduct

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def cluster(redis_server, django_db_setup, django_db_blocker, tmp_path_factory):
    """Two servers and two workers, each started as its own host would start it."""
    with django_db_blocker.unblock():
        database_url = django_database_url()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EMBEDDED_PG", "CELERY_", "REDIS_URL", "DATABASE_URL"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="gaveurs.settings",
        DATABASE_URL=database_url,
        REDIS_URL=redis_server.url(3),  # channels-redis: the dashboard group spans the servers
        CELERY_BROKER_URL=redis_server.url(4),
        CACHE_URL=redis_server.url(5),  # rate limits count across servers
        FEEDBACK_RATE_LIMIT="2",
        PRODUCT_SWEEP_GRACE_SECONDS="3600",  # products come from the tasks ingestion sent
        LOG_LEVEL="WARNING",
    )
    servers = [DaphneServer(env), DaphneServer(env)]
    workers = [Worker(env, tmp_path_factory.mktemp(f"worker{n}")) for n in (1, 2)]
    pages = GranianServer(env, tmp_path_factory.mktemp("granian"))
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(5) as pool:
            # Five processes importing Django at once: give a loaded machine time.
            starts = [pool.submit(s.start, 120) for s in servers]
            starts += [pool.submit(p.start, 120) for p in (*workers, pages)]
            for future in starts:
                future.result()
        print(f"two servers, two workers and the WSGI pages in {time.monotonic() - started:.1f} s")
        yield servers, workers, pages
    finally:
        with ThreadPoolExecutor(5) as pool:
            list(pool.map(lambda p: p.stop(), (*workers, *servers, pages)))


def staff_cookie() -> str:
    user = make_staff("qualite", "sensors.view_sensorsample")
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


async def dashboard(server: DaphneServer, cookie: str):
    return await connect(server.url + "live/", additional_headers={"Cookie": cookie})


async def wait_for_card(ws, sample_id: str, timeout: float = 15) -> dict:
    """The first dashboard update whose station cards show ``sample_id``."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"{sample_id} never reached this dashboard"
        update = json.loads(await asyncio.wait_for(ws.recv(), left))
        for station in update.get("stations", []):
            if f'data-sample="{sample_id}"' in station["html"]:
                return station


def test_a_sample_sent_to_either_server_makes_one_product_and_reaches_the_other_servers_dashboard(
    cluster,
):
    (first, second), workers, pages = cluster
    lot = make_lot()
    tokens = {
        device_id: device_issue_token(device=make_device(device_id=device_id, assigned_lot=lot))
        for device_id in ("ESP32_LL_01", "ESP32_LL_02")
    }
    cookie = staff_cookie()
    sent = {
        "ESP32_LL_01": (first, "ESP32_LL_01_DEPLOY_1"),
        "ESP32_LL_02": (second, "ESP32_LL_02_DEPLOY_1"),
    }

    async def scenario():
        on_first, on_second = await dashboard(first, cookie), await dashboard(second, cookie)
        acks = {}
        for device_id, (server, sample_id) in sent.items():
            station = await open_station(server.url, tokens[device_id])
            acks[sample_id] = await exchange(
                station, nested(sample_id, device_id=device_id, lot_abattage=lot.code)
            )
            await station.close()
        # Each sample on the dashboard connected to the server it was not sent to.
        cards = {
            "ESP32_LL_01_DEPLOY_1": await wait_for_card(on_second, "ESP32_LL_01_DEPLOY_1"),
            "ESP32_LL_02_DEPLOY_1": await wait_for_card(on_first, "ESP32_LL_02_DEPLOY_1"),
        }
        await on_first.close()
        await on_second.close()
        return acks, cards

    acks, cards = asyncio.run(asyncio.wait_for(scenario(), 60))

    assert {a["status"] for a in acks.values()} == {"saved"}
    assert cards["ESP32_LL_01_DEPLOY_1"]["device_id"] == "ESP32_LL_01"
    assert cards["ESP32_LL_02_DEPLOY_1"]["device_id"] == "ESP32_LL_02"
    wait_until(lambda: ConsumerProduct.objects.count() >= 2, what="both products")
    workers_idle(workers)
    products = ConsumerProduct.objects.order_by("sqal_sample_id")
    assert [p.sqal_sample_id for p in products] == ["ESP32_LL_01_DEPLOY_1", "ESP32_LL_02_DEPLOY_1"]
    assert SensorSample.objects.count() == 2
    assert all(w.proc is not None and w.proc.poll() is None for w in workers)

    # The consumer pages, served by a WSGI server of their own from the same database.
    for product in products:
        page = httpx.get(f"{pages.http}/p/{product.qr_code}", timeout=10)
        assert page.status_code == 200 and product.product_id in page.text
    assert httpx.get(f"{pages.http}/static/admin/css/base.css", timeout=10).status_code == 200


def test_registrations_are_shared_between_the_two_workers(cluster):
    (first, second), workers, _ = cluster
    lot = make_lot()
    token = device_issue_token(device=make_device(device_id="ESP32_LL_03", assigned_lot=lot))

    async def send_many():
        acks = []
        for n, server in enumerate([first, second] * 10):
            station = await open_station(server.url, token)
            acks.append(
                await exchange(station, nested(f"ESP32_LL_03_{n:04d}", device_id="ESP32_LL_03"))
            )
            await station.close()
        return acks

    acks = asyncio.run(asyncio.wait_for(send_many(), 60))

    assert [a["status"] for a in acks] == ["saved"] * 20
    wait_until(lambda: ConsumerProduct.objects.filter(lot=lot).count() >= 20, what="20 products")
    workers_idle(workers)
    assert ConsumerProduct.objects.filter(lot=lot).count() == 20
    done_by = [w.log.read_text().count("generate_qr_code_async[") for w in workers]
    assert all(n > 0 for n in done_by), done_by


def test_the_feedback_rate_limit_counts_a_client_across_all_servers(cluster):
    (first, second), _, pages = cluster
    attempt = {"qr_code": "SQAL_1_NOPE_FG_LL_20261125_0001_0000000000000000"}
    attempt.update(
        {f"{k}_rating": 4 for k in ("overall", "taste", "texture", "appearance", "value")}
    )

    statuses = [
        httpx.post(f"{server.http}/api/consumer/feedback", json=attempt, timeout=10).status_code
        for server in (first, second, pages, first)
    ]

    # Two attempts allowed (unknown product: 404), then refused on whichever server is asked.
    assert statuses == [404, 404, 429, 429]
