"""Server-rendered routes of the traceability app."""

from __future__ import annotations

from django.urls import path, re_path

from traceability import views_ledger, views_qr

app_name = "traceability"
urlpatterns: list = [
    # Signed tree heads and the key that verifies them: traceability/views_ledger.py
    path("ledger/heads.json", views_ledger.heads, name="ledger_heads"),
    path("ledger/public-key.pem", views_ledger.public_key, name="ledger_public_key"),
    # QR images, label sheets (staff) and GS1 Digital Link (public): traceability/views_qr.py
    path("staff/products/labels/", views_qr.label_sheet, name="product_labels"),
    path("staff/products/<str:product_id>/qr.<str:fmt>", views_qr.product_qr, name="product_qr"),
    re_path(r"^01(?:/(?P<rest>.*))?$", views_qr.gs1_resolve, name="gs1_resolve"),
]
