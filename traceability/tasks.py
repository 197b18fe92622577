"""Celery tasks of the traceability app (queue "exports"). Thin: take ids, call a service.

``generate_qr_code_async`` registers the consumer product of one compliant sample through
``services.product_register`` (the PL/pgSQL ``register_consumer_product``);
``generate_qr_codes_async`` registers those of several (an ingestion batch's: one broker message
for the batch, since publishing a task per sample cost the stations' server more CPU than storing
a 5 KB sample, ``bench/ingest.py``), each in its own transaction, as the single task would.
Delivery guarantees, for both:

1. ``acks_late`` and ``reject_on_worker_lost``: the broker message is acknowledged only once the
   task has returned, so a task a worker dies in is delivered again.
2. Database errors a retry can cure (``OperationalError``, ``InterfaceError``: server restarting,
   connection lost) are retried with exponential backoff and jitter.
3. Refusals (unknown lot or sample, sample not compliant or graded REJECT...) are final: the task
   fails at once with ``ProductRegistrationRefused(code, detail, status)``, stored as its result
   (the batch task registers the others first, then fails naming every refused sample).
4. ``register_consumer_product`` locks the sample and returns the existing product when there is
   one, so duplicates, retries and redeliveries never make a second product.
5. kombu's SQLAlchemy transport (the embedded broker) never redelivers a message taken by a worker
   that was killed (Redis does, after its visibility timeout). So each worker, when it starts,
   enqueues ``register_pending_products``: a registration for every eligible sample that has no
   product yet. With 4., that makes "exactly one product per compliant sample" hold for both.

The API reports a task's state from django-celery-results; it writes a PENDING row when it submits
a task, so a task that is queued but not started is known too (unknown ids answer 404).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from celery import shared_task, states
from celery.signals import task_postrun, task_prerun, worker_ready
from django.conf import settings
from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    transaction,
)

from sensors.signals import ProductRequest
from traceability import services
from traceability.signals import product_registered

logger = logging.getLogger(__name__)

GENERATE_TASK = "traceability.tasks.generate_qr_code_async"
GENERATE_MANY_TASK = "traceability.tasks.generate_qr_codes_async"
# At most this many registrations per batch task: a retry redoes them all (idempotent, but
# not free), and attaching a station's history to a lot may ask for thousands at once.
REGISTRATIONS_PER_TASK = 100
SWEEP_TASK = "traceability.tasks.register_pending_products"

# Test-only hook (ignored in production): after the product row is written and before the
# transaction commits, touch PAUSE_MARKER and sleep PAUSE seconds, so a test can kill the worker
# in the middle of a task.
PAUSE_ENV = "GAVEURS_TEST_PAUSE_BEFORE_COMMIT"
PAUSE_MARKER_ENV = "GAVEURS_TEST_PAUSE_MARKER"


class ProductRegistrationRefused(Exception):
    """A registration the database refused; final, never retried.

    The arguments stay plain strings and an int so Celery's JSON result serialisation can rebuild
    the exception in the process that reads the result.
    """

    def __init__(self, code: str, detail: str, status: int = 422) -> None:
        super().__init__(code, detail, status)
        self.code = code
        self.detail = detail
        self.status = status

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


def _pause_before_commit() -> None:
    seconds = os.environ.get(PAUSE_ENV)
    if not seconds or settings.PRODUCTION:
        return
    marker = os.environ.get(PAUSE_MARKER_ENV)
    if marker:
        Path(marker).write_text(str(os.getpid()))
    time.sleep(float(seconds))


# Both registration tasks: retried on a lost database, refusals recorded as failures.
REGISTRATION_TASK_OPTIONS: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "track_started": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 1,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 10,
    "throws": (ProductRegistrationRefused,),
}


@shared_task(bind=True, name=GENERATE_TASK, **REGISTRATION_TASK_OPTIONS)
def generate_qr_code_async(
    self: Any, lot_id: int, sample_id: str, site_code: str | None = None
) -> dict[str, Any]:
    return _register(lot_id=lot_id, sample_id=sample_id, site_code=site_code)


@shared_task(bind=True, name=GENERATE_MANY_TASK, **REGISTRATION_TASK_OPTIONS)
def generate_qr_codes_async(self: Any, requests: list[dict[str, Any]]) -> dict[str, Any]:
    """``generate_qr_code_async`` for each of ``requests`` (its keyword arguments), in order,
    each in its own transaction. A database error a retry can cure retries the whole task; the
    registrations already made are found again, not made twice. Any other failure does not stop
    the others: once they are registered the task fails, with the first unexpected error, else
    with every refused sample named."""
    products, refused, failed, sealed = [], [], [], []
    for request in requests:
        try:
            products.append(_register(**request, sealed=sealed))
        except (OperationalError, InterfaceError):
            raise
        except ProductRegistrationRefused as exc:
            refused.append((request["sample_id"], exc))
        except Exception as exc:
            logger.exception("product registration failed: sample=%s", request["sample_id"])
            failed.append(exc)
    # The units' pages are rendered once every registration of the batch is committed, so
    # that none waits for the renders of the ones before it.
    for qr_code in sealed:
        product_registered.send(sender=GENERATE_MANY_TASK, qr_code=qr_code)
    if failed:
        raise failed[0]
    if refused:
        first = refused[0][1]
        raise ProductRegistrationRefused(
            first.code,
            f"{len(refused)} of {len(requests)} registrations refused: "
            + "; ".join(f"{sample_id}: {exc}" for sample_id, exc in refused),
            first.status,
        )
    return {"status": "success", "products": products}


def _register(
    *, lot_id: int, sample_id: str, site_code: str | None = None, sealed: list[str] | None = None
) -> dict[str, Any]:
    """One registration in its own transaction (the body of both tasks). A product it appended
    to the log is announced (``product_registered``) once committed, or added to ``sealed`` for
    the caller to announce."""
    try:
        with transaction.atomic():
            product = services.product_register(
                lot_id=lot_id, sample_id=sample_id, site_code=site_code
            )
            _pause_before_commit()
    except services.ProductRegistrationError as exc:
        logger.warning(
            "product registration refused: lot=%s sample=%s: %s %s",
            lot_id,
            sample_id,
            exc.code,
            exc.detail,
        )
        raise ProductRegistrationRefused(exc.code, exc.detail, exc.status) from None
    if product.newly_sealed:
        # Committed: the unit's consumer page can be rendered off the request path.
        if sealed is None:
            product_registered.send(sender=GENERATE_TASK, qr_code=product.qr_code)
        else:
            sealed.append(product.qr_code)
    return {
        "status": "success",
        "lot_id": lot_id,
        "sample_id": sample_id,
        "product_id": product.product_id,
        "qr_code": product.qr_code,
    }


def product_registration_request(*, lot_id: int, sample_id: str, site_code: str | None) -> None:
    """Ask for a product to be registered once the current transaction commits (see
    ``products_registration_request``)."""
    products_registration_request([ProductRequest(lot_id, sample_id, site_code)])


def products_registration_request(requests: Sequence[ProductRequest]) -> None:
    """Ask for products to be registered once the current transaction commits, in
    ``settings.PRODUCT_TASKS_PER_BATCH`` tasks (1 by default; fewer for fewer samples, more past
    ``REGISTRATIONS_PER_TASK`` a task) of ``generate_qr_codes_async``; a lone sample is
    ``generate_qr_code_async``. A task per sample cost the stations' server a publish per
    sample; splitting a batch between the worker's processes did not make its products
    appear sooner on 2 cores (``bench/pipeline.py --compare-tasks-per-batch``).

    Called (through ``sensors.signals.products_wanted``) by ingestion for a batch's eligible
    samples. The tasks run on queue "exports"; they are idempotent, so a repeated request never
    yields a second product.
    """
    kwargs = [
        {"lot_id": r.lot_id, "sample_id": r.sample_id, "site_code": r.site_code} for r in requests
    ]
    if len(kwargs) == 1:
        transaction.on_commit(lambda: generate_qr_code_async.delay(**kwargs[0]))
        return
    for chunk in registration_chunks(kwargs, settings.PRODUCT_TASKS_PER_BATCH):
        transaction.on_commit(lambda chunk=chunk: generate_qr_codes_async.delay(requests=chunk))


def registration_chunks(items: Sequence[Any], tasks: int) -> list[Sequence[Any]]:
    """``items`` split into ``tasks`` chunks of near equal size (fewer when there are fewer
    items; more when a chunk would exceed ``REGISTRATIONS_PER_TASK``), in order."""
    if not items:
        return []
    count = max(min(max(1, tasks), len(items)), -(-len(items) // REGISTRATIONS_PER_TASK))
    size, extra = divmod(len(items), count)
    chunks, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        chunks.append(items[start:end])
        start = end
    return chunks


def products_wanted_receiver(
    sender: Any, *, requests: Sequence[ProductRequest], **kwargs: Any
) -> None:
    """Connected to ``sensors.signals.products_wanted`` by ``TraceabilityConfig.ready``."""
    products_registration_request(requests)


def product_registration_submit(*, lot_id: int, sample_id: str, site_code: str | None) -> str:
    """Enqueue a registration once the current transaction commits; returns the task id.

    Writes the task's PENDING result row first, so its state can be asked for (and is known)
    before a worker takes it. Ingestion enqueues with ``product_registration_request``
    instead: nobody follows those task ids, and the acks of a batch should not wait for it.
    """
    from django_celery_results.models import TaskResult

    task_id = str(uuid.uuid4())
    kwargs = {"lot_id": lot_id, "sample_id": sample_id, "site_code": site_code}
    TaskResult.objects.create(
        task_id=task_id,
        task_name=GENERATE_TASK,
        status=states.PENDING,
        task_kwargs=json.dumps(kwargs),
        content_type="application/json",
        content_encoding="utf-8",
    )
    transaction.on_commit(
        lambda: generate_qr_code_async.apply_async(kwargs=kwargs, task_id=task_id)
    )
    return task_id


@shared_task(name=SWEEP_TASK, acks_late=True)
def register_pending_products(
    grace_seconds: int | None = None, max_age_days: int | None = None
) -> dict[str, int]:
    """Enqueue a registration for each eligible sample that still has no product."""
    pending = services.products_pending_registration(
        grace_seconds=(
            settings.PRODUCT_SWEEP_GRACE_SECONDS if grace_seconds is None else grace_seconds
        ),
        max_age_days=settings.PRODUCT_SWEEP_MAX_AGE_DAYS if max_age_days is None else max_age_days,
    )
    for item in pending:
        generate_qr_code_async.delay(
            lot_id=item.lot_id, sample_id=item.sample_id, site_code=item.site_code
        )
    if pending:
        logger.info("re-enqueued %d sample(s) without product", len(pending))
    return {"enqueued": len(pending)}


@worker_ready.connect
def _sweep_on_worker_start(sender: Any = None, **kwargs: Any) -> None:
    """Recover registrations lost with a killed worker (see point 5 of the module docstring)."""
    queues = {q.name for q in sender.app.amqp.queues.consume_from.values()} if sender else set()
    if queues and "exports" not in queues:
        return
    try:
        register_pending_products.apply_async(queue="exports")
    except Exception:  # a broker hiccup must not stop the worker; the next start sweeps again
        logger.exception("could not enqueue the pending products sweep")


@task_prerun.connect
@task_postrun.connect
def _recycle_old_connections(task: Any = None, **kwargs: Any) -> None:
    """Django's request-cycle rule around each task: close connections that are broken (a retry
    after a database error gets a fresh one) or older than CONN_MAX_AGE, keep the others
    (settings.CELERY_DB_REUSE_MAX stops Celery from closing them all). Not for eager calls,
    which run inside their caller's transaction."""
    if task is not None and getattr(task.request, "is_eager", False):
        return
    close_old_connections()
