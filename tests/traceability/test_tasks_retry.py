"""The task's retry policy, run in-process (the real worker path is in test_tasks_worker.py)."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from tests.factories import make_lot, make_sample
from traceability import services, tasks
from traceability.models import ConsumerProduct

pytestmark = pytest.mark.django_db


def test_a_lost_database_connection_is_retried_and_then_succeeds(monkeypatch):
    lot = make_lot()
    sample = make_sample(lot=lot)
    real = services.product_register
    calls = []

    def flaky(**kwargs):
        calls.append(kwargs)
        if len(calls) < 3:
            raise OperationalError("server closed the connection unexpectedly")
        return real(**kwargs)

    monkeypatch.setattr(services, "product_register", flaky)

    result = tasks.generate_qr_code_async.apply(
        kwargs={"lot_id": lot.id, "sample_id": sample.sample_id, "site_code": "LL"}
    )

    assert result.successful()
    assert len(calls) == 3
    assert result.result["product_id"] == ConsumerProduct.objects.get().product_id


def test_a_refusal_is_final_and_names_the_rule(monkeypatch):
    lot = make_lot()
    sample = make_sample(lot=lot, fusion_grade="REJECT", is_compliant=False, fusion_score=0.1)
    calls = []
    real = services.product_register

    def counting(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(services, "product_register", counting)

    result = tasks.generate_qr_code_async.apply(
        kwargs={"lot_id": lot.id, "sample_id": sample.sample_id, "site_code": "LL"}
    )

    assert result.failed()
    assert isinstance(result.result, tasks.ProductRegistrationRefused)
    assert result.result.code == "sample_not_eligible"
    assert len(calls) == 1
    assert ConsumerProduct.objects.count() == 0


def test_the_sweep_finds_eligible_samples_without_product_only():
    lot = make_lot()
    pending = make_sample(lot=lot)
    done = make_sample(lot=lot)
    services.product_register(lot_id=lot.id, sample_id=done.sample_id, site_code="LL")
    make_sample(lot=lot, fusion_grade="REJECT", is_compliant=False, fusion_score=0.1)
    make_sample(lot=None)

    found = services.products_pending_registration(grace_seconds=0, max_age_days=1)
    recent = services.products_pending_registration(grace_seconds=3600, max_age_days=1)

    assert [(p.lot_id, p.sample_id) for p in found] == [(lot.id, pending.sample_id)]
    assert recent == []
