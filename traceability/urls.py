"""Server-rendered routes of the traceability app."""

from __future__ import annotations

from django.urls import path, re_path

from traceability import views_gs1, views_ledger, views_qr

app_name = "traceability"
urlpatterns: list = [
    # Signed tree heads and the key that verifies them: traceability/views_ledger.py
    path("ledger/heads.json", views_ledger.heads, name="ledger_heads"),
    path("ledger/public-key.pem", views_ledger.public_key, name="ledger_public_key"),
    # QR images and label sheets (staff): traceability/views_qr.py
    path("staff/products/labels/", views_qr.label_sheet, name="product_labels"),
    path("staff/products/<str:product_id>/qr.<str:fmt>", views_qr.product_qr, name="product_qr"),
    # GS1 Digital Link resolver and the pages it leads to (public): traceability/views_gs1.py
    # [\s\S]: a percent-encoded newline in the path is a 400 from the resolver, not a 404
    re_path(r"^01(?:/(?P<rest>[\s\S]*))?$", views_gs1.resolve, name="gs1_resolve"),
    path(".well-known/gs1resolver", views_gs1.well_known, name="gs1_resolver_description"),
    path("produit/<str:gtin>", views_gs1.class_page, name="gs1_class"),
    path("produit/<str:gtin>/lot/<str:lot>", views_gs1.lot_page, name="gs1_lot"),
]
