"""DJANGO_ENV=production: secrets only from the environment, `check --deploy` clean."""

from __future__ import annotations

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
    # Settings are only loaded: no database is reached by these checks.
    "DATABASE_URL": "postgres://trace@db.invalid:5432/trace",
}


def manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV and k != "DEBUG"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env={**base, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_in_production():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set in production" in result.stderr


def test_production_refuses_to_start_without_the_qr_signing_key():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "QR_SIGNING_KEY"}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "QR_SIGNING_KEY must be set in production" in result.stderr


def test_production_refuses_debug():
    result = manage("check", env={**PRODUCTION_ENV, "DEBUG": "true"})
    assert result.returncode != 0
    assert "DEBUG must be off in production" in result.stderr


def test_a_malformed_boolean_setting_is_named():
    result = manage("check", env={"DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr
