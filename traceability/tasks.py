"""Celery tasks of the traceability app (queue "exports"). Thin: take ids, call a service."""

from __future__ import annotations

from celery import shared_task

from traceability import services


@shared_task(name="traceability.tasks.generate_qr_code_async", acks_late=True)
def generate_qr_code_async(lot_id: int, sample_id: str, site_code: str | None = None) -> dict:
    product = services.product_register(lot_id=lot_id, sample_id=sample_id, site_code=site_code)
    return {
        "status": "success",
        "lot_id": lot_id,
        "sample_id": sample_id,
        "product_id": product.product_id,
        "qr_code": product.qr_code,
    }
