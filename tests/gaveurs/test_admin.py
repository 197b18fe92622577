"""Every admin page quality staff use: reachable when logged in, closed to anonymous users."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo():
    call_command("seed_demo", "--lots-per-site", "1", "--samples-per-lot", "6", stdout=StringIO())


def registered_models():
    return [(m._meta.app_label, m._meta.model_name) for m in admin.site._registry]


@pytest.mark.parametrize(("app", "model"), registered_models())
def test_staff_see_the_list_and_the_change_page_of_every_model(admin_client, demo, app, model):
    changelist = admin_client.get(reverse(f"admin:{app}_{model}_changelist"))
    assert changelist.status_code == 200
    model_cls = next(m for m in admin.site._registry if m._meta.model_name == model)
    obj = model_cls.objects.first()
    if obj is not None:
        change = admin_client.get(reverse(f"admin:{app}_{model}_change", args=[obj.pk]))
        assert change.status_code == 200


@pytest.mark.parametrize(("app", "model"), registered_models())
def test_anonymous_users_are_sent_to_the_login_page(client, app, model):
    response = client.get(reverse(f"admin:{app}_{model}_changelist"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_staff_find_a_product_by_qr_code_lot_code_and_sample_id(admin_client, demo):
    from traceability.models import ConsumerProduct

    product = ConsumerProduct.objects.first()
    url = reverse("admin:traceability_consumerproduct_changelist")
    for term in (product.qr_code, product.lot_code, product.sqal_sample_id, product.product_id):
        response = admin_client.get(url, {"q": term})
        assert product.product_id in response.content.decode()


def test_the_lot_page_shows_its_feeding_records_and_products(admin_client, demo):
    from gaveurs.models import Lot

    lot = Lot.objects.filter(products__isnull=False).first()
    page = admin_client.get(reverse("admin:gaveurs_lot_change", args=[lot.pk])).content.decode()
    assert "feeding_records-TOTAL_FORMS" in page
    assert lot.products.first().product_id in page


def test_products_cannot_be_added_or_edited_from_admin(admin_client, demo):
    from traceability.models import ConsumerProduct

    assert admin_client.get(reverse("admin:traceability_consumerproduct_add")).status_code == 403
    product = ConsumerProduct.objects.first()
    url = reverse("admin:traceability_consumerproduct_change", args=[product.pk])
    admin_client.post(url, {"fusion_grade": "A+"})
    product.refresh_from_db()
    assert product.qr_code.endswith(product.qr_code[-16:])
    assert ConsumerProduct.objects.get(pk=product.pk).fusion_grade == product.fusion_grade


def test_the_admin_stylesheet_is_served_by_the_app_server(client):
    response = client.get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert b"body" in b"".join(response.streaming_content)
