"""DATABASE_URL when set, otherwise an embedded PostgreSQL started by the project."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

from gaveurs.embedded_pg import database_url

ROOT = Path(__file__).resolve().parents[2]


def test_the_embedded_server_starts_in_a_given_folder_and_answers(tmp_path):
    url = database_url(tmp_path / "pg", cleanup_mode="delete")
    from urllib.parse import unquote, urlparse

    parsed = urlparse(url)
    with psycopg.connect(
        host=unquote(parsed.hostname or ""), user="postgres", dbname="postgres"
    ) as c:
        assert c.execute("select 1").fetchone() == (1,)
        assert c.info.server_version >= 160000


def test_settings_use_database_url_when_it_is_set():
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='gaveurs.settings'; "
        "from django.conf import settings; d = settings.DATABASES['default']; "
        "print(d['HOST'], d['PORT'], d['NAME'])"
    )
    env = {**os.environ, "DATABASE_URL": "postgres://someone@db.example:6543/trace"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["db.example", "6543", "trace"]


def test_each_session_gets_the_qr_key_but_the_database_never_stores_it(django_db_blocker):
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('gaveurs.qr_key', true)")
        (value,) = cursor.fetchone()
    from django.conf import settings

    assert bytes.fromhex(value).decode() == settings.QR_SIGNING_KEY
