"""Hostile frames on /ws/sensors/ through a real Daphne server, started with the websocket size
limits of scripts/run.sh.

Garbage gets an error frame and the connection stays usable; a message over
SQAL_MAX_MESSAGE_BYTES gets ``message_too_large`` (still connected); one over Daphne's own limit
is refused by the protocol (close 1009) before it is buffered, and the server serves the next
station. Script and SQL payloads in the station's strings are stored verbatim and shown escaped.
The same server refuses an oversized HTTP body (413) and goes on serving.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.utils.html import escape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from sensors.models import Device, SensorSample
from sensors.services import device_issue_token
from tests.factories import make_device
from tests.support.servers import ROOT, DaphneServer, server_env
from tests.support.stations import fixture_text
from tests.support.strategies import json_values

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FLAT = fixture_text("sensor_data_flat.json")
HELLO = fixture_text("esp32_hello.json")
APP_LIMIT = 512 * 1024
PROTOCOL_LIMIT = 2 * APP_LIMIT  # scripts/run.sh: WS_MAX_BYTES = 2 × SQAL_MAX_MESSAGE_BYTES
SQLI = "'; DROP TABLE consumer_products; --"
XSS_SCRIPT = "<script>alert(1)</script>"
XSS_ATTR = '"><img src=x onerror=alert(1)>'


class LimitedDaphne(DaphneServer):
    """Daphne with the --websocket-max-message-size/--websocket-max-frame-size of run.sh."""

    def start(self) -> LimitedDaphne:
        import socket

        env = {**os.environ, **self.env}
        env.pop("EMBEDDED_PG_CLEANUP", None)
        limit = str(PROTOCOL_LIMIT)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)]
            + ["--websocket-max-message-size", limit, "--websocket-max-frame-size", limit]
            + [self.app],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daphne exited: {self.log.read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("daphne did not start in 30 s")


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        daphne = LimitedDaphne(
            server_env(
                SQAL_MAX_MESSAGE_BYTES=str(APP_LIMIT),
                SQAL_THROTTLE_RATE="1000",
                SQAL_THROTTLE_BURST="1000",
            )
        )
    daphne.start()
    yield daphne
    daphne.stop()


@pytest.fixture
def token(db) -> str:
    return device_issue_token(device=make_device(device_id="ESP32_LL_01"))


@contextmanager
def open_station(server, token):
    with connect(
        server.url,
        additional_headers={"Authorization": f"Bearer {token}"},
        max_size=None,
        open_timeout=10,
    ) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_established"
        yield ws


def exchange(ws, frame: str | bytes) -> dict:
    ws.send(frame)
    return json.loads(ws.recv(timeout=20))


def flat(**changes) -> str:
    return json.dumps({**json.loads(FLAT), **changes})


def test_garbage_frames_get_error_frames_and_the_connection_stays_usable(server, token):
    garbage = {
        "": "invalid_json",
        "{": "invalid_json",
        "null": "unknown_type",
        "[1, 2]": "unknown_type",
        '{"type": "sensor_data"}': "validation_error",
        '{"type": "drop_tables"}': "unknown_type",
        "[" * 5000: "invalid_json",
        flat(fusion={"final_score": float("nan"), "final_grade": "A"}): "validation_error",
        flat(eleveur="Ferme\x00"): "validation_error",
        flat(sample_id=SQLI): "validation_error",
        flat(device_id="ESP32_XX_99"): "device_mismatch",
        b"\xff\xfe\x00garbage": "invalid_json",
        b"{}": "unknown_type",
    }
    with open_station(server, token) as ws:
        for frame, code in garbage.items():
            reply = exchange(ws, frame)
            assert (reply["type"], reply["code"]) == ("error", code), (frame[:60], reply)
            assert reply["detail"]
        assert exchange(ws, '{"type": "ping"}')["type"] == "pong"
        ack = exchange(ws, FLAT)
    assert (ack["type"], ack["status"]) == ("ack", "saved")
    assert SensorSample.objects.count() == 1
    assert "consumer_products" in connection.introspection.table_names()


frames = (
    st.text(max_size=300)
    | st.binary(max_size=300)
    | json_values.map(json.dumps)
    | st.fixed_dictionaries(
        {"type": st.sampled_from(["sensor_data", "esp32_hello", "ping", "heartbeat", "x"])},
        optional={"device_id": json_values, "sample_id": json_values, "location": json_values},
    ).map(json.dumps)
)


def test_any_frame_gets_exactly_one_answer_and_the_connection_survives(server, token):
    answers: list[str] = []
    with open_station(server, token) as ws:

        @settings(
            max_examples=150,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(frames)
        def check(frame):
            reply = exchange(ws, frame)
            assert reply["type"] in ("error", "pong", "heartbeat_ack", "hello_ack"), reply
            if reply["type"] == "error":
                assert reply["code"] != "internal_error", (frame, reply)
                assert reply["detail"]
            answers.append(reply["type"])

        check()
        assert exchange(ws, '{"type": "ping"}')["type"] == "pong"
    assert len(answers) >= 150


def test_a_message_over_the_consumer_limit_is_refused_and_the_station_stays_connected(
    server, token
):
    big = flat(padding="x" * APP_LIMIT)
    assert APP_LIMIT < len(big) < PROTOCOL_LIMIT
    with open_station(server, token) as ws:
        reply = exchange(ws, big)
        assert (reply["code"], reply["rule"]) == ("message_too_large", "max_bytes")
        assert reply["sample_id"] == "MG-261124-9595-018"
        assert exchange(ws, '{"type": "ping"}')["type"] == "pong"
    assert not SensorSample.objects.exists()


def test_a_message_over_the_protocol_limit_is_cut_off_by_daphne(server, token):
    with open_station(server, token) as ws:
        ws.send(flat(padding="x" * PROTOCOL_LIMIT))
        # No error frame: the consumer never sees the message. Daphne fails the connection
        # (1009, message too big), or resets it while the client is still sending.
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=20)
    assert closed.value.rcvd is None or closed.value.rcvd.code == 1009
    # The server itself is fine: the next connection is served.
    with open_station(server, token) as again:
        assert exchange(again, '{"type": "ping"}')["type"] == "pong"
    assert not SensorSample.objects.exists()


def test_hostile_station_strings_are_stored_verbatim_and_shown_escaped(server, token):
    with open_station(server, token) as ws:
        hello = exchange(ws, json.dumps({**json.loads(HELLO), "location": XSS_ATTR}))
        ack = exchange(ws, flat(eleveur=XSS_SCRIPT, lot_abattage=SQLI, provenance=XSS_ATTR))
    assert hello["type"] == "hello_ack" and ack["status"] == "saved", (hello, ack)

    sample = SensorSample.objects.get()
    assert (sample.eleveur, sample.lot_abattage, sample.provenance) == (XSS_SCRIPT, SQLI, XSS_ATTR)
    assert sample.payload["eleveur"] == XSS_SCRIPT
    device = Device.objects.get(device_id="ESP32_LL_01")
    assert device.location == XSS_ATTR
    assert "consumer_products" in connection.introspection.table_names()

    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser("ws-admin", password="x-9-pass"))
    pages = {
        "sample": staff.get(f"/admin/sensors/sensorsample/{sample.pk}/change/"),
        "samples": staff.get("/admin/sensors/sensorsample/", {"q": SQLI}),
        "device": staff.get(f"/admin/sensors/device/{device.pk}/change/"),
        "devices": staff.get("/admin/sensors/device/"),
        "dashboard": staff.get("/sqal/live/"),
    }
    for name, response in pages.items():
        assert response.status_code == 200, name
        html = response.content.decode()
        for raw in (XSS_SCRIPT, XSS_ATTR, "<img src=x"):
            assert raw not in html, (name, raw)
    assert escape(XSS_SCRIPT) in pages["sample"].content.decode()
    assert escape(XSS_ATTR) in pages["device"].content.decode()


def test_an_oversized_http_body_is_refused_by_the_server_which_goes_on_serving(server):
    import urllib.error
    import urllib.request

    body = b'{"qr_code": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    request = urllib.request.Request(
        f"{server.http}/api/consumer/feedback",
        data=body,
        headers={"Content-Type": "application/json", "Host": "localhost"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413
    assert json.loads(refused.value.read())["error"] == "body_too_large"
    with urllib.request.urlopen(f"{server.http}/api/openapi.json", timeout=10) as ok:
        assert ok.status == 200
