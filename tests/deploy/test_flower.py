"""Flower (scripts/flower.sh): every page, /metrics and /healthcheck included, needs its login."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port, stop_process, wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@pytest.fixture
def flower(redis_server, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "CELERY_BROKER_URL": redis_server.url(5),
        "FLOWER_USER": "ops",
        "FLOWER_PASSWORD": "flower-pass-123",
        "FLOWER_PORT": str(port),
    }
    log = (tmp_path / "flower.log").open("w")
    proc = subprocess.Popen(
        ["bash", "scripts/flower.sh"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(base + "/healthcheck", timeout=2).status_code in (200, 401)
        except httpx.HTTPError:
            assert proc.poll() is None, (tmp_path / "flower.log").read_text()
            return False

    wait_until(up, timeout=60, what="flower")
    yield base
    stop_process(proc)


def test_flower_metrics_and_healthcheck_need_the_basic_auth_login(flower):
    good = "Basic " + base64.b64encode(b"ops:flower-pass-123").decode()
    bad = "Basic " + base64.b64encode(b"ops:wrong").decode()
    for path in ["/metrics", "/healthcheck", "/workers", "/api/workers"]:
        assert httpx.get(flower + path, timeout=10).status_code == 401, path
        assert (
            httpx.get(flower + path, headers={"Authorization": bad}, timeout=10).status_code == 401
        )
    assert (
        httpx.get(flower + "/healthcheck", headers={"Authorization": good}, timeout=10).text == "OK"
    )
    metrics = httpx.get(flower + "/metrics", headers={"Authorization": good}, timeout=10)
    assert metrics.status_code == 200 and "flower_" in metrics.text
