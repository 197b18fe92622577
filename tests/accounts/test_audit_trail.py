"""The audit trail (django-simple-history): who changed what, when, before and after; staff
read it in the admin and can neither edit nor delete it."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from gaveurs.models import Site
from tests.factories import make_product, make_staff, review
from traceability.auth import api_token_create
from traceability.models import ApiToken

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin():
    user = get_user_model().objects.create_superuser("chef", "chef@example.org", "pw-audit-123")
    client = Client()
    client.force_login(user)
    return user, client


def test_a_site_change_in_the_admin_is_recorded_with_who_and_before_and_after(admin):
    user, client = admin
    site = Site.objects.create(code="LL", name="Landes")
    response = client.post(
        f"/admin/gaveurs/site/{site.pk}/change/",
        {"code": "LL", "name": "Landes (Sud)", "region": "", "gtin": "", "gln": ""},
    )
    assert response.status_code == 302
    latest, previous = site.history.order_by("-history_date")[:2]
    assert (latest.history_type, latest.history_user, latest.name) == ("~", user, "Landes (Sud)")
    delta = latest.diff_against(previous)
    assert [(c.field, c.old, c.new) for c in delta.changes] == [("name", "Landes", "Landes (Sud)")]
    page = client.get(f"/admin/gaveurs/site/{site.pk}/history/").content.decode()
    assert "Landes (Sud)" in page and "chef" in page


def test_moderating_a_review_and_revoking_a_token_are_recorded(admin):
    user, client = admin
    feedback = review(make_product())
    response = client.post(
        f"/admin/feedback/consumerfeedback/{feedback.pk}/change/",
        {"is_hidden": "on", "hidden_reason": "spam"},
    )
    assert response.status_code == 302
    feedback.refresh_from_db()
    assert feedback.is_hidden
    hidden, created = feedback.history.order_by("-history_date")[:2]
    assert (hidden.is_hidden, hidden.hidden_reason, hidden.history_user) == (True, "spam", user)
    assert created.history_type == "+" and not created.is_hidden

    token, _ = api_token_create(user=make_staff("erp"), name="ERP", scopes=["tasks:read"])
    client.post(
        "/admin/traceability/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    token.refresh_from_db()
    assert token.revoked_at is not None
    revoked = ApiToken.history.filter(id=token.pk).order_by("-history_date").first()
    assert revoked.revoked_at is not None and revoked.history_user == user


def test_staff_cannot_edit_revert_or_delete_history(admin):
    _, client = admin
    site = Site.objects.create(code="MG", name="Gers")
    site.name = "Gers (Nord)"
    site.save()
    first = site.history.order_by("history_date").first()
    # The historical record page is read-only (no revert): a POST to it changes nothing.
    url = f"/admin/gaveurs/site/{site.pk}/history/{first.history_id}/"
    page = client.get(url).content.decode()
    assert 'type="submit"' not in page or "Revert" not in page
    response = client.post(url, {"code": "MG", "name": "Gers", "region": ""})
    assert response.status_code == 403
    site.refresh_from_db()
    assert site.name == "Gers (Nord)" and site.history.count() == 2
    # The historical tables have no admin of their own to edit or delete rows through.
    for model in ["historicalsite", "historicallot", "historicalconsumerfeedback"]:
        for app in ["gaveurs", "feedback"]:
            assert client.get(f"/admin/{app}/{model}/").status_code == 404
