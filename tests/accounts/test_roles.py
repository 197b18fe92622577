"""Staff roles: what each group may open in the admin and the API, and create_staff_user."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.roles import ANALYST, QUALITY, STATION_ADMIN
from tests.factories import make_lot, make_sample
from traceability.auth import api_token_create
from traceability.models import ConsumerProduct
from traceability.services import product_register

pytestmark = pytest.mark.django_db


def staff_in(role: str, username: str | None = None):
    user = get_user_model().objects.create_user(
        username or role.lower().replace(" ", "-"), password="x-long-password-1", is_staff=True
    )
    user.groups.add(Group.objects.get(name=role))
    return get_user_model().objects.get(pk=user.pk)


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def product() -> ConsumerProduct:
    lot = make_lot()
    registered = product_register(
        lot_id=lot.id, sample_id=make_sample(lot=lot).sample_id, site_code="LL"
    )
    return ConsumerProduct.objects.get(product_id=registered.product_id)


def perms(role: str) -> set[str]:
    return {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Group.objects.get(name=role).permissions.select_related("content_type")
    }


def test_the_three_roles_exist_with_their_permissions():
    quality, analyst, stations = perms(QUALITY), perms(ANALYST), perms(STATION_ADMIN)
    assert {
        "sensors.change_qualityalert",
        "optimizer.change_optimizedcurve",
        "traceability.add_consumerproduct",
        "feedback.change_consumerfeedback",
        "gaveurs.change_lot",
    } <= quality
    assert "sensors.change_device" not in quality
    assert analyst and all(p.split(".", 1)[1].startswith("view_") for p in analyst)
    assert {"optimizer.view_optimizedcurve", "traceability.view_consumerproduct"} <= analyst
    assert {"sensors.add_device", "sensors.change_device", "sensors.view_sensorsample"} <= stations
    assert "traceability.view_consumerproduct" not in stations


def test_quality_staff_work_on_alerts_products_and_reviews_but_not_stations(product):
    client = client_of(staff_in(QUALITY))
    for url in [
        "/admin/sensors/qualityalert/",
        "/admin/gaveurs/lot/add/",
        "/admin/feedback/consumerfeedback/",
        "/admin/optimizer/optimizedcurve/",
        "/sqal/live/",
        f"/staff/products/labels/?ids={product.pk}",
    ]:
        assert client.get(url).status_code == 200, url
    for url in ["/admin/sensors/device/add/", "/admin/traceability/apitoken/add/"]:
        assert client.get(url).status_code == 403, url


def test_analysts_read_everything_and_change_nothing(product):
    client = client_of(staff_in(ANALYST))
    for url in [
        "/admin/gaveurs/lot/",
        "/admin/sensors/sensorsample/",
        "/admin/optimizer/optimizedcurve/",
        "/admin/optimizer/optimizationrun/",
        "/admin/feedback/consumerfeedback/",
        "/admin/traceability/consumerproduct/",
    ]:
        assert client.get(url).status_code == 200, url
    for url in ["/admin/gaveurs/lot/add/", "/admin/sensors/device/add/"]:
        assert client.get(url).status_code == 403, url
    sample = make_sample(lot=product.lot)
    response = client.post(
        f"/api/tasks/qr-code/generate?lot_id={product.lot_id}&sample_id={sample.sample_id}"
    )
    assert response.status_code == 403 and response.json()["error"] == "permission_denied"


def test_station_admins_manage_stations_and_see_no_signed_codes(product):
    client = client_of(staff_in(STATION_ADMIN))
    for url in ["/admin/sensors/device/add/", "/admin/sensors/qualitythreshold/", "/sqal/live/"]:
        assert client.get(url).status_code == 200, url
    for url in [
        "/admin/traceability/consumerproduct/",
        f"/staff/products/labels/?ids={product.pk}",
        f"/staff/products/{product.product_id}/qr.svg",
        "/admin/feedback/consumerfeedback/",
    ]:
        assert client.get(url).status_code == 403, url


def test_api_scopes_are_accepted_and_refused_per_role(product):
    sample = make_sample(lot=product.lot)
    generate = f"/api/tasks/qr-code/generate?lot_id={product.lot_id}&sample_id={sample.sample_id}"
    quality, analyst = staff_in(QUALITY), staff_in(ANALYST)
    _, writer = api_token_create(user=quality, name="erp", scopes=["tasks:write"])
    _, no_scope = api_token_create(user=quality, name="bare", scopes=[])
    _, analyst_writer = api_token_create(user=analyst, name="a", scopes=["tasks:write"])
    _, analyst_epcis = api_token_create(user=analyst, name="e", scopes=["epcis:read"])

    def call(method: str, url: str, token: str):
        return getattr(Client(), method)(url, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert call("post", generate, writer).status_code == 200
    assert call("post", generate, no_scope).json()["error"] == "insufficient_scope"
    assert call("post", generate, analyst_writer).json()["error"] == "permission_denied"
    assert call("get", "/api/epcis/events", analyst_epcis).status_code == 200
    assert call("get", "/api/epcis/events", writer).json()["error"] == "insufficient_scope"


def test_create_staff_user_puts_the_account_in_its_role():
    out = io.StringIO()
    call_command("create_staff_user", "marie", "--role", "quality", stdout=out)
    user = get_user_model().objects.get(username="marie")
    assert user.is_staff and not user.is_superuser
    assert [g.name for g in user.groups.all()] == [QUALITY]
    password = out.getvalue().strip().rsplit(": ", 1)[1]
    assert user.check_password(password) and len(password) >= 16
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_staff_user", "marie", "--role", "analyst", stdout=io.StringIO())
    with pytest.raises(CommandError):
        call_command("create_staff_user", "paul", "--role", "boss", stdout=io.StringIO())
