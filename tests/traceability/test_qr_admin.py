"""Quality staff reach a product's QR and print label sheets from the product admin."""

from __future__ import annotations

import pytest

from tests.factories import make_lot, make_sample
from traceability.auth import api_token_create
from traceability.models import ApiToken, ConsumerProduct
from traceability.services import product_register

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("admin", password="x"))
    return client


def make_products(n: int) -> list[ConsumerProduct]:
    lot = make_lot()
    for _ in range(n):
        product_register(lot_id=lot.id, sample_id=make_sample(lot=lot).sample_id, site_code="LL")
    return list(ConsumerProduct.objects.order_by("product_id"))


def test_the_product_page_shows_the_qr_and_download_links(admin_client):
    (product,) = make_products(1)

    html = admin_client.get(
        f"/admin/traceability/consumerproduct/{product.pk}/change/"
    ).content.decode()

    svg = f"/staff/products/{product.product_id}/qr.svg"
    assert f'<img src="{svg}"' in html
    assert f'href="{svg}?download=1"' in html
    assert f"/staff/products/{product.product_id}/qr.png?download=1&amp;scale=10" in html
    assert admin_client.get(svg).status_code == 200


def test_the_print_labels_action_returns_a_sheet_of_the_selected_products(admin_client):
    products = make_products(3)

    response = admin_client.post(
        "/admin/traceability/consumerproduct/",
        {"action": "print_labels", "_selected_action": [p.pk for p in products[:2]]},
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('<div class="label"') == 2
    assert products[0].product_id in html and products[1].product_id in html
    assert products[2].product_id not in html


def test_staff_revoke_api_tokens_from_the_admin(admin_client, django_user_model):
    token, _ = api_token_create(user=django_user_model.objects.get(), name="ERP")

    admin_client.post(
        "/admin/traceability/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}
    )

    assert ApiToken.objects.get().revoked_at is not None
