"""Server-rendered routes of the traceability app."""

from __future__ import annotations

from django.urls import path

from traceability import views_ledger

app_name = "traceability"
urlpatterns: list = [
    # Signed tree heads and the key that verifies them: traceability/views_ledger.py
    path("ledger/heads.json", views_ledger.heads, name="ledger_heads"),
    path("ledger/public-key.pem", views_ledger.public_key, name="ledger_public_key"),
]
