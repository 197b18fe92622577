"""A staff account alone opens nothing that hands out signed codes or station data: each staff
page and endpoint checks the specific permission of the job."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import make_lot, make_sample, make_staff
from traceability.auth import api_token_create
from traceability.models import ConsumerProduct
from traceability.services import product_register

pytestmark = pytest.mark.django_db

VIEW = "traceability.view_consumerproduct"
ADD = "traceability.add_consumerproduct"


@pytest.fixture
def product() -> ConsumerProduct:
    lot = make_lot()
    sample = make_sample(lot=lot)
    registered = product_register(lot_id=lot.id, sample_id=sample.sample_id, site_code="LL")
    return ConsumerProduct.objects.get(product_id=registered.product_id)


def logged_in(*perms: str, name: str = "staff") -> Client:
    client = Client()
    client.force_login(make_staff(name, *perms))
    return client


def staff_pages(product: ConsumerProduct) -> list[str]:
    return [
        "/sqal/live/",
        f"/staff/products/{product.product_id}/qr.svg",
        f"/staff/products/{product.product_id}/qr.png",
        f"/staff/products/labels/?ids={product.pk}",
    ]


def test_a_staff_user_without_permissions_is_refused_on_every_staff_page(product):
    client = logged_in()
    for url in staff_pages(product):
        response = client.get(url)
        assert response.status_code == 403, url
        assert product.qr_code.encode() not in response.content


def test_viewing_products_opens_qr_images_and_labels_but_not_the_live_dashboard(product):
    client = logged_in(VIEW)
    for url in staff_pages(product)[1:]:
        assert client.get(url).status_code == 200, url
    assert client.get("/sqal/live/").status_code == 403


def test_the_task_api_needs_the_product_permissions_by_session_and_by_token(product):
    sample = make_sample(lot=product.lot)
    generate = f"/api/tasks/qr-code/generate?lot_id={product.lot_id}&sample_id={sample.sample_id}"
    bare = logged_in(name="bare")
    _, bare_token = api_token_create(
        user=make_staff("bare-token"), name="t", scopes=["tasks:read", "tasks:write"]
    )
    for response in [
        bare.post(generate),
        bare.get("/api/tasks/status/some-task"),
        Client().post(generate, HTTP_AUTHORIZATION=f"Bearer {bare_token}"),
        Client().get("/api/tasks/status/x", HTTP_AUTHORIZATION=f"Bearer {bare_token}"),
    ]:
        assert response.status_code == 403
        body = response.json()
        assert (body["error"], body["rule"]) == ("permission_denied", "permission")

    viewer = logged_in(VIEW, name="viewer")
    assert viewer.post(generate).status_code == 403  # may read task states, not register
    assert viewer.get("/api/tasks/status/unknown").status_code == 404


def test_a_token_needs_the_scope_of_each_endpoint_even_when_its_user_may(product):
    sample = make_sample(lot=product.lot)
    generate = f"/api/tasks/qr-code/generate?lot_id={product.lot_id}&sample_id={sample.sample_id}"
    user = make_staff("erp", ADD, VIEW)
    _, read_only = api_token_create(user=user, name="reader", scopes=["tasks:read"])
    _, epcis_only = api_token_create(user=user, name="retailer", scopes=["epcis:read"])

    refused = Client().post(generate, HTTP_AUTHORIZATION=f"Bearer {read_only}")
    assert refused.status_code == 403
    assert (refused.json()["error"], refused.json()["rule"]) == ("insufficient_scope", "scope")
    status = Client().get("/api/tasks/status/unknown", HTTP_AUTHORIZATION=f"Bearer {read_only}")
    assert status.status_code == 404  # allowed: the task just does not exist
    for url in ["/api/tasks/status/unknown"]:
        response = Client().get(url, HTTP_AUTHORIZATION=f"Bearer {epcis_only}")
        assert response.status_code == 403 and response.json()["error"] == "insufficient_scope"
    _, writer = api_token_create(user=user, name="writer", scopes=["tasks:write"])
    assert Client().post(generate, HTTP_AUTHORIZATION=f"Bearer {writer}").status_code == 200


def test_unknown_scopes_are_refused_when_a_token_is_made():
    with pytest.raises(ValueError, match="unknown scope"):
        api_token_create(user=make_staff("x"), name="t", scopes=["admin:all"])
