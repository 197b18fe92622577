"""The canonical records sealed in the log (version 1; see the package docstring for their byte
layout): a product's, a recall declaration's and a recall closing's. Product records carry no
``kind`` (they hash exactly as before entry kinds existed); the others name their ``kind``."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from traceability.ledger.merkle import leaf_hash
from traceability.models import ConsumerProduct, LedgerEntryKind, Recall, RecallClosure

RECORD_VERSION = 1


# --- The canonical record ----------------------------------------------------------------


def _float(value: float | None) -> str | None:
    return None if value is None else repr(float(value))


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def product_record(product: ConsumerProduct) -> dict[str, Any]:
    """The traceability record of a product that is sealed (see the module docstring)."""
    return {
        "v": RECORD_VERSION,
        "product_id": product.product_id,
        "qr_code": product.qr_code,
        "created_at": _time(product.created_at),
        "site_code": product.site_code,
        "sqal_sample_id": product.sqal_sample_id,
        "fusion_score": _float(product.fusion_score),
        "fusion_grade": product.fusion_grade,
        "is_compliant": product.is_compliant,
        "tof_volume_mm3": _float(product.tof_volume_mm3),
        "tof_surface_uniformity": _float(product.tof_surface_uniformity),
        "spectral_freshness_index": _float(product.spectral_freshness_index),
        "lot_id": product.lot_id,
        "lot_code": product.lot_code,
        "lot_itm": _float(product.lot_itm),
        "lot_mean_final_weight_g": _float(product.lot_mean_final_weight_g),
        "lot_feeding_start": _time(product.lot_feeding_start),
        "lot_feeding_end": _time(product.lot_feeding_end),
        "lot_feeding_days": product.lot_feeding_days,
    }


def canonical_json(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def product_leaf_hash(product: ConsumerProduct) -> bytes:
    return leaf_hash(canonical_json(product_record(product)).encode("utf-8"))


def _date(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def recall_record(recall: Recall) -> dict[str, Any]:
    """The declaration of a recall as sealed: what consumers are told and its scope. The scope
    names rows by what never changes (lot and site keys, product ids), sorted, so that editing a
    lot's code later is not mistaken for tampering with the recall."""
    return {
        "v": RECORD_VERSION,
        "kind": LedgerEntryKind.RECALL.value,
        "reference": recall.reference,
        "recall_kind": recall.kind,
        "reason": recall.reason,
        "instructions_fr": recall.instructions_fr,
        "instructions_en": recall.instructions_en,
        "starts_at": _time(recall.starts_at),
        "declared_at": _time(recall.declared_at),
        "scope": recall.scope,
        "lot_ids": sorted(recall.scope_lots.values_list("lot_id", flat=True)),
        "product_ids": sorted(recall.scope_products.values_list("product__product_id", flat=True)),
        "site_id": recall.site_id,
        "produced_from": _date(recall.produced_from),
        "produced_until": _date(recall.produced_until),
    }


def recall_closure_record(closure: RecallClosure) -> dict[str, Any]:
    """The closing of a recall as sealed."""
    return {
        "v": RECORD_VERSION,
        "kind": LedgerEntryKind.RECALL_CLOSURE.value,
        "recall_reference": closure.recall.reference,
        "reason": closure.reason,
        "closed_at": _time(closure.closed_at),
    }
