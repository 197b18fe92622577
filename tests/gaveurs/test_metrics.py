"""/metrics: who may read it, and a real scrape while stations send samples and phones scan."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from gaveurs.embedded_pg import settings_database_url
from sensors.services import device_issue_token
from tests.factories import make_device, make_lot, make_sample
from tests.support.servers import ROOT, DaphneServer, wait_for_sessions_to_close
from traceability.services import product_register

pytestmark = pytest.mark.django_db(transaction=True)

FLAT = (ROOT / "tests" / "fixtures" / "sensor_data_flat.json").read_text()
SAMPLES = 12
SCANS = 5


def test_metrics_are_refused_to_an_address_not_allowed(client):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 403
    assert b"gaveurs_" not in response.content


def test_metrics_are_served_to_localhost_in_development(client):
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert b"gaveurs_sqal_samples_received_total" in response.content
    assert b"gaveurs_registration_queue_depth" in response.content


def test_the_token_opens_metrics_from_any_address_and_a_wrong_one_does_not(client, settings):
    settings.METRICS_TOKEN = "a-long-metrics-token-0123456789"
    good = "Bearer a-long-metrics-token-0123456789"
    assert (
        client.get("/metrics", REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION=good).status_code
        == 200
    )
    wrong = "Bearer a-long-metrics-token-0123456788"
    assert (
        client.get("/metrics", REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION=wrong).status_code
        == 403
    )


def test_a_request_relayed_by_a_local_proxy_needs_the_token(client):
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.4")
    assert response.status_code == 403


def scrape(http: str) -> dict[tuple[str, tuple], float]:
    response = httpx.get(f"{http}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


@pytest.mark.integration
def test_a_scrape_during_load_sees_the_samples_acks_batches_queue_and_scans_move(tmp_path):
    lot = make_lot()
    device = make_device(device_id="ESP32_LL_01", assigned_lot=lot)
    token = device_issue_token(device=device)
    sample = make_sample(lot=lot, device=device)
    product = product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
    server = DaphneServer(
        {
            "DATABASE_URL": settings_database_url(connection.settings_dict),
            "LOG_LEVEL": "WARNING",
            "METRICS_HTTP": "true",
        },
        log_dir=tmp_path,
    ).start()
    try:
        before = scrape(server.http)

        async def load() -> tuple[list[dict], list[int], int]:
            from websockets.asyncio.client import connect

            async with httpx.AsyncClient(base_url=server.http, timeout=30) as http:
                ws = await connect(
                    server.ws,
                    additional_headers={"Authorization": f"Bearer {token}"},
                    max_size=None,
                    open_timeout=10,
                )
                assert json.loads(await ws.recv())["type"] == "connection_established"
                for n in range(SAMPLES):
                    message = json.loads(FLAT)
                    message["sample_id"] = f"METRICS-{n:03d}"
                    await ws.send(json.dumps(message))
                # The first scan alone: on main (traceability/scans.py, daily_salt) concurrent
                # first scans of a day race on the day's salt and all but one answer 500.
                first = await http.get(f"/p/{product.qr_code}")
                scans = [first] + list(
                    await asyncio.gather(
                        *(http.get(f"/p/{product.qr_code}") for _ in range(SCANS - 1))
                    )
                )
                mid = (await http.get("/metrics")).status_code  # a scrape under load
                acks = [json.loads(await ws.recv()) for _ in range(SAMPLES)]
                await ws.close()
            return acks, [r.status_code for r in scans], mid

        acks, scan_statuses, mid_status = asyncio.run(asyncio.wait_for(load(), 120))
        assert {a["type"] for a in acks} == {"ack"}, acks
        assert scan_statuses == [200] * SCANS
        assert mid_status == 200
        after = scrape(server.http)
    finally:
        server.stop()
        wait_for_sessions_to_close()

    assert delta(before, after, "gaveurs_sqal_samples_received_total") == SAMPLES
    assert delta(before, after, "gaveurs_sqal_samples_stored_total", status="saved") == SAMPLES
    assert delta(before, after, "gaveurs_sqal_ack_latency_seconds_count") == SAMPLES
    assert delta(before, after, "gaveurs_sqal_batch_size_sum") == SAMPLES
    assert delta(before, after, "gaveurs_sqal_batch_size_count") >= 1
    # No worker runs here: every eligible sample waits for its product.
    assert delta(before, after, "gaveurs_registration_queue_depth") == SAMPLES
    assert after[("gaveurs_registration_oldest_pending_seconds", ())] >= 0
    assert delta(before, after, "gaveurs_scans_total") == SCANS
    assert after[("gaveurs_ledger_size", ())] >= 1
    assert ("gaveurs_open_alerts", (("kind", "quality"),)) in after
    assert after[("gaveurs_metrics_query_errors", ())] == 0
    # By view name, whichever app serves the scan page ("<app>:scan").
    by_view = "django_http_requests_total_by_view_transport_method_total"
    scan_requests = sum(
        value - before.get(key, 0.0)
        for key, value in after.items()
        if key[0] == by_view and dict(key[1]).get("view", "").endswith(":scan")
    )
    assert scan_requests == SCANS
