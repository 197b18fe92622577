"""The broker (Redis) killed and restarted with registrations queued, and under a running worker.

A redis-server of the module's own (appendonly; the machine's Redis is shared and left alone).
The worker's start-up sweep is held off (PRODUCT_SWEEP_GRACE_SECONDS=3600), so every product
must come from a task that went through the restarted broker.
"""

from __future__ import annotations

import os
import time

import pytest
import redis
from django.db import transaction

from tests.factories import make_lot, make_sample
from tests.support.integrity import assert_integrity
from tests.support.servers import Worker, django_database_url, use_broker, wait_until, workers_idle
from traceability.models import ConsumerProduct
from traceability.tasks import product_registration_request

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def broker(redis_server):
    """This process publishes to ``redis_server`` for the module (kombu keeps one producer pool
    per broker URL: switching to the same URL twice would find the first one closed)."""
    from gaveurs.celery import app

    saved = (app.conf.broker_url, dict(app.conf.broker_transport_options or {}))
    use_broker(redis_server.url(2), {})
    yield redis_server
    use_broker(*saved)


@pytest.fixture(scope="module")
def worker_env(broker, django_db_setup, django_db_blocker):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDDED_PG", "CELERY_"))}
    with django_db_blocker.unblock():
        env["DATABASE_URL"] = django_database_url()
    env.update(CELERY_BROKER_URL=broker.url(2), PRODUCT_SWEEP_GRACE_SECONDS="3600")
    return env


def queued(server) -> int:
    client = redis.Redis.from_url(server.url(2))
    try:
        return sum(client.llen(key) for key in client.scan_iter("exports*"))
    finally:
        client.close()


def register(samples) -> None:
    """What ingestion does: ask for each product once the sample's transaction commits."""
    with transaction.atomic():
        for sample in samples:
            product_registration_request(
                lot_id=sample.lot_id, sample_id=sample.sample_id, site_code="LL"
            )


def test_registrations_queued_before_a_broker_crash_each_make_one_product(
    broker, worker_env, tmp_path
):
    lot = make_lot()
    samples = [make_sample(lot=lot) for _ in range(6)]
    register(samples)
    assert queued(broker) == 6

    broker.kill()  # SIGKILL, no worker has taken anything yet
    broker.start()
    assert queued(broker) == 6

    worker = Worker(worker_env, tmp_path)
    worker.start()
    try:
        wait_until(
            lambda: ConsumerProduct.objects.filter(lot=lot).count() >= 6, what="six products"
        )
        workers_idle([worker])
    finally:
        worker.stop()
    assert sorted(ConsumerProduct.objects.values_list("sample_id", flat=True)) == sorted(
        s.pk for s in samples
    )
    assert queued(broker) == 0
    assert_integrity()


def test_a_running_worker_and_a_publisher_carry_on_after_the_broker_restarts(
    broker, worker_env, tmp_path
):
    lot = make_lot()
    worker = Worker(worker_env, tmp_path)
    worker.start()
    try:
        before = [make_sample(lot=lot) for _ in range(2)]
        register(before)
        wait_until(lambda: ConsumerProduct.objects.count() == 2, what="the first products")

        broker.kill()
        time.sleep(0.5)
        broker.start()
        restarted = time.monotonic()
        after = [make_sample(lot=lot) for _ in range(4)]
        register(after)  # the publisher reconnects
        wait_until(lambda: ConsumerProduct.objects.count() >= 6, what="the products after")
        recovered = time.monotonic() - restarted
        workers_idle([worker])
        assert worker.proc is not None and worker.proc.poll() is None
    finally:
        worker.stop()
    assert sorted(ConsumerProduct.objects.values_list("sample_id", flat=True)) == sorted(
        s.pk for s in before + after
    )
    assert_integrity()
    print(f"worker back to work {recovered:.2f} s after the broker restart")
