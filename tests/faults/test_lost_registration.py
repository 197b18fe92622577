"""A product request lost between the sample's commit and its publication is asked again on resend.

Ingestion publishes the registration task once the sample's transaction has committed. A server
killed right then (or a connection lost while committing, or a broker refusing the publication)
leaves a stored sample that nobody asked a product for; the station did not get its ack and sends
the sample again, which is then a duplicate. A duplicate of an eligible sample that still has no
product asks for it again (the task is idempotent).
"""

from __future__ import annotations

from unittest import mock

import pytest

from sensors.models import QualityThreshold
from tests.factories import make_lot
from tests.support.integrity import assert_integrity
from tests.support.stations import ingest, message
from traceability.services import product_register

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_thresholds():
    QualityThreshold.objects.all().delete()


def stored_without_its_request(text: str) -> None:
    """The sample commits, then the server dies before publishing the registration."""
    with mock.patch("sensors.services.products_registration_request"):
        assert ingest(text).status == "saved"


def test_a_resent_sample_whose_product_request_was_lost_asks_for_it_again(
    django_capture_on_commit_callbacks,
):
    lot = make_lot()
    text = message(lot_id=lot.id)
    stored_without_its_request(text)

    with mock.patch("traceability.tasks.generate_qr_code_async.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            result = ingest(text)

    assert result.status == "duplicate" and result.product_requested
    delay.assert_called_once_with(lot_id=lot.id, sample_id="ESP32_LL_01_0001", site_code="LL")
    assert_integrity()


def test_a_resent_sample_that_has_its_product_asks_for_nothing(
    django_capture_on_commit_callbacks,
):
    lot = make_lot()
    text = message(lot_id=lot.id)
    stored_without_its_request(text)
    product_register(lot_id=lot.id, sample_id="ESP32_LL_01_0001", site_code="LL")

    with mock.patch("traceability.tasks.generate_qr_code_async.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            result = ingest(text)

    assert result.status == "duplicate" and not result.product_requested
    delay.assert_not_called()
    assert_integrity()


@pytest.mark.parametrize(
    "fusion",
    [
        {"final_grade": "REJECT", "final_score": 0.3},
        {"final_grade": "A", "final_score": 0.8, "is_compliant": False},
    ],
)
def test_a_resent_sample_that_may_have_no_product_asks_for_nothing(
    fusion, django_capture_on_commit_callbacks
):
    lot = make_lot()
    text = message(lot_id=lot.id, fusion=fusion)
    stored_without_its_request(text)

    with mock.patch("traceability.tasks.generate_qr_code_async.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            result = ingest(text)

    assert result.status == "duplicate" and not result.product_requested
    delay.assert_not_called()
    assert_integrity()
