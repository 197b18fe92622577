"""Reads of the consumer pages: a product with its review state, in one query.

The query is what ``ConsumerProduct.objects.select_related("lot__gaveur", "lot__site",
"lot__review_stats", "feedback").get(qr_code=...)`` sends, written once per process from the
models' metadata: Django compiles that six-table ``select_related`` again on every call, which
cost more CPU than the rest of the query (``bench/scan.py``'s cold path renders a page per scan).
The rows become model instances the way ``select_related`` makes them (``Model.from_db``, the
relations' caches filled, the missing reverse one-to-ones cached as absent), so the page and
the API use them without another query.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Field, Model

from feedback.models import ConsumerFeedback, LotReviewStats
from gaveurs.models import Gaveur, Lot, Site
from traceability.models import ConsumerProduct
from traceability.services import qr_parse


@dataclass(frozen=True)
class _Part:
    model: type[Model]
    alias: str
    fields: tuple[Field, ...]
    converters: tuple[tuple[int, tuple[Any, ...]], ...]  # (column index, converters)


@dataclass(frozen=True)
class _ScanQuery:
    sql: str
    parts: tuple[_Part, ...]  # product, lot, gaveur, site, review stats, review


def _part(model: type[Model], alias: str) -> _Part:
    fields = tuple(model._meta.concrete_fields)
    converters = []
    for i, field in enumerate(fields):
        found = field.get_db_converters(connection) + connection.ops.get_db_converters(
            field.get_col(alias)
        )
        if found:
            converters.append((i, tuple(found)))
    return _Part(model, alias, fields, tuple(converters))


@functools.cache
def _scan_query() -> _ScanQuery:
    q = connection.ops.quote_name

    def columns(part: _Part) -> str:
        return ", ".join(f"{part.alias}.{q(f.column)}" for f in part.fields)

    def join(child: type[Model], fk: str, alias: str, parent: str) -> str:
        """``alias.fk_column = parent.target_column`` for the foreign key ``child.fk``."""
        field = child._meta.get_field(fk)
        return f"{alias}.{q(field.column)} = {parent}.{q(field.target_field.column)}"

    parts = (
        _part(ConsumerProduct, "p"),
        _part(Lot, "l"),
        _part(Gaveur, "g"),
        _part(Site, "s"),
        _part(LotReviewStats, "rs"),
        _part(ConsumerFeedback, "f"),
    )
    stats_fk = Lot._meta.get_field("review_stats").field.name
    review_fk = ConsumerProduct._meta.get_field("feedback").field.name
    sql = (
        f"SELECT {', '.join(columns(part) for part in parts)} "
        f"FROM {q(ConsumerProduct._meta.db_table)} p "
        f"INNER JOIN {q(Lot._meta.db_table)} l ON {join(ConsumerProduct, 'lot', 'p', 'l')} "
        f"INNER JOIN {q(Gaveur._meta.db_table)} g ON {join(Lot, 'gaveur', 'l', 'g')} "
        f"INNER JOIN {q(Site._meta.db_table)} s ON {join(Lot, 'site', 'l', 's')} "
        f"LEFT OUTER JOIN {q(LotReviewStats._meta.db_table)} rs "
        f"ON {join(LotReviewStats, stats_fk, 'rs', 'l')} "
        f"LEFT OUTER JOIN {q(ConsumerFeedback._meta.db_table)} f "
        f"ON {join(ConsumerFeedback, review_fk, 'f', 'p')} "
        f"WHERE p.{q(ConsumerProduct._meta.get_field('qr_code').column)} = %s"
    )
    return _ScanQuery(sql, parts)


def _instance(part: _Part, values: list[Any]) -> Model | None:
    """One model instance from its slice of the row; None for a LEFT JOIN that found nothing."""
    pk_index = part.fields.index(part.model._meta.pk)
    if values[pk_index] is None:
        return None
    for i, converters in part.converters:
        for converter in converters:
            values[i] = converter(values[i], part.fields[i].get_col(part.alias), connection)
    return part.model.from_db(connection.alias, [f.attname for f in part.fields], values)


def product_for_scan(*, qr_code: str) -> ConsumerProduct | None:
    """The product and all the scan page shows, in one query: lot, producer, site, this unit's
    review (if any) and the lot's stored review statistics. None for an unknown code."""
    if qr_parse(qr_code) is None:
        return None
    query = _scan_query()
    with connection.cursor() as cursor:
        cursor.execute(query.sql, [qr_code])
        row = cursor.fetchone()
    if row is None:
        return None
    instances = []
    start = 0
    for part in query.parts:
        end = start + len(part.fields)
        instances.append(_instance(part, list(row[start:end])))
        start = end
    product, lot, gaveur, site, stats, review = instances
    # The relations' caches, as select_related fills them (both sides of each one-to-one).
    ConsumerProduct._meta.get_field("lot").set_cached_value(product, lot)
    Lot._meta.get_field("gaveur").set_cached_value(lot, gaveur)
    Lot._meta.get_field("site").set_cached_value(lot, site)
    stats_rel = Lot._meta.get_field("review_stats")
    stats_rel.set_cached_value(lot, stats)
    if stats is not None:
        stats_rel.field.set_cached_value(stats, lot)
    review_rel = ConsumerProduct._meta.get_field("feedback")
    review_rel.set_cached_value(product, review)
    if review is not None:
        review_rel.field.set_cached_value(review, product)
    return product
