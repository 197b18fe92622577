"""/health/live and /health/ready, on real Daphne servers whose dependencies are up or down."""

from __future__ import annotations

import httpx
import pytest
from django.db import connection

from gaveurs.embedded_pg import settings_database_url
from tests.support.servers import DaphneServer, free_port, wait_for_sessions_to_close

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def serve(tmp_path):
    started: list[DaphneServer] = []

    def start(**env: str) -> DaphneServer:
        env.setdefault("DATABASE_URL", settings_database_url(connection.settings_dict))
        server = DaphneServer({"LOG_LEVEL": "WARNING", **env}, log_dir=tmp_path).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    wait_for_sessions_to_close()


def test_live_answers_200_without_a_database_query(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.integration
def test_ready_answers_200_with_the_status_of_each_component(serve):
    server = serve()
    response = httpx.get(f"{server.http}/health/ready", timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["components"]) == {"database", "broker", "channel_layer", "cache"}
    assert {c["status"] for c in body["components"].values()} == {"ok"}


@pytest.mark.integration
def test_ready_answers_503_naming_the_broker_when_it_is_unreachable(serve):
    server = serve(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    response = httpx.get(f"{server.http}/health/ready", timeout=30)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["failing"] == ["broker"]
    assert body["components"]["broker"]["status"] == "fail"
    assert "broker unreachable" in body["components"]["broker"]["error"]
    assert body["components"]["database"]["status"] == "ok"
    assert httpx.get(f"{server.http}/health/live", timeout=30).status_code == 200


@pytest.mark.integration
def test_ready_answers_503_naming_the_database_when_it_is_down_and_live_still_200(serve):
    server = serve(DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/gaveurs")
    response = httpx.get(f"{server.http}/health/ready", timeout=30)
    assert response.status_code == 503
    body = response.json()
    assert "database" in body["failing"]
    assert body["components"]["database"]["status"] == "fail"
    assert body["components"]["channel_layer"]["status"] == "ok"
    assert body["components"]["cache"]["status"] == "ok"
    live = httpx.get(f"{server.http}/health/live", timeout=30)
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}
