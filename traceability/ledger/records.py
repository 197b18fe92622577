"""The canonical records sealed in the log (version 1; see the package docstring for their byte
layout): a product's, a recall declaration's and a recall closing's. Product records carry no
``kind`` (they hash exactly as before entry kinds existed); the others name their ``kind``."""

from __future__ import annotations

import json
from collections.abc import Sequence
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


# The product attributes a record is made of, in the order ``record_from_values`` takes them;
# each is a float (F), a time (T) or kept as is (-). ``verify`` reads these columns in bulk.
RECORD_FIELDS: tuple[tuple[str, str], ...] = (
    ("product_id", "-"),
    ("qr_code", "-"),
    ("created_at", "T"),
    ("site_code", "-"),
    ("sqal_sample_id", "-"),
    ("fusion_score", "F"),
    ("fusion_grade", "-"),
    ("is_compliant", "-"),
    ("tof_volume_mm3", "F"),
    ("tof_surface_uniformity", "F"),
    ("spectral_freshness_index", "F"),
    ("lot_id", "-"),
    ("lot_code", "-"),
    ("lot_itm", "F"),
    ("lot_mean_final_weight_g", "F"),
    ("lot_feeding_start", "T"),
    ("lot_feeding_end", "T"),
    ("lot_feeding_days", "-"),
)
_CONVERT = {"F": _float, "T": _time}


def record_from_values(values: Sequence[Any]) -> dict[str, Any]:
    """The record of a product from its ``RECORD_FIELDS`` values, in that order."""
    record: dict[str, Any] = {"v": RECORD_VERSION}
    for (name, conversion), value in zip(RECORD_FIELDS, values, strict=True):
        record[name] = _CONVERT[conversion](value) if conversion in _CONVERT else value
    return record


def product_record(product: ConsumerProduct) -> dict[str, Any]:
    """The traceability record of a product that is sealed (see the module docstring)."""
    return record_from_values([getattr(product, name) for name, _ in RECORD_FIELDS])


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
