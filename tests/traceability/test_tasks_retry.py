"""The task's retry policy, run in-process (the real worker path is in test_tasks_worker.py)."""

from __future__ import annotations

from unittest import mock

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


def test_a_batch_task_registers_each_sample_and_names_every_refused_one(monkeypatch):
    lot = make_lot()
    good = [make_sample(lot=lot) for _ in range(2)]
    rejected = make_sample(lot=lot, fusion_grade="REJECT", is_compliant=False, fusion_score=0.1)
    requests = [
        {"lot_id": lot.id, "sample_id": s.sample_id, "site_code": "LL"}
        for s in (good[0], rejected, good[1])
    ]
    requests.append({"lot_id": lot.id, "sample_id": "NO_SUCH_SAMPLE", "site_code": "LL"})

    result = tasks.generate_qr_codes_async.apply(kwargs={"requests": requests})

    # The refusals do not stop the others, and the failure names each refused sample.
    assert sorted(ConsumerProduct.objects.values_list("sample_id", flat=True)) == sorted(
        s.pk for s in good
    )
    assert result.failed()
    assert isinstance(result.result, tasks.ProductRegistrationRefused)
    assert result.result.code == "sample_not_eligible"
    assert "2 of 4 registrations refused" in result.result.detail
    assert rejected.sample_id in result.result.detail and "NO_SUCH_SAMPLE" in result.result.detail


def test_a_batch_task_retried_after_a_lost_connection_makes_no_second_product(monkeypatch):
    lot = make_lot()
    samples = [make_sample(lot=lot) for _ in range(3)]
    real = services.product_register
    calls = []

    def flaky(**kwargs):
        calls.append(kwargs["sample_id"])
        if len(calls) == 2:  # the second registration of the first attempt
            raise OperationalError("server closed the connection unexpectedly")
        return real(**kwargs)

    monkeypatch.setattr(services, "product_register", flaky)
    requests = [{"lot_id": lot.id, "sample_id": s.sample_id, "site_code": "LL"} for s in samples]

    result = tasks.generate_qr_codes_async.apply(kwargs={"requests": requests})

    assert result.successful()
    assert calls == [samples[0].sample_id, samples[1].sample_id] + [s.sample_id for s in samples]
    products = result.result["products"]
    assert [p["sample_id"] for p in products] == [s.sample_id for s in samples]
    assert ConsumerProduct.objects.count() == 3
    # The first sample's product, made before the retry, was found again, not made twice.
    assert len({p["product_id"] for p in products}) == 3


def test_an_unexpected_error_in_a_batch_task_does_not_stop_the_other_registrations(monkeypatch):
    lot = make_lot()
    samples = [make_sample(lot=lot) for _ in range(3)]
    real = services.product_register

    def broken_for_the_first(**kwargs):
        if kwargs["sample_id"] == samples[0].sample_id:
            raise ValueError("unexpected")
        return real(**kwargs)

    monkeypatch.setattr(services, "product_register", broken_for_the_first)
    requests = [{"lot_id": lot.id, "sample_id": s.sample_id, "site_code": "LL"} for s in samples]

    result = tasks.generate_qr_codes_async.apply(kwargs={"requests": requests})

    assert result.failed() and isinstance(result.result, ValueError)
    assert sorted(ConsumerProduct.objects.values_list("sample_id", flat=True)) == sorted(
        s.pk for s in samples[1:]
    )


def test_many_requests_are_split_into_tasks_of_at_most_the_batch_size(
    monkeypatch, django_capture_on_commit_callbacks
):
    from sensors.signals import ProductRequest

    monkeypatch.setattr(tasks, "REGISTRATIONS_PER_TASK", 2)
    requests = [ProductRequest(1, f"S{n}", "LL") for n in range(5)]
    with mock.patch.object(tasks.generate_qr_codes_async, "delay") as many:
        with django_capture_on_commit_callbacks(execute=True):
            tasks.products_registration_request(requests)
    sent = [c.kwargs["requests"] for c in many.call_args_list]
    assert [[r["sample_id"] for r in chunk] for chunk in sent] == [
        ["S0", "S1"],
        ["S2", "S3"],
        ["S4"],
    ]


def test_a_batchs_registrations_are_shared_between_the_worker_processes(
    settings, django_capture_on_commit_callbacks
):
    from sensors.signals import ProductRequest

    settings.PRODUCT_TASKS_PER_BATCH = 2
    requests = [ProductRequest(1, f"S{n}", "LL") for n in range(13)]
    with (
        mock.patch.object(tasks.generate_qr_codes_async, "delay") as many,
        mock.patch.object(tasks.generate_qr_code_async, "delay") as one,
    ):
        with django_capture_on_commit_callbacks(execute=True):
            tasks.products_registration_request(requests)
            tasks.products_registration_request(requests[:1])
    sent = [[r["sample_id"] for r in c.kwargs["requests"]] for c in many.call_args_list]
    assert sent == [[f"S{n}" for n in range(7)], [f"S{n}" for n in range(7, 13)]]
    one.assert_called_once_with(lot_id=1, sample_id="S0", site_code="LL")  # a lone sample


def test_a_batch_larger_than_the_worker_processes_can_share_keeps_tasks_of_at_most_100():
    chunks = tasks.registration_chunks(list(range(250)), 2)
    assert [len(c) for c in chunks] == [84, 83, 83]
    assert [x for c in chunks for x in c] == list(range(250))
    assert tasks.registration_chunks(list(range(3)), 8) == [[0], [1], [2]]
    assert tasks.registration_chunks([], 2) == []


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
