"""manage.py simulate_sqal against a real server: acks, reconnection, resending, tokens."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from django.core.management import call_command

from sensors.models import Device, SensorSample
from sensors.services import device_issue_token
from sensors.simulator import SimulatorConfig, simulate
from tests.factories import make_device, make_lot, make_site
from tests.support.servers import DaphneServer, server_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]


def test_every_sample_survives_a_server_restart_and_is_stored_once(db):
    make_site(code="LL")
    server = DaphneServer(server_env(SQAL_ALLOW_UNREGISTERED_DEVICES="true")).start()
    config = SimulatorConfig(
        url=server.url,
        device_ids=["ESP32_LL_01", "ESP32_LL_02"],
        rate=8,
        duration=3,
        form="mixed",
        reject_ratio=0.2,
        drain_timeout=20,
        seed=7,
    )

    def crash_and_restart():
        time.sleep(1.2)
        server.kill()
        time.sleep(0.8)
        server.start()

    chaos = threading.Thread(target=crash_and_restart)
    chaos.start()
    try:
        stats = asyncio.run(asyncio.wait_for(simulate(config), 60))
    finally:
        chaos.join()
        server.stop()

    measured = 0
    for device_id, s in stats.items():
        assert s.connections >= 2, (device_id, s)  # it reconnected after the crash
        assert s.errors == {}, s.errors
        count = SensorSample.objects.filter(device_id=device_id).count()
        assert s.measured >= 3 * 8 - 1
        assert s.acked == s.measured == count  # every sample acknowledged, each stored once
        measured += count
    assert SensorSample.objects.count() == measured
    assert set(SensorSample.objects.values_list("fusion_grade", flat=True)) >= {"REJECT"}
    assert Device.objects.get(device_id="ESP32_LL_01").site.code == "LL"


def test_the_command_uses_station_tokens_and_reports_the_lot_staff_assigned(db):
    lot = make_lot(code="LL2610001")
    device = make_device(device_id="ESP32_LL_01", assigned_lot=lot)
    token = device_issue_token(device=device)
    server = DaphneServer(server_env()).start()
    try:
        call_command(
            "simulate_sqal",
            "--url",
            server.url,
            "--devices",
            "1",
            "--rate",
            "10",
            "--duration",
            "1",
            "--format",
            "flat",
            "--token",
            token,
            stdout=open("/dev/null", "w"),  # noqa: SIM115
        )
    finally:
        server.stop()
    samples = SensorSample.objects.all()
    assert samples.count() >= 9
    assert {s.lot_id for s in samples} == {lot.id}
    assert {s.lot_abattage for s in samples} == {"LL2610001"}
