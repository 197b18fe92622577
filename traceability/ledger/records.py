"""The canonical record of a product that is sealed in the log (version 1; see the package
docstring for its byte layout)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from traceability.ledger.merkle import leaf_hash
from traceability.models import ConsumerProduct

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
