"""Workers on RabbitMQ instead of Redis: CELERY_BROKER_URL=amqp://... is all it takes.

The machine's RabbitMQ (127.0.0.1:5672, guest) is shared: the test runs in a virtual host of its
own, created and deleted with rabbitmqctl.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import transaction

from tests.factories import make_lot, make_sample
from tests.support.servers import Worker, django_database_url, use_broker, wait_until, workers_idle
from traceability.models import ConsumerProduct
from traceability.tasks import product_registration_request

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def rabbitmq_url():
    vhost = f"gt-test-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="module")
def rabbit_workers(rabbitmq_url, django_db_setup, django_db_blocker, tmp_path_factory):
    from gaveurs.celery import app

    with django_db_blocker.unblock():
        database_url = django_database_url()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDDED_PG", "CELERY_"))}
    env.update(DATABASE_URL=database_url, CELERY_BROKER_URL=rabbitmq_url)
    saved = (app.conf.broker_url, dict(app.conf.broker_transport_options or {}))
    use_broker(rabbitmq_url, {})
    workers = [Worker(env, tmp_path_factory.mktemp(f"amqp-worker{n}")) for n in (1, 2)]
    try:
        with ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(w.start) for w in workers]:
                future.result()
        yield workers
    finally:
        # Idle by now; a warm shutdown on AMQP takes 10 s and is not what this test is about.
        for w in workers:
            w.kill()
        use_broker(*saved)


def test_two_workers_on_rabbitmq_register_each_product_once(rabbit_workers):
    lot = make_lot()
    samples = [make_sample(lot=lot) for _ in range(10)]
    for sample in samples:  # one commit each, as ingestion batches would
        with transaction.atomic():
            product_registration_request(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")

    wait_until(lambda: ConsumerProduct.objects.count() >= 10, what="ten products")
    workers_idle(rabbit_workers)
    assert sorted(ConsumerProduct.objects.values_list("sample_id", flat=True)) == sorted(
        s.pk for s in samples
    )
    done_by = [w.log.read_text().count("generate_qr_code_async[") for w in rabbit_workers]
    assert all(n > 0 for n in done_by), done_by
