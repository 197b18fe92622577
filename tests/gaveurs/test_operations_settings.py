"""Operations settings in production: JSON logs, /metrics closed to every address by default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "k3J9-x!q2Lr8#vT0zWm5@pY7sN1&bC4dF6gH8jK0lQ2wE4rT6yU8iO0p",
    "QR_SIGNING_KEY": "a-long-random-qr-signing-key-from-the-environment",
    "LEDGER_SIGNING_KEY": "11" * 32,
    "ALLOWED_HOSTS": "trace.example.com",
    "DATABASE_URL": "postgres://trace@db.invalid:5432/trace",
}
SHOW = (
    "import json; from django.conf import settings; print(json.dumps([settings.LOG_FORMAT,"
    " settings.METRICS_ALLOWED_IPS, settings.LOGGING['handlers']['console']['formatter']]))"
)


def settings_under(env: dict) -> list:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in PRODUCTION_ENV and not k.startswith(("METRICS_", "LOG_"))
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SHOW],
        env={**base, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_production_logs_json_and_opens_metrics_to_no_address_by_default():
    assert settings_under(PRODUCTION_ENV) == ["json", [], "json"]


def test_production_metrics_addresses_come_from_the_environment():
    env = {**PRODUCTION_ENV, "METRICS_ALLOWED_IPS": "10.0.0.0/8, 192.0.2.7", "LOG_FORMAT": "plain"}
    assert settings_under(env) == ["plain", ["10.0.0.0/8", "192.0.2.7"], "plain"]
