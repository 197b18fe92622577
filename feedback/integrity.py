"""Stored aggregates of feedback, recomputed from raw rows (``manage.py check_integrity``).

- lot review statistics (``feedback_lot_review_stats``) against the lot's visible reviews;
- per-product scan counters (``feedback_product_scan_stats``) against the scan events (at
  least those left, for a product first scanned before the events' retention cutoff);
- review flags: a hidden review has a reason, a shown one has none.
Each check returns one line per difference; an empty list means the stored figures are true.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from traceability.integrity import ledger_differences

LIMIT = 50

LOT_REVIEW_STATS_SQL = """
WITH truth AS (
    SELECT p.lot_id, count(*) AS review_count,
           sum(f.overall_rating) AS overall_sum, sum(f.taste_rating) AS taste_sum,
           sum(f.texture_rating) AS texture_sum, sum(f.appearance_rating) AS appearance_sum,
           sum(f.value_rating) AS value_sum
    FROM consumer_feedback f JOIN consumer_products p ON p.id = f.product_id
    WHERE NOT f.is_hidden
    GROUP BY p.lot_id
)
SELECT coalesce(t.lot_id, s.lot_id),
       coalesce(s.review_count, 0), coalesce(t.review_count, 0),
       coalesce(s.overall_sum, 0), coalesce(t.overall_sum, 0),
       coalesce(s.taste_sum, 0) + coalesce(s.texture_sum, 0) + coalesce(s.appearance_sum, 0)
           + coalesce(s.value_sum, 0),
       coalesce(t.taste_sum, 0) + coalesce(t.texture_sum, 0) + coalesce(t.appearance_sum, 0)
           + coalesce(t.value_sum, 0)
FROM truth t FULL JOIN feedback_lot_review_stats s ON s.lot_id = t.lot_id
WHERE (coalesce(s.review_count, 0), coalesce(s.overall_sum, 0), coalesce(s.taste_sum, 0),
       coalesce(s.texture_sum, 0), coalesce(s.appearance_sum, 0), coalesce(s.value_sum, 0))
   IS DISTINCT FROM
      (coalesce(t.review_count, 0), coalesce(t.overall_sum, 0), coalesce(t.taste_sum, 0),
       coalesce(t.texture_sum, 0), coalesce(t.appearance_sum, 0), coalesce(t.value_sum, 0))
ORDER BY 1
LIMIT %s
"""

# Counters are for the product's whole life; scan events older than RETENTION_SCAN_EVENTS_DAYS
# are purged (manage.py purge_expired). A product first scanned before that cutoff may have lost
# events, so its counters may only be larger than what remains (and its last scan the same).
SCAN_COUNTERS_SQL = """
WITH truth AS (
    SELECT product_id, count(*) AS n, min(scanned_at) AS first, max(scanned_at) AS last,
           count(DISTINCT client_hash) FILTER (WHERE client_hash <> '') AS clients
    FROM feedback_scan_events GROUP BY product_id
)
SELECT coalesce(t.product_id, s.product_id), coalesce(s.scan_count, 0), coalesce(t.n, 0)
FROM truth t FULL JOIN feedback_product_scan_stats s ON s.product_id = t.product_id
WHERE CASE WHEN s.first_scanned_at < %s THEN
    s.scan_count < coalesce(t.n, 0)
    OR s.distinct_clients < coalesce(t.clients, 0)
    OR (t.last IS NOT NULL AND s.last_scanned_at IS DISTINCT FROM t.last)
ELSE
    coalesce(s.scan_count, 0) <> coalesce(t.n, 0)
    OR coalesce(s.distinct_clients, 0) <> coalesce(t.clients, 0)
    OR s.first_scanned_at IS DISTINCT FROM t.first
    OR s.last_scanned_at IS DISTINCT FROM t.last
END
ORDER BY 1
LIMIT %s
"""

REVIEW_FLAGS_SQL = """
SELECT id, is_hidden FROM consumer_feedback
WHERE (is_hidden AND hidden_reason = '') OR (NOT is_hidden AND hidden_reason <> '')
ORDER BY id
LIMIT %s
"""


def _rows(sql: str, *params: object) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, LIMIT])
        return cursor.fetchall()


def lot_review_stats_differences() -> list[str]:
    return [
        f"lot review stats: lot {lot_id} stores {count} reviews (overall sum {overall}, other "
        f"sums {others}), its visible reviews give {true_count} ({true_overall}, {true_others})"
        for lot_id, count, true_count, overall, true_overall, others, true_others in _rows(
            LOT_REVIEW_STATS_SQL
        )
    ]


def _scan_events_cutoff() -> datetime:
    return timezone.now() - timedelta(days=settings.RETENTION_SCAN_EVENTS_DAYS)


def scan_counter_differences() -> list[str]:
    return [
        f"scan counters: product #{pk} stores {stored} scans, its scan events give {true}"
        f" (or its distinct clients or first/last scan times differ)"
        for pk, stored, true in _rows(SCAN_COUNTERS_SQL, _scan_events_cutoff())
    ]


def review_flag_differences() -> list[str]:
    return [
        f"review flags: review #{pk} is {'hidden without' if hidden else 'shown with'} a reason"
        for pk, hidden in _rows(REVIEW_FLAGS_SQL)
    ]


def integrity_differences() -> list[str]:
    """Every check of the project (this app's and the ledger's), in one list."""
    return [
        *lot_review_stats_differences(),
        *scan_counter_differences(),
        *review_flag_differences(),
        *ledger_differences(),
    ]
