"""A scan in the steady state is one database round trip, and every scan is counted once."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection

from tests.factories import make_product
from tests.support.servers import django_database_url
from traceability.models import ProductScanStats, ScanEvent

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def counts(product):
    stats = ProductScanStats.objects.filter(product=product).first()
    return ScanEvent.objects.filter(product=product).count(), stats.scan_count if stats else 0


@pytest.mark.django_db
def test_a_cached_scan_is_exactly_one_query_and_each_request_is_counted_once(
    client, django_assert_num_queries
):
    product = make_product()
    client.get(f"/p/{product.qr_code}")  # renders and caches the page
    assert counts(product) == (1, 1)

    for n in range(2, 5):
        with django_assert_num_queries(1) as captured:
            response = client.get(f"/p/{product.qr_code}")
        assert response.status_code == 200
        assert product.product_id in response.content.decode()
        assert counts(product) == (n, n)
    assert "EXECUTE gaveurs_scan_record" in captured.captured_queries[0]["sql"]


@pytest.mark.django_db(transaction=True)
def test_the_first_scan_on_a_new_connection_prepares_the_statement_in_the_same_round_trip(
    client, django_assert_num_queries
):
    product = make_product()
    client.get(f"/p/{product.qr_code}")
    connection.close()  # a new session: the statement is not prepared there

    with django_assert_num_queries(1) as captured:
        assert client.get(f"/p/{product.qr_code}").status_code == 200
    assert captured.captured_queries[0]["sql"].startswith("PREPARE gaveurs_scan_record")
    assert counts(product) == (2, 2)


@pytest.mark.django_db(transaction=True)
def test_a_statement_deallocated_behind_our_back_is_prepared_again_without_a_failed_scan(client):
    product = make_product()
    client.get(f"/p/{product.qr_code}")
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # what a pooler's DISCARD ALL does

    assert client.get(f"/p/{product.qr_code}").status_code == 200
    assert client.get(f"/p/{product.qr_code}").status_code == 200
    assert counts(product) == (3, 3)


def wsgi_get(handler: WSGIHandler, path: str) -> int:
    """One request through the real WSGI handler (request started/finished signals included)."""
    statuses = []
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": "localhost",
        "REMOTE_ADDR": "192.0.2.1",
        "wsgi.input": io.BytesIO(),
        "wsgi.url_scheme": "http",
    }
    body = handler(environ, lambda status, headers, exc_info=None: statuses.append(status))
    b"".join(body)
    body.close()
    return int(statuses[0].split()[0])


@pytest.mark.django_db(transaction=True)
def test_without_health_checks_a_dropped_connection_fails_one_scan_and_the_next_reconnects(
    caplog,
):
    """The trade-off of DB_CONN_HEALTH_CHECKS=false (README, consumer pages)."""
    product = make_product()
    handler = WSGIHandler()
    connection.close()
    saved = connection.settings_dict["CONN_HEALTH_CHECKS"], connection.settings_dict["CONN_MAX_AGE"]
    connection.settings_dict["CONN_HEALTH_CHECKS"] = False
    connection.settings_dict["CONN_MAX_AGE"] = 60
    try:
        assert wsgi_get(handler, f"/p/{product.qr_code}") == 200
        pid = connection.connection.info.backend_pid
        with psycopg.connect(django_database_url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])

        statuses = [wsgi_get(handler, f"/p/{product.qr_code}") for _ in range(3)]
    finally:
        connection.close()
        connection.settings_dict["CONN_HEALTH_CHECKS"], connection.settings_dict["CONN_MAX_AGE"] = (
            saved
        )

    assert statuses == [500, 200, 200]
    assert counts(product) == (3, 3)


def settings_value(expression: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "DB_CONN_HEALTH_CHECKS"}
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'gaveurs.settings'; "
        f"from django.conf import settings; print({expression})"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**environment, "DATABASE_URL": "postgres://u@localhost/x", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return (result.stdout + result.stderr).strip()


def test_health_checks_are_on_unless_db_conn_health_checks_turns_them_off():
    check = "settings.DATABASES['default']['CONN_HEALTH_CHECKS']"
    assert settings_value(check) == "True"
    assert settings_value(check, DB_CONN_HEALTH_CHECKS="false") == "False"
    assert "DB_CONN_HEALTH_CHECKS must be a boolean" in settings_value(
        check, DB_CONN_HEALTH_CHECKS="sometimes"
    )
