"""Recalls and withdrawals: declaring one, closing it, and which units it reaches.

A declaration stores its scope, never the units: one or more lots (``recall_lots``), a site
over production days, or a list of products (``recall_products``). Whether a unit is recalled
is one query over the scopes (``RECALL_MATCH_TEMPLATE``, also inside the scan statement of
``traceability.scans``, so the cached scan page knows a unit's recall state in the same round
trip). Declaring a recall over any number of units therefore writes a handful of rows; the
preview, the staff reach and the CSV export read the units with set-based queries.

Rows are append-only (migration ``traceability/0013``: a trigger refuses UPDATE and DELETE);
closing is a ``RecallClosure``. Each declaration and each closing is sealed in the ledger in the
transaction that writes it (``traceability.ledger.ledger_append_recall``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Max, Min, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from gaveurs.models import Lot, Site
from traceability.ledger import (
    ledger_append_recall,
    ledger_append_recall_closure,
    recall_closure_record,
    recall_proof,
    recall_record,
)
from traceability.models import (
    ConsumerProduct,
    Recall,
    RecallClosure,
    RecallKind,
    RecallLot,
    RecallProduct,
    RecallScope,
)
from traceability.qr import scan_url


class RecallError(Exception):
    """A declaration or closing that cannot be made; ``field`` names the input at fault."""

    def __init__(self, code: str, detail: str, field: str = "") -> None:
        super().__init__(detail)
        self.code, self.detail, self.field = code, detail, field


# --- Which units a recall reaches -----------------------------------------------------------

# The recalls that reach product ``p`` (an alias in the enclosing query) and have started by
# ``{now}``: by its lot, by its own id, or by its site and production day (in TIME_ZONE). Each
# branch is an index lookup driven by the product (recall_lots_lot_idx,
# recall_products_product_idx, the recalls' site index), then the recall by its key: the cost
# does not grow with the number of recalls. A recall has one scope, so no branch repeats one.
RECALL_MATCH_TEMPLATE = """
SELECT r.id FROM (
    SELECT rl.recall_id FROM recall_lots rl WHERE rl.lot_id = p.lot_id
    UNION ALL
    SELECT rp.recall_id FROM recall_products rp WHERE rp.product_id = p.id
    UNION ALL
    SELECT rs.id FROM recalls rs
    WHERE rs.site_id = (SELECT s.id FROM gaveurs_site s WHERE s.code = p.site_code)
      AND rs.scope = 'site_dates'
      AND (p.created_at AT TIME ZONE '{tz}')::date BETWEEN rs.produced_from AND rs.produced_until
) m (recall_id)
JOIN recalls r ON r.id = m.recall_id
WHERE r.starts_at <= {now}
"""


def recall_match_sql(now: str) -> str:
    """``RECALL_MATCH_TEMPLATE`` with ``now`` (an SQL expression or parameter placeholder)."""
    return RECALL_MATCH_TEMPLATE.format(now=now, tz=settings.TIME_ZONE)


# A unit's recall state for cache keys: "<id><o|c>" per recall reaching it, e.g. "12o,15c";
# empty when none. Any declaration or closing that reaches the unit changes it.
RECALL_STATE_TEMPLATE = """
COALESCE((
    SELECT string_agg(
        m.id::text || CASE WHEN EXISTS (
            SELECT 1 FROM recall_closures c WHERE c.recall_id = m.id) THEN 'c' ELSE 'o' END,
        ',' ORDER BY m.id)
    FROM ({match}) m
), '')
"""


def recall_state_sql(now: str) -> str:
    return RECALL_STATE_TEMPLATE.format(match=recall_match_sql(now))


def recall_scope_products(
    *,
    scope: str,
    lot_ids: Sequence[int] = (),
    site: Site | None = None,
    produced_from: date | None = None,
    produced_until: date | None = None,
    product_pks: Sequence[int] = (),
) -> QuerySet[ConsumerProduct]:
    """The units a scope reaches (before or after it is declared): one set-based query."""
    products = ConsumerProduct.objects.all()
    if scope == RecallScope.LOTS:
        return products.filter(lot_id__in=lot_ids)
    if scope == RecallScope.PRODUCTS:
        return products.filter(pk__in=product_pks)
    if scope == RecallScope.SITE_DATES:
        if site is None or produced_from is None or produced_until is None:
            return products.none()
        return products.filter(
            site_code=site.code, created_at__date__range=(produced_from, produced_until)
        )
    return products.none()


def product_pks(product_ids: Sequence[str]) -> list[int]:
    """Primary keys of the products with these public ids (unknown ids are left out)."""
    return list(
        ConsumerProduct.objects.filter(product_id__in=list(product_ids)).values_list(
            "pk", flat=True
        )
    )


def recall_affected_products(recall: Recall) -> QuerySet[ConsumerProduct]:
    """The units a declared recall reaches (the same rule as ``RECALL_MATCH_TEMPLATE``)."""
    return recall_scope_products(
        scope=recall.scope,
        lot_ids=RecallLot.objects.filter(recall=recall).values_list("lot_id", flat=True),
        site=recall.site,
        produced_from=recall.produced_from,
        produced_until=recall.produced_until,
        product_pks=RecallProduct.objects.filter(recall=recall).values_list(
            "product_id", flat=True
        ),
    )


def recalls_for_lot(lot: Lot, *, now: datetime | None = None) -> QuerySet[Recall]:
    """The started recalls that reach units of this lot (by the lot, a listed unit of it, or
    its site and a production day of one of its units), oldest first. One query."""
    site_days = RawSQL(
        "SELECT r.id FROM recalls r WHERE r.scope = 'site_dates' AND EXISTS ("
        "SELECT 1 FROM consumer_products p WHERE p.lot_id = %s "
        f"AND (p.created_at AT TIME ZONE '{settings.TIME_ZONE}')::date "
        "BETWEEN r.produced_from AND r.produced_until "
        "AND p.site_code = (SELECT s.code FROM gaveurs_site s WHERE s.id = r.site_id))",
        [lot.pk],
    )
    return (
        Recall.objects.filter(starts_at__lte=now or timezone.now())
        .filter(
            Q(id__in=RecallLot.objects.filter(lot=lot).values("recall_id"))
            | Q(id__in=RecallProduct.objects.filter(product__lot=lot).values("recall_id"))
            | Q(id__in=site_days)
        )
        .select_related("closure")
        .order_by("starts_at", "pk")
    )


@dataclass(frozen=True)
class RecallPreview:
    units: int
    lots: list[dict[str, Any]]  # {"lot_id", "lot_code", "units", "first", "last"}, by lot code


def recall_preview(units: QuerySet[ConsumerProduct]) -> RecallPreview:
    """How many units a scope reaches, and from which lots: one grouped query."""
    lots = list(
        units.order_by()
        .values("lot_id", "lot_code")
        .annotate(units=Count("id"), first=Min("created_at"), last=Max("created_at"))
        .order_by("lot_code")
    )
    return RecallPreview(units=sum(lot["units"] for lot in lots), lots=lots)


def recall_for_product(product: ConsumerProduct, *, now: datetime | None = None) -> Recall | None:
    """The recall a consumer is shown for this unit: the newest open one, else the newest
    closed one; None when no started recall reaches it. One query."""
    matching = RawSQL(
        f"SELECT m.id FROM consumer_products p, LATERAL ({recall_match_sql('%s')}) m "
        "WHERE p.id = %s",
        [now or timezone.now(), product.pk],
    )
    return (
        Recall.objects.select_related("closure", "site")
        .filter(id__in=matching)
        .order_by(F("closure__id").asc(nulls_first=True), "-declared_at")
        .first()
    )


def recall_public(recall: Recall | None, *, language: str = "fr") -> dict[str, Any] | None:
    """The ``recall`` object of the consumer scan API (``null`` when none)."""
    if recall is None:
        return None
    closure = getattr(recall, "closure", None)
    return {
        "status": "closed" if closure is not None else "active",
        "kind": recall.kind,
        "reason": recall.reason,
        "instructions": {"fr": recall.instructions_fr, "en": recall.instructions_en},
        "instructions_text": recall.instructions_en
        if language.startswith("en")
        else recall.instructions_fr,
        "declared_at": recall.declared_at,
        "starts_at": recall.starts_at,
        "reference": recall.reference,
        "closed_at": closure.closed_at if closure else None,
        "closing_reason": closure.reason if closure else None,
    }


# --- Writers ---------------------------------------------------------------------------------


@transaction.atomic
def recall_declare(
    *,
    kind: str,
    reference: str,
    reason: str,
    instructions_fr: str,
    instructions_en: str,
    starts_at: datetime,
    scope: str,
    lot_ids: Sequence[int] = (),
    site: Site | None = None,
    produced_from: date | None = None,
    produced_until: date | None = None,
    product_ids: Sequence[str] = (),
    declared_by: Any = None,
) -> Recall:
    """Declare a recall or withdrawal over a scope and seal it in the ledger.

    Writes the recall, its scope rows (one INSERT ... SELECT each, whatever their number) and
    one ledger leaf: no per-unit work.
    """
    if kind not in RecallKind.values:
        raise RecallError("invalid_kind", f"kind must be one of {RecallKind.values}", field="kind")
    for name, value in (
        ("reference", reference),
        ("reason", reason),
        ("instructions_fr", instructions_fr),
        ("instructions_en", instructions_en),
    ):
        if not value.strip():
            raise RecallError("required", f"{name} is required", field=name)
    if Recall.objects.filter(reference=reference).exists():
        raise RecallError("duplicate_reference", f"reference {reference!r} is taken", "reference")
    lot_ids = sorted(set(lot_ids))
    product_ids = sorted({p.strip() for p in product_ids if p.strip()})
    if scope == RecallScope.LOTS:
        found = set(Lot.objects.filter(pk__in=lot_ids).values_list("pk", flat=True))
        if not lot_ids or found != set(lot_ids):
            raise RecallError("unknown_lots", "choose one or more existing lots", field="lots")
    elif scope == RecallScope.SITE_DATES:
        if site is None or produced_from is None or produced_until is None:
            raise RecallError("incomplete_scope", "a site and both dates are required", "site")
        if produced_from > produced_until:
            raise RecallError("date_order", "the first day is after the last", "produced_from")
    elif scope == RecallScope.PRODUCTS:
        known = set(
            ConsumerProduct.objects.filter(product_id__in=product_ids).values_list(
                "product_id", flat=True
            )
        )
        unknown = [p for p in product_ids if p not in known]
        if not product_ids or unknown:
            detail = f"unknown product ids: {', '.join(unknown[:10])}" if unknown else ""
            raise RecallError("unknown_products", detail or "list product ids", "product_ids")
    else:
        raise RecallError("invalid_scope", f"scope must be one of {RecallScope.values}", "scope")
    site_scope = scope == RecallScope.SITE_DATES
    recall = Recall.objects.create(
        kind=kind,
        reference=reference.strip(),
        reason=reason.strip(),
        instructions_fr=instructions_fr.strip(),
        instructions_en=instructions_en.strip(),
        starts_at=starts_at,
        scope=scope,
        site=site if site_scope else None,
        produced_from=produced_from if site_scope else None,
        produced_until=produced_until if site_scope else None,
        declared_at=timezone.now(),
        declared_by=declared_by,
    )
    with connection.cursor() as cursor:
        if scope == RecallScope.LOTS:
            cursor.execute(
                "INSERT INTO recall_lots (recall_id, lot_id) SELECT %s, unnest(%s::bigint[])",
                [recall.pk, lot_ids],
            )
        elif scope == RecallScope.PRODUCTS:
            cursor.execute(
                "INSERT INTO recall_products (recall_id, product_id) "
                "SELECT %s, id FROM consumer_products WHERE product_id = ANY(%s::text[])",
                [recall.pk, product_ids],
            )
    ledger_append_recall(recall=recall)
    return recall


@transaction.atomic
def recall_close(*, recall: Recall, reason: str, closed_by: Any = None) -> RecallClosure:
    """Close a recall with a reason: a new record, sealed in the ledger."""
    if not reason.strip():
        raise RecallError("required", "a reason for closing is required", field="reason")
    if RecallClosure.objects.filter(recall=recall).exists():
        raise RecallError("already_closed", f"recall {recall.reference} is already closed")
    closure = RecallClosure.objects.create(
        recall=recall, reason=reason.strip(), closed_at=timezone.now(), closed_by=closed_by
    )
    ledger_append_recall_closure(closure=closure)
    return closure


# --- Reach, for staff --------------------------------------------------------------------------

REACH_SCANS_SQL = """
SELECT (e.scanned_at AT TIME ZONE %s)::date AS day, e.country,
       count(*), count(DISTINCT e.product_id)
FROM feedback_scan_events e
WHERE e.product_id IN ({units}) AND e.scanned_at >= %s
GROUP BY 1, 2 ORDER BY 1 DESC, 3 DESC
"""


def recall_reach(recall: Recall) -> dict[str, Any]:
    """What staff see of a recall's reach: units, units scanned since the declaration (per day
    and coarse place), reviews left on affected units. A few set-based queries."""
    from_time = min(recall.declared_at, recall.starts_at)
    units = recall_affected_products(recall)
    preview = recall_preview(units)
    sql, params = units.values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(REACH_SCANS_SQL.format(units=sql), [settings.TIME_ZONE, *params, from_time])
        scans = [
            {"day": day, "country": country or "?", "scans": n, "units": u}
            for day, country, n, u in cursor.fetchall()
        ]
        cursor.execute(
            f"SELECT count(DISTINCT e.product_id) FROM feedback_scan_events e "
            f"WHERE e.product_id IN ({sql}) AND e.scanned_at >= %s",
            [*params, from_time],
        )
        (scanned_units,) = cursor.fetchone()
        cursor.execute(
            "SELECT f.product_id, p.product_id, f.overall_rating, f.comment, f.created_at "
            f"FROM consumer_feedback f JOIN consumer_products p ON p.id = f.product_id "
            f"WHERE f.product_id IN ({sql}) ORDER BY f.created_at DESC LIMIT 200",
            params,
        )
        reviews = [
            {"product_id": pid, "overall": o, "comment": c, "created_at": t}
            for _, pid, o, c, t in cursor.fetchall()
        ]
    return {
        "units": preview.units,
        "lots": preview.lots,
        "scanned_units": scanned_units,
        "scans": scans,
        "reviews": reviews,
        "since": from_time,
    }


CSV_HEADER = [
    "product_id",
    "qr_url",
    "lot",
    "site",
    "sample",
    "created_at",
    "lot_feeding_start",
    "lot_feeding_end",
    "scans",
    "first_scanned_at",
    "last_scanned_at",
]


def recall_units_csv(recall: Recall, *, chunk_size: int = 2000) -> Iterator[list[Any]]:
    """The affected units as CSV rows, header first (``CSV_HEADER``), read in chunks with a
    server-side cursor."""
    yield CSV_HEADER
    rows = (
        recall_affected_products(recall)
        .order_by("pk")
        .values_list(
            "product_id",
            "qr_code",
            "lot_code",
            "site_code",
            "sqal_sample_id",
            "created_at",
            "lot_feeding_start",
            "lot_feeding_end",
            "scan_stats__scan_count",
            "scan_stats__first_scanned_at",
            "scan_stats__last_scanned_at",
        )
        .iterator(chunk_size=chunk_size)
    )
    for pid, qr, lot, site, sample, created, start, end, scans, first, last in rows:
        yield [
            pid,
            scan_url(qr),
            lot,
            site,
            sample,
            created.isoformat(),
            start.isoformat() if start else "",
            end.isoformat() if end else "",
            scans or 0,
            first.isoformat() if first else "",
            last.isoformat() if last else "",
        ]


# --- What a consumer is shown -------------------------------------------------------------------


def recall_notice(recall: Recall, *, language: str = "fr") -> dict[str, Any]:
    """Context of the scan page's recall banner: the recall, its closing if any, the
    instructions in the page's language, and each sealed entry (declaration, closing) with its
    record and inclusion proof, for the browser to verify (static/traceability/ledger.js)."""
    closure = getattr(recall, "closure", None)
    entries = [{"kind": "recall", "record": recall_record(recall), "proof": recall_proof(recall)}]
    if closure is not None:
        entries.append(
            {
                "kind": "recall_closure",
                "record": recall_closure_record(closure),
                "proof": recall_proof(closure),
            }
        )
    english = language.startswith("en")
    return {
        "recall": recall,
        "closure": closure,
        "status": "closed" if closure is not None else "active",
        "withdrawal": recall.kind == RecallKind.WITHDRAWAL,
        "instructions": recall.instructions_en if english else recall.instructions_fr,
        "payload": {"entries": entries},
    }
