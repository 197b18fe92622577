"""Staff attach the samples a station sent without a lot to a lot, from the admin; the eligible
ones become products through the normal registration path (a real Celery worker)."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from gaveurs.celery import app as celery_app
from gaveurs.settings import _embedded_broker_url
from sensors.models import Device, QualityAlert, SensorSample
from tests.factories import make_device, make_lot, make_sample, make_site, make_staff
from tests.support.servers import (
    Worker,
    django_database_url,
    use_broker,
    wait_until,
    workers_idle,
)
from tests.support.stations import ingest, message
from traceability.models import ConsumerProduct

STAFF_PERMS = ("sensors.change_device", "sensors.view_device", "sensors.view_qualityalert")


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real worker on the embedded broker (the test database)."""
    saved = (celery_app.conf.broker_url, dict(celery_app.conf.broker_transport_options or {}))
    with django_db_blocker.unblock():
        db_url = django_database_url()
        broker_url = _embedded_broker_url(connection.settings_dict)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDDED_PG", "CELERY_"))}
    env.update(
        CELERY_BROKER_URL=broker_url,
        CELERY_SQLA_POLL_INTERVAL="0.05",
        DATABASE_URL=db_url,
        PRODUCT_SWEEP_GRACE_SECONDS="0",
    )
    use_broker(broker_url, {"polling_interval": 0.05})
    w = Worker(env, tmp_path_factory.mktemp("worker-attach"))
    w.start()
    yield w
    w.stop()
    use_broker(*saved)
    from kombu.transport.sqlalchemy import Channel

    for engine, _ in Channel._engines.values():
        engine.dispose()
    Channel._engines.clear()


def staff() -> Client:
    client = Client()
    client.force_login(make_staff("qualite", *STAFF_PERMS))
    return client


@pytest.mark.django_db(transaction=True)
def test_attaching_a_stations_samples_to_a_lot_makes_one_product_per_eligible_sample(worker):
    device = make_device()
    for n in range(3):
        ingest(message(f"W{n}"))  # compliant, grade A, no lot: alert no_lot
    ingest(message("W-REJ", fusion={"final_grade": "REJECT", "final_score": 0.2}))
    measured = SensorSample.objects.get(sample_id="W0").time  # the fixture's timestamp
    early = make_sample(device=device, time=measured - timedelta(days=10))  # out of range
    lot = make_lot()
    alert = QualityAlert.objects.get(rule="no_lot")
    assert alert.occurrences == 4
    client = staff()

    listing = client.get("/admin/sensors/device/", {"without_lot": "yes"}).content.decode()
    assert "ESP32_LL_01" in listing and f"/admin/sensors/device/{device.pk}/attach-lot/" in listing
    alerts = client.get("/admin/sensors/qualityalert/").content.decode()
    assert f"/admin/sensors/device/{device.pk}/attach-lot/" in alerts
    page = client.get(f"/admin/sensors/device/{device.pk}/attach-lot/")
    assert page.status_code == 200  # in French, the default language
    assert "La station ESP32_LL_01 a 5 échantillons sans lot." in page.content.decode()

    since = timezone.localtime(measured - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    response = client.post(
        f"/admin/sensors/device/{device.pk}/attach-lot/",
        {"lot": lot.pk, "since": since, "until": "", "assign": "on"},
    )
    assert response.status_code == 302, response.content.decode()[-2000:]

    wait_until(lambda: ConsumerProduct.objects.filter(lot=lot).count() >= 3, what="3 products")
    workers_idle([worker])
    products = ConsumerProduct.objects.filter(lot=lot)
    assert sorted(p.sample.sample_id for p in products) == ["W0", "W1", "W2"]
    assert SensorSample.objects.filter(lot=lot).count() == 4  # the REJECT one too, no product
    early.refresh_from_db()
    assert early.lot is None  # outside the range: left as it was
    device.refresh_from_db()
    alert.refresh_from_db()
    assert device.assigned_lot == lot and alert.status == "resolved"

    # Attaching again finds nothing left to attach, and makes no second product.
    client.post(
        f"/admin/sensors/device/{device.pk}/attach-lot/",
        {"lot": lot.pk, "since": since, "until": "", "assign": "on"},
    )
    workers_idle([worker])
    assert ConsumerProduct.objects.filter(lot=lot).count() == 3


@pytest.mark.django_db
def test_a_lot_of_another_site_is_refused_unless_the_station_may_use_any_site():
    device = make_device()
    ingest(message("X1"))
    other = make_lot(site=make_site(code="MG"))
    client = staff()

    refused = client.post(
        f"/admin/sensors/device/{device.pk}/attach-lot/", {"lot": other.pk, "assign": "on"}
    )
    assert refused.status_code == 200 and "lot_site" in refused.content.decode()
    assert SensorSample.objects.get().lot is None
    assert Device.objects.get(pk=device.pk).assigned_lot is None
