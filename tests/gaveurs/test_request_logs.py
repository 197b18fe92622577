"""JSON logs in production format, each line naming the request or websocket frame behind it."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from django.db import connection
from websockets.exceptions import InvalidStatus

from gaveurs.embedded_pg import settings_database_url
from tests.support.servers import DaphneServer, wait_for_sessions_to_close, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def serve(tmp_path):
    started: list[DaphneServer] = []

    def start(**env: str) -> DaphneServer:
        env = {
            "DATABASE_URL": settings_database_url(connection.settings_dict),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            **env,
        }
        server = DaphneServer(env, log_dir=tmp_path).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    wait_for_sessions_to_close()


def json_lines(server: DaphneServer) -> list[dict]:
    lines = []
    for line in server.log_text().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def lines_of(server: DaphneServer, request_id: str, count: int) -> list[dict]:
    return wait_until(
        lambda: (
            (found := [x for x in json_lines(server) if x.get("request_id") == request_id])
            and len(found) >= count
            and found
        ),
        timeout=15,
        what=f"{count} log lines of request {request_id}",
    )


def test_two_lines_of_one_request_carry_the_id_returned_in_its_header(serve):
    server = serve()
    response = httpx.get(f"{server.http}/no-such-page/", timeout=30)
    assert response.status_code == 404
    request_id = response.headers["X-Request-ID"]
    assert len(request_id) == 32

    lines = lines_of(server, request_id, 2)
    messages = {x["name"]: x for x in lines}
    assert messages["django.request"]["level"] == "WARNING"
    assert "Not Found" in messages["django.request"]["message"]
    access = messages["gaveurs.request"]
    assert (access["method"], access["path"], access["status"]) == ("GET", "/no-such-page/", 404)
    assert {"time", "level", "name", "message", "request_id"} <= set(access)


def test_the_proxy_id_is_kept_only_when_the_header_is_trusted(serve):
    untrusted = serve()
    response = httpx.get(
        f"{untrusted.http}/health/live", headers={"X-Request-ID": "edge-0001"}, timeout=30
    )
    assert response.headers["X-Request-ID"] != "edge-0001"

    trusted = serve(REQUEST_ID_TRUST_HEADER="true")
    response = httpx.get(
        f"{trusted.http}/health/live", headers={"X-Request-ID": "edge-0002"}, timeout=30
    )
    assert response.headers["X-Request-ID"] == "edge-0002"
    assert lines_of(trusted, "edge-0002", 1)[0]["path"] == "/health/live"
    # Not an id: control characters and spaces would forge log lines.
    response = httpx.get(
        f"{trusted.http}/health/live", headers={"X-Request-ID": "a b\tc"}, timeout=30
    )
    assert response.headers["X-Request-ID"] != "a b\tc"


def test_each_websocket_frame_logs_under_an_id_of_its_own(serve):
    server = serve(SQAL_ALLOW_UNREGISTERED_DEVICES="false")

    async def refused_twice() -> None:
        from websockets.asyncio.client import connect

        for _ in range(2):
            with pytest.raises(InvalidStatus):
                await connect(server.ws, additional_headers={"Authorization": "Bearer not-a-token"})

    asyncio.run(asyncio.wait_for(refused_twice(), 60))

    def refusals() -> list[dict]:
        found = [x for x in json_lines(server) if "refused at handshake" in x["message"]]
        return found if len(found) == 2 else []

    first, second = wait_until(refusals, timeout=15, what="two handshake refusals logged")
    assert first["request_id"] not in ("-", None)
    assert second["request_id"] not in ("-", None)
    assert first["request_id"] != second["request_id"]
