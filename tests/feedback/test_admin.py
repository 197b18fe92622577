"""Staff in admin: moderate reviews (hide with a reason), read scan counts, alerts, forgeries."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from feedback.models import ConsumerFeedback, LotReviewStats
from tests.factories import forged, make_product, review
from tests.support.integrity import assert_integrity
from traceability.models import ScanAlert

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("quality", "q@example.com", "pw-quality-123")
    client.force_login(user)
    return client


def change_form(feedback, **fields):
    return {"is_hidden": "", "hidden_reason": "", **fields}


def test_staff_hide_a_review_with_a_reason_and_it_leaves_the_lot_figures(staff):
    feedback = review(make_product())

    response = staff.post(
        f"/admin/feedback/consumerfeedback/{feedback.pk}/change/",
        change_form(feedback, is_hidden="on", hidden_reason="Off-topic"),
    )

    assert response.status_code == 302
    feedback.refresh_from_db()
    assert (feedback.is_hidden, feedback.hidden_reason) == (True, "Off-topic")
    assert LotReviewStats.objects.get().review_count == 0
    assert_integrity()


def test_hiding_without_a_reason_is_refused_in_admin(staff):
    feedback = review(make_product())

    response = staff.post(
        f"/admin/feedback/consumerfeedback/{feedback.pk}/change/",
        change_form(feedback, is_hidden="on"),
    )

    assert response.status_code == 200  # the form again, with the error
    assert ConsumerFeedback.objects.get().is_hidden is False
    assert LotReviewStats.objects.get().review_count == 1


def test_staff_show_hidden_reviews_again_with_the_action(staff):
    feedback = review(make_product())
    staff.post(
        f"/admin/feedback/consumerfeedback/{feedback.pk}/change/",
        change_form(feedback, is_hidden="on", hidden_reason="Spam"),
    )

    staff.post(
        "/admin/feedback/consumerfeedback/",
        {"action": "unhide_reviews", "_selected_action": [feedback.pk]},
    )

    assert ConsumerFeedback.objects.get().is_hidden is False
    assert LotReviewStats.objects.get().review_count == 1
    assert_integrity()


@override_settings(SCAN_ALERT_THRESHOLD=2)
def test_staff_see_scan_counts_per_product_alerts_and_forged_codes(staff, client):
    product = make_product()
    for n in range(3):
        client.get(f"/p/{product.qr_code}", REMOTE_ADDR=f"198.51.100.{n}")
    client.get(f"/p/{forged(product.qr_code)}")

    counts = staff.get("/admin/traceability/productscanstats/").content.decode()
    alerts = staff.get("/admin/traceability/scanalert/").content.decode()
    forgeries = staff.get("/admin/traceability/forgedscanattempt/").content.decode()

    assert product.product_id in counts and ">3<" in counts
    assert product.product_id in alerts
    assert (ScanAlert.objects.get().scan_count, ScanAlert.objects.get().distinct_clients) == (3, 3)
    assert product.product_id in forgeries
