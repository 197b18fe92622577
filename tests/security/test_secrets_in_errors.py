"""The QR signing key never shows in an error page or a log line, even with DEBUG on."""

from __future__ import annotations

import logging

import pytest
from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from django.urls import path

from gaveurs.db_session import qr_key_hex
from tests.factories import make_lot, make_sample
from traceability.services import product_register


def _fails_in_the_database(request) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 / 0")
    return HttpResponse("unreachable")


urlpatterns = [path("boom/", _fails_in_the_database)]


def _secrets() -> list[str]:
    return [qr_key_hex(), settings.QR_SIGNING_KEY]


def test_the_key_is_not_in_the_database_settings_at_all():
    assert "qr_key" not in repr(settings.DATABASES)
    assert not any(s in repr(settings.DATABASES) for s in _secrets())


@pytest.mark.urls(__name__)
def test_the_debug_500_page_does_not_show_the_qr_key(client, db, settings):
    settings.DEBUG = True
    client.raise_request_exception = False
    response = client.get("/boom/", HTTP_ACCEPT="text/html")
    assert response.status_code == 500
    page = response.content.decode()
    assert "DATABASES" in page  # the technical page with its settings is what we inspect
    assert not any(s in page for s in _secrets())
    plain = client.get("/boom/", HTTP_ACCEPT="text/plain").content.decode()
    assert "DATABASES" in plain
    assert not any(s in plain for s in _secrets())


def test_new_sessions_get_the_key_without_it_being_logged(transactional_db, settings, caplog):
    settings.DEBUG = True
    connection.close()
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, "django.db.backends"):
        lot = make_lot()
        sample = make_sample(lot=lot)
        registered = product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
    assert registered.qr_code.startswith("SQAL_")  # signed in SQL: the session had the key
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "register_consumer_product" in logged  # the query log was on
    assert not any(s in logged for s in _secrets())
    assert not any(s in str(q) for q in connection.queries for s in _secrets())
