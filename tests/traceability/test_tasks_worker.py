"""The registration pipeline end to end with a real Celery worker process and a real broker.

Each broker (Redis on 127.0.0.1:6379, database 14 with a per-run key prefix, and the embedded
SQLAlchemy transport on the test database) gets one worker subprocess for the module; the crash
test stops it, runs a worker that pauses inside the task, SIGKILLs it, and starts a clean one.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from django.db import connection, transaction

from gaveurs.celery import app as celery_app
from gaveurs.settings import _embedded_broker_url
from tests.factories import make_lot, make_sample, make_staff
from tests.support.servers import (
    Worker,
    django_database_url,
    use_broker,
    wait_until,
    workers_idle,
)
from traceability import tasks
from traceability.models import ConsumerProduct
from traceability.tasks import product_registration_request

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/14"
TIMEOUT = 30.0


@pytest.fixture(scope="module", params=["redis", "embedded"])
def worker(request, django_db_setup, django_db_blocker, tmp_path_factory):
    saved = (celery_app.conf.broker_url, dict(celery_app.conf.broker_transport_options or {}))
    with django_db_blocker.unblock():
        db_url = django_database_url()
        if request.param == "redis":
            prefix = f"gt-test-{uuid.uuid4().hex[:12]}:"
            broker_url, options = REDIS_URL, {"global_keyprefix": prefix}
            env_broker = {"CELERY_BROKER_URL": REDIS_URL, "CELERY_REDIS_KEY_PREFIX": prefix}
        else:
            broker_url = _embedded_broker_url(connection.settings_dict)
            options = {"polling_interval": 0.05}
            env_broker = {"CELERY_BROKER_URL": broker_url, "CELERY_SQLA_POLL_INTERVAL": "0.05"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDDED_PG", "CELERY_"))}
    env.update(env_broker, DATABASE_URL=db_url, PRODUCT_SWEEP_GRACE_SECONDS="0")
    use_broker(broker_url, options)
    w = Worker(env, tmp_path_factory.mktemp(f"worker-{request.param}"))
    w.start()
    yield w
    w.stop()
    use_broker(*saved)
    if request.param == "embedded":
        # Let the test database be dropped: close kombu's SQLAlchemy connections to it.
        from kombu.transport.sqlalchemy import Channel

        for engine, _ in Channel._engines.values():
            engine.dispose()
        Channel._engines.clear()


def product_count(**filters) -> int:
    return ConsumerProduct.objects.filter(**filters).count()


def task_state(task_id: str):
    from django_celery_results.models import TaskResult

    return TaskResult.objects.filter(task_id=task_id).values_list("status", flat=True).first()


def test_a_compliant_sample_committed_with_a_request_becomes_a_product(worker):
    lot = make_lot()
    with transaction.atomic():
        sample = make_sample(lot=lot, sample_id="ESP32_LL_01_1234")
        product_registration_request(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")

    product = wait_until(
        lambda: ConsumerProduct.objects.filter(sample=sample).first(), what="the product"
    )
    assert product.lot_id == lot.id and product.fusion_grade == sample.fusion_grade


def test_staff_follow_a_registration_through_the_task_api(worker, client, django_user_model):
    client.force_login(
        make_staff("q", "traceability.add_consumerproduct", "traceability.view_consumerproduct")
    )
    lot = make_lot()
    sample = make_sample(lot=lot)

    submitted = client.post(
        f"/api/tasks/qr-code/generate?lot_id={lot.id}&sample_id={sample.sample_id}&site_code=LL"
    ).json()

    def finished():
        body = client.get(f"/api/tasks/status/{submitted['task_id']}").json()
        return body if body["status"] in ("SUCCESS", "FAILURE") else None

    body = wait_until(finished, what="the task to finish")
    product = ConsumerProduct.objects.get(sample=sample)
    assert body["status"] == "SUCCESS"
    assert body["result"] == {
        "status": "success",
        "lot_id": lot.id,
        "sample_id": sample.sample_id,
        "product_id": product.product_id,
        "qr_code": product.qr_code,
    }


def test_rejected_and_non_compliant_samples_yield_no_product(worker):
    lot = make_lot()
    rejected = make_sample(lot=lot, fusion_grade="REJECT", is_compliant=False, fusion_score=0.2)
    non_compliant = make_sample(lot=lot, fusion_grade="B", is_compliant=False, fusion_score=0.6)

    ids = [
        tasks.generate_qr_code_async.delay(lot_id=lot.id, sample_id=s.sample_id, site_code="LL").id
        for s in (rejected, non_compliant)
    ]

    for task_id in ids:
        assert wait_until(lambda t=task_id: task_state(t) == "FAILURE", what="refusal")
    from django_celery_results.models import TaskResult

    assert all(
        "sample_not_eligible" in r.result for r in TaskResult.objects.filter(task_id__in=ids)
    )
    assert product_count(lot=lot) == 0


def test_the_same_task_three_times_yields_one_product(worker):
    lot = make_lot()
    sample = make_sample(lot=lot)

    results = [
        tasks.generate_qr_code_async.delay(
            lot_id=lot.id, sample_id=sample.sample_id, site_code="LL"
        )
        for _ in range(3)
    ]

    for r in results:
        wait_until(lambda r=r: task_state(r.id) == "SUCCESS", what="all three tasks")
    product_ids = {r.get(timeout=5)["product_id"] for r in results}
    assert product_ids == {ConsumerProduct.objects.get(sample=sample).product_id}
    assert product_count() == 1


def test_a_worker_killed_mid_task_registers_the_product_exactly_once_after_restart(
    worker, tmp_path
):
    lot = make_lot()
    worker.stop()
    marker = tmp_path / "paused"
    worker.start(GAVEURS_TEST_PAUSE_BEFORE_COMMIT="60", GAVEURS_TEST_PAUSE_MARKER=str(marker))
    with transaction.atomic():
        sample = make_sample(lot=lot)
        product_registration_request(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")

    wait_until(marker.exists, what="the task to reach its pause before commit")
    worker.kill()
    assert product_count() == 0  # the uncommitted product died with the worker's transaction

    worker.start()
    wait_until(
        lambda: product_count(sample=sample) == 1, timeout=TIMEOUT, what="the product after restart"
    )
    workers_idle([worker])
    assert product_count() == 1
