"""Consumer product registration, product id and QR code formats, and QR code signatures.

Live products are written by the PL/pgSQL function ``register_consumer_product``;
``product_register`` calls it, seals the product in the ledger and turns its SQLSTATE codes into
``ProductRegistrationError``. Writers without a live sample flow (history import, synthetic
data) use the bulk path ``products_bulk_register`` with ``product_ids_reserve`` (the same per-site
daily counter) and ``product_build`` (the same fields and signed QR code), sealed the same way.
``product_id_format`` and ``qr_code_format`` are the Python mirror of the formats the PL/pgSQL
writes (tested against it). The signature is recomputable here from stored fields and
``settings.QR_SIGNING_KEY``.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction

from gaveurs.models import Lot
from sensors.models import SensorSample
from sensors.rules import product_eligible
from traceability.ledger import ledger_append_product, ledger_append_products
from traceability.models import ConsumerProduct, ProductSequence

QR_PATTERN = re.compile(
    r"^SQAL_(?P<lot_id>\d{1,18})_(?P<sample_id>.{1,100})_"
    r"(?P<product_id>FG_(?P<site_code>[A-Z]{2,5})_(?P<day>\d{8})_(?P<seq>\d{4,}))_"
    r"(?P<signature>[0-9a-f]{16})$"
)
QR_MAX_LENGTH = 300

# SQLSTATE raised by the PL/pgSQL functions -> (stable error code, HTTP-ish status)
SQLSTATE_ERRORS: dict[str, tuple[str, int]] = {
    "GTK01": ("signing_key_missing", 500),
    "GTL01": ("unknown_lot", 404),
    "GTS01": ("unknown_sample", 404),
    "GTS02": ("ambiguous_sample", 409),
    "GTS03": ("sample_not_eligible", 422),
    "GTS04": ("sample_not_in_lot", 422),
    "GTS05": ("invalid_argument", 400),
}


class ProductRegistrationError(Exception):
    """Registration refused; ``code`` is stable, ``detail`` says what was wrong."""

    def __init__(self, code: str, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status


@dataclass(frozen=True)
class RegisteredProduct:
    product_id: str
    qr_code: str
    # Whether this call appended the product to the log (False when it was registered before):
    # not part of the product's identity (a repeated registration returns an equal product).
    newly_sealed: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class ParsedQr:
    lot_id: int
    sample_id: str
    product_id: str
    site_code: str
    signature: str


def product_register(*, lot_id: int, sample_id: str, site_code: str | None) -> RegisteredProduct:
    """Register (or find) the consumer product of a compliant sample. Idempotent per sample."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT product_id, qr_code FROM register_consumer_product(%s, %s, %s)",
                [lot_id, sample_id, site_code or None],
            )
            product_id, qr_code = cursor.fetchone()
            # Seal a new product in the tamper-evident log, same transaction (idempotent).
            appended = ledger_append_product(product_id=product_id)
    except DatabaseError as exc:
        sqlstate = getattr(getattr(exc, "__cause__", None), "sqlstate", None)
        if sqlstate in SQLSTATE_ERRORS:
            code, status = SQLSTATE_ERRORS[sqlstate]
            message = str(exc.__cause__.diag.message_primary or exc)
            raise ProductRegistrationError(code, message, status) from exc
        raise
    return RegisteredProduct(
        product_id=product_id,
        qr_code=qr_code,
        newly_sealed=appended is not None,
    )


def product_id_format(*, site_code: str, day: date, seq: int) -> str:
    """``FG_<site>_<YYYYMMDD>_<seq4>``, as ``generate_qr_code`` (PL/pgSQL) writes it."""
    return f"FG_{site_code}_{day:%Y%m%d}_{seq:04d}"


def qr_code_format(*, lot_id: int, sample_id: str, product_id: str) -> str:
    """``SQAL_<lot_id>_<sample_id>_<product_id>_<sig16>``, as ``generate_qr_code`` writes it."""
    signature = qr_signature(lot_id=lot_id, sample_id=sample_id, product_id=product_id)
    return f"SQAL_{lot_id}_{sample_id}_{product_id}_{signature}"


def product_ids_reserve(*, site_code: str, day: date, count: int) -> list[str]:
    """Take ``count`` product ids from the site's daily counter (the one live products use)."""
    if count <= 0:
        return []
    table = ProductSequence._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} AS s (site_code, day, last_value) VALUES (%s, %s, %s) "
            "ON CONFLICT (site_code, day) DO UPDATE SET last_value = s.last_value + %s "
            "RETURNING s.last_value",
            [site_code, day, count, count],
        )
        (last,) = cursor.fetchone()
    return [
        product_id_format(site_code=site_code, day=day, seq=n)
        for n in range(last - count + 1, last + 1)
    ]


def product_build(
    *, lot: Lot, sample: SensorSample, product_id: str, site_code: str
) -> ConsumerProduct:
    """An unsaved product for a saved sample, with the fields and signed QR code that
    ``register_consumer_product`` would give it (for ``products_bulk_register``)."""
    return ConsumerProduct(
        product_id=product_id,
        qr_code=qr_code_format(lot_id=lot.id, sample_id=sample.sample_id, product_id=product_id),
        lot=lot,
        sample=sample,
        sqal_sample_id=sample.sample_id,
        site_code=site_code,
        fusion_score=sample.fusion_score,
        fusion_grade=sample.fusion_grade,
        is_compliant=sample.is_compliant,
        tof_volume_mm3=sample.tof_volume_mm3,
        tof_surface_uniformity=sample.tof_surface_uniformity,
        spectral_freshness_index=sample.spectral_freshness_index,
        lot_code=lot.code,
        lot_itm=lot.itm,
        lot_mean_final_weight_g=lot.mean_final_weight_g,
        lot_feeding_start=lot.feeding_start,
        lot_feeding_end=lot.planned_feeding_end,
        lot_feeding_days=lot.duration_days,
    )


@transaction.atomic
def products_bulk_register(*, products: Sequence[ConsumerProduct]) -> int:
    """The bulk path beside ``product_register`` (history import, synthetic data): insert
    products built by ``product_build`` and seal them in the ledger, in one transaction, so that
    every product has its leaf as a registered one does. Returns how many were stored."""
    for product in products:
        if not product.sample.qualifies_for_product:
            raise ProductRegistrationError(
                "sample_not_eligible",
                f"sample {product.sqal_sample_id!r} is not eligible for a product",
                422,
            )
    ConsumerProduct.objects.bulk_create(products, batch_size=5000)
    ledger_append_products(products=products)
    return len(products)


def qr_signature(*, lot_id: int, sample_id: str, product_id: str) -> str:
    """The 16 hex characters that end a QR code (same computation as SQL qr_signature)."""
    message = f"{lot_id}|{sample_id}|{product_id}".encode()
    key = settings.QR_SIGNING_KEY.encode()
    # hmac.digest: the one-shot C HMAC (every scan checks a signature), same bytes as hmac.new.
    return hmac.digest(key, message, "sha256").hex()[:16]


def qr_parse(code: str) -> ParsedQr | None:
    """Split a QR code into its parts, or None when it does not have the QR format."""
    if not code or len(code) > QR_MAX_LENGTH:
        return None
    match = QR_PATTERN.match(code)
    if not match:
        return None
    return ParsedQr(
        lot_id=int(match["lot_id"]),
        sample_id=match["sample_id"],
        product_id=match["product_id"],
        site_code=match["site_code"],
        signature=match["signature"],
    )


def qr_signature_is_valid(code: str) -> bool:
    """True when the code is well formed and its signature matches its own fields."""
    parsed = qr_parse(code)
    return parsed is not None and parsed_qr_signature_is_valid(parsed)


def parsed_qr_signature_is_valid(parsed: ParsedQr) -> bool:
    """``qr_signature_is_valid`` of a code parsed already (``qr_parse``)."""
    expected = qr_signature(
        lot_id=parsed.lot_id, sample_id=parsed.sample_id, product_id=parsed.product_id
    )
    return hmac.compare_digest(expected, parsed.signature)


def product_signature_is_valid(product: ConsumerProduct) -> bool:
    """Recompute a stored product's signature from its stored fields."""
    expected = qr_signature(
        lot_id=product.lot_id, sample_id=product.sqal_sample_id, product_id=product.product_id
    )
    return product.qr_code == (
        f"SQAL_{product.lot_id}_{product.sqal_sample_id}_{product.product_id}_{expected}"
    )


SITE_CODE_PATTERN = re.compile(r"^[A-Z]{2,5}$")


def product_registration_check(*, lot_id: int, sample_id: str, site_code: str | None) -> None:
    """Refuse, before enqueuing, what register_consumer_product would refuse (same codes)."""
    if site_code and not SITE_CODE_PATTERN.match(site_code):
        raise ProductRegistrationError(
            "invalid_argument", f"site_code {site_code!r} is not 2 to 5 capital letters", 400
        )
    if not sample_id or len(sample_id) > 100:
        raise ProductRegistrationError(
            "invalid_argument", "sample_id must be 1 to 100 characters", 400
        )
    if not Lot.objects.filter(pk=lot_id).exists():
        raise ProductRegistrationError("unknown_lot", f"unknown lot {lot_id}", 404)
    samples = list(
        SensorSample.objects.filter(sample_id=sample_id).values_list(
            "lot_id", "is_compliant", "fusion_grade"
        )[:50]
    )
    if not samples:
        raise ProductRegistrationError("unknown_sample", f"unknown sample {sample_id!r}", 404)
    in_lot = [s for s in samples if s[0] == lot_id]
    if not in_lot:
        raise ProductRegistrationError(
            "sample_not_in_lot", f"sample {sample_id!r} does not belong to lot {lot_id}", 422
        )
    if len(in_lot) > 1:
        raise ProductRegistrationError(
            "ambiguous_sample",
            f"sample id {sample_id!r} is used by several stations in lot {lot_id}",
            409,
        )
    _, compliant, grade = in_lot[0]
    if not product_eligible(is_compliant=compliant, fusion_grade=grade, lot_id=lot_id):
        raise ProductRegistrationError(
            "sample_not_eligible",
            f"sample {sample_id!r} is not eligible: compliant={compliant}, grade={grade}",
            422,
        )


@dataclass(frozen=True)
class PendingRegistration:
    lot_id: int
    sample_id: str
    site_code: str | None


def products_pending_registration(
    *, grace_seconds: int, max_age_days: int, limit: int = 5000
) -> list[PendingRegistration]:
    """Eligible samples (compliant, not REJECT, with a lot) received between ``max_age_days``
    and ``grace_seconds`` ago that have no product yet, oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT s.lot_id, s.sample_id, s.site_code
            FROM sqal_sensor_samples s
            WHERE gt_product_eligible(s.is_compliant, s.fusion_grade, s.lot_id)
              AND s.received_at <= clock_timestamp() - make_interval(secs => %s)
              AND s.received_at >= clock_timestamp() - make_interval(days => %s)
              AND NOT EXISTS (SELECT 1 FROM consumer_products p WHERE p.sqal_sample_pk = s.id)
            ORDER BY s.received_at
            LIMIT %s
            """,
            [grace_seconds, max_age_days, limit],
        )
        rows = cursor.fetchall()
    return [
        PendingRegistration(lot_id=lot_id, sample_id=sample_id, site_code=site_code or None)
        for lot_id, sample_id, site_code in rows
    ]


# --- What a scan shows of a product (the seed's "traceability" object) -------------------


def product_traceability(product: ConsumerProduct) -> dict[str, Any]:
    """The seed's "traceability" object of the scan response, field for field."""
    gaveur = product.lot.gaveur
    return {
        "product_id": product.product_id,
        "qr_code": product.qr_code,
        "lot": {
            "code_lot": product.lot_code,
            "itm_moyen": product.lot_itm,
            "poids_moyen_final_g": product.lot_mean_final_weight_g,
            "date_debut_gavage": product.lot_feeding_start,
            "date_fin_gavage": product.lot_feeding_end,
            "duree_gavage_jours": product.lot_feeding_days,
            "gaveur": {
                "nom": gaveur.last_name,
                "prenom": gaveur.first_name,
                "site_code": product.site_code,
            },
        },
        "sqal_quality": {
            "fusion_score": product.fusion_score,
            "fusion_grade": product.fusion_grade,
            "is_compliant": product.is_compliant,
            "tof_volume_mm3": product.tof_volume_mm3,
            "tof_surface_uniformity": product.tof_surface_uniformity,
            "spectral_freshness_index": product.spectral_freshness_index,
        },
        "blockchain": {
            "hash": product.blockchain_hash or None,
            "timestamp": product.created_at,
        },
    }
