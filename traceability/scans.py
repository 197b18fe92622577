"""Scans of a product's code: the only writer of the scan tables.

- ``scan_record`` resolves a code and counts the scan in one SQL statement (event row +
  per-product counter and distinct clients; prepared once per database session), one round
  trip, and raises a ``ScanAlert`` when more than ``settings.SCAN_ALERT_THRESHOLD`` distinct
  (client, day) pairs scanned a code; a client's scans past ``SCAN_RECORD_PER_MINUTE`` are
  answered but not stored.
- ``forged_scan_record`` logs a code whose signature does not verify.
- ``product_scan`` is what the consumer edges call: format, signature, then ``scan_record``.
- ``client_hash`` / ``coarse_place`` reduce a request to what we keep: never the IP address.

The statement also reads what the consumer page's cache key needs from the feedback tables
(whether the unit was reviewed, its lot's review figures) by table name, so that a scan stays one
round trip; no Python import of the feedback app is needed for it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from gaveurs.prepared import PreparedStatement
from traceability.models import ForgedScanAttempt, PlaceSource, ScanAlert
from traceability.recalls import recall_state_sql
from traceability.services import parsed_qr_signature_is_valid, qr_parse

logger = logging.getLogger(__name__)


COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
LANGUAGE_REGION_RE = re.compile(r"^[a-zA-Z]{2,3}[-_]([a-zA-Z]{2})\b")


@dataclass(frozen=True)
class ClientOrigin:
    """What we keep of a request: a coarse place and a daily-salted client hash, never the IP."""

    country: str = ""
    place_source: str = PlaceSource.NONE
    client_hash: str = ""


DAILY_SALT_SQL = """
WITH purge AS (
    DELETE FROM traceability_daily_salts WHERE day < %(day)s
), made AS (
    INSERT INTO traceability_daily_salts (day, salt) VALUES (%(day)s, %(salt)s)
    ON CONFLICT (day) DO NOTHING
    RETURNING salt
)
SELECT salt FROM made
UNION ALL
SELECT salt FROM traceability_daily_salts WHERE day = %(day)s
LIMIT 1
"""


def daily_salt(day: str) -> bytes:
    """The random salt of ``day`` (ISO date), the same in every process of the deployment.

    Kept in the cache (shared by every server when CACHE_URL is set, as several servers need
    for rate limits anyway) until the day is over; the database row is where it is made once
    and read by a process that finds no cached copy."""
    key = f"client-hash-salt:{day}"
    salt = cache.get(key)
    if salt is None:
        with connection.cursor() as cursor:
            # Two processes making the day's salt at once: the second one's INSERT waits for the
            # first, then does nothing, and its snapshot (taken before) cannot see the row the
            # first committed. The next statement's snapshot can: ask again.
            for _attempt in range(3):
                cursor.execute(DAILY_SALT_SQL, {"day": day, "salt": secrets.token_bytes(32)})
                row = cursor.fetchone()
                if row is not None:
                    break
            else:
                raise RuntimeError(f"no client-hash salt could be read or made for {day}")
        made = bytes(row[0])
        # add(): a copy another process cached first wins, so every process agrees.
        cache.add(key, made, timeout=_seconds_left_in(day) + 3600)
        salt = cache.get(key, made)
    return salt


def _seconds_left_in(day: str) -> int:
    end = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1)
    return max(60, int((end - timezone.now()).total_seconds()))


def client_hash(*, address: str, day: str | None = None) -> str:
    """16 hex characters of HMAC(salt of the day, address): links a client's requests within a
    day (rate limits, distinct scanners). The salt is random and deleted after its day, so a
    stored hash cannot be turned back into an address afterwards, not even by trying all 2³²
    IPv4 addresses with SECRET_KEY (it is not derived from any setting)."""
    day = day or timezone.now().date().isoformat()
    return hmac.new(daily_salt(day), address.encode(), hashlib.sha256).hexdigest()[:16]


def coarse_place(*, cdn_country: str = "", accept_language: str = "") -> tuple[str, str]:
    """The country of a request: a CDN's country header when present, else the region of the
    browser's first language (``fr-FR`` → ``FR``), else nothing."""
    country = (cdn_country or "").strip().upper()
    if COUNTRY_RE.match(country) and country not in ("XX", "T1"):
        return country, PlaceSource.CDN
    first = (accept_language or "").split(",", 1)[0].strip()
    match = LANGUAGE_REGION_RE.match(first)
    if match:
        return match.group(1).upper(), PlaceSource.LANGUAGE
    return "", PlaceSource.NONE


@dataclass(frozen=True)
class ScanCount:
    """A counted scan, with what decides whether a cached scan page is still right."""

    product_pk: int
    lot_id: int
    # PostgreSQL's row version (xmin) of the product: any change to the record, tampering
    # included, gives the page a new cache key, so the page never shows a stale record.
    record_version: str
    reviewed: bool
    review_count: int
    review_sum: int
    scan_count: int
    distinct_clients: int = 0
    new_client: bool = False
    # The recalls that reach this unit and their state ("12o,15c"; traceability.recalls):
    # part of the page's cache key, so a declaration or closing shows at once, with no
    # per-unit work and no extra round trip.
    recall_state: str = ""
    # The row versions of everything else the consumer page shows (``PAGE_CONTENT_VERSION_SQL``)
    # and the page stored for this unit in the scan's language (feedback.pages): its version
    # and its HTML when the caller asked for it (``page=True``) and does not hold that version
    # already (``known_page``), else None.
    content_version: str = ""
    page_version: str | None = None
    page_html: str | None = None


# The row versions of what a product's consumer page shows besides the unit's reviews, recalls
# and scans: the product, its lot, producer and site, and the latest ledger verification (whose
# findings may name the product). A page stored ahead of its scan (feedback.pages) is shown only
# while this is what it was rendered from. Reads ``p`` (consumer_products) and ``l`` (its lot).
PAGE_CONTENT_VERSION_SQL = """concat_ws('.', p.xmin, l.xmin,
    (SELECT g.xmin FROM gaveurs_gaveur g WHERE g.id = l.gaveur_id),
    (SELECT s.xmin FROM gaveurs_site s WHERE s.id = l.site_id),
    (SELECT v.id FROM ledger_verifications v ORDER BY v.started_at DESC LIMIT 1))"""


def product_content_versions(product_pks: list[int]) -> dict[int, str]:
    """``PAGE_CONTENT_VERSION_SQL`` of these products, by primary key (one query)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT p.id, {PAGE_CONTENT_VERSION_SQL} FROM consumer_products p "
            "JOIN lots_gavage l ON l.id = p.lot_id WHERE p.id = ANY(%s)",
            [list(product_pks)],
        )
        return dict(cursor.fetchall())


# One statement resolves the code and counts the scan (event row + per-product counter), so a
# scan costs one round trip. It also reads what the page's cache key needs: whether this unit
# was reviewed and its lot's visible review figures.
# The transaction commits with synchronous_commit off (set_config(..., true) is local to it): a
# scan is acknowledged without waiting for the WAL flush, which would otherwise dominate the
# page's cost and hold the counter row's lock during the flush. An application crash or restart
# loses nothing (each scan is committed before the page is sent); a crash of PostgreSQL itself
# may lose the scans of its last ~0.6 s (3 x wal_writer_delay), never corrupt the counts.
SCAN_RECORD_SQL = """
WITH product AS (
    SELECT p.id, p.lot_id, p.xmin::text AS record_version, {recall_state} AS recall_state,
           EXISTS (SELECT 1 FROM consumer_feedback f WHERE f.product_id = p.id) AS reviewed,
           COALESCE(s.review_count, 0) AS review_count,
           COALESCE(s.overall_sum, 0) AS review_sum,
           COALESCE(c.scan_count, 0) AS scan_count,
           COALESCE(c.distinct_clients, 0) AS distinct_clients,
           {content_version} AS content_version, pg.version AS page_version,
           CASE WHEN $9 AND pg.version IS DISTINCT FROM $10 THEN pg.html END AS page_html
    FROM consumer_products p
    JOIN lots_gavage l ON l.id = p.lot_id
    LEFT JOIN feedback_lot_review_stats s ON s.lot_id = p.lot_id
    LEFT JOIN feedback_product_scan_stats c ON c.product_id = p.id
    LEFT JOIN feedback_scan_pages pg ON pg.product_id = p.id AND pg.language = $6
    WHERE p.qr_code = $1
), async_commit AS (
    SELECT set_config('synchronous_commit', 'off', true) AS value
), event AS (
    INSERT INTO feedback_scan_events
        (product_id, scanned_at, channel, country, place_source, language, client_hash)
    SELECT product.id, $2, $3, $4, $5, $6, $7
    FROM product WHERE $8
), new_client AS (
    INSERT INTO traceability_product_scan_clients (product_id, client_hash)
    SELECT product.id, $7 FROM product WHERE $8 AND $7 <> ''
    ON CONFLICT DO NOTHING
    RETURNING 1
), counter AS (
    INSERT INTO feedback_product_scan_stats
        (product_id, scan_count, distinct_clients, first_scanned_at, last_scanned_at)
    SELECT product.id, 1, (SELECT count(*) FROM new_client), $2, $2
    FROM product, async_commit WHERE $8
    ON CONFLICT (product_id) DO UPDATE
        SET scan_count = feedback_product_scan_stats.scan_count + 1,
            distinct_clients = feedback_product_scan_stats.distinct_clients
                + EXCLUDED.distinct_clients,
            last_scanned_at = EXCLUDED.last_scanned_at
    RETURNING scan_count, distinct_clients
)
SELECT product.id, product.lot_id, product.record_version, product.reviewed,
       product.review_count, product.review_sum,
       COALESCE((SELECT scan_count FROM counter), product.scan_count),
       COALESCE((SELECT distinct_clients FROM counter), product.distinct_clients),
       EXISTS (SELECT 1 FROM new_client), product.recall_state,
       product.content_version, product.page_version, product.page_html
FROM product
""".replace("{recall_state}", recall_state_sql("$2")).replace(
    "{content_version}", PAGE_CONTENT_VERSION_SQL
)
SCAN_RECORD_PARAMS = (
    "qr_code",
    "now",
    "channel",
    "country",
    "place_source",
    "language",
    "hash",
    "record",
    "page",
    "known_page",
)

# A prepared statement of the database session (``gaveurs.prepared``): planning was most of
# its server time.
SCAN_STATEMENT = PreparedStatement(
    "gaveurs_scan_record_v5",
    ("text", "timestamptz", "text", "text", "text", "text", "text", "boolean", "boolean", "text"),
    SCAN_RECORD_PARAMS,
    SCAN_RECORD_SQL,
)


def _scan_statement_run(params: dict[str, Any]) -> tuple[Any, ...] | None:
    """Run the scan statement on this thread's connection: one round trip."""
    rows = SCAN_STATEMENT.rows(params)
    return rows[0] if rows else None


def scan_recording_allowed(origin: ClientOrigin, *, now_seconds: float | None = None) -> bool:
    """Whether this client's scan is still counted this minute (SCAN_RECORD_PER_MINUTE per
    client hash; the page is served either way). A client without hash is always counted."""
    if not origin.client_hash:
        return True
    minute = int(now_seconds if now_seconds is not None else timezone.now().timestamp()) // 60
    key = f"scan-record:{origin.client_hash}:{minute}"
    cache.add(key, 0, timeout=60)
    return cache.incr(key) <= settings.SCAN_RECORD_PER_MINUTE


def scan_record(
    *,
    qr_code: str,
    channel: str,
    origin: ClientOrigin,
    language: str = "",
    page: bool = False,
    known_page: str = "",
) -> ScanCount | None:
    """Count one scan of the product with this code (None, and nothing counted, when no product
    has it), in one statement that also reads what the page needs.

    A client over SCAN_RECORD_PER_MINUTE gets the same answer without its scan being stored.
    The copied-label alert is raised when the distinct (client, day) pairs that scanned the
    code pass SCAN_ALERT_THRESHOLD: one phone reloading the page cannot raise it. ``page``:
    also return the unit's stored page in ``language`` (``ScanCount.page_html``), unless its
    version is ``known_page`` (the caller holds a copy)."""
    now = timezone.now()
    record = scan_recording_allowed(origin, now_seconds=now.timestamp())
    row = _scan_statement_run(
        {
            "qr_code": qr_code,
            "now": now,
            "channel": channel,
            "country": origin.country,
            "place_source": origin.place_source,
            "language": (language or "")[:8],
            "hash": origin.client_hash,
            "record": record,
            "page": page,
            "known_page": known_page,
        }
    )
    if row is None:
        return None
    scan = ScanCount(*row)
    threshold = settings.SCAN_ALERT_THRESHOLD
    if scan.new_client and scan.distinct_clients == threshold + 1:
        # Distinct clients are atomic increments: exactly one scan crosses the threshold.
        _, created = ScanAlert.objects.get_or_create(
            product_id=scan.product_pk,
            defaults={
                "threshold": threshold,
                "scan_count": scan.scan_count,
                "distinct_clients": scan.distinct_clients,
                "raised_at": now,
            },
        )
        if created:
            logger.warning(
                "Product %s scanned by %s distinct clients (threshold %s): label probably copied",
                scan.product_pk,
                scan.distinct_clients,
                threshold,
            )
    return scan


def forged_scan_record(
    *, code: str, claimed_product_id: str, channel: str, origin: ClientOrigin
) -> ForgedScanAttempt | None:
    """Log a code whose signature does not verify; at most a few per client and minute so a
    bot cannot fill the table. Returns None when the attempt was not stored."""
    key = f"forged-scan:{origin.client_hash}:{int(timezone.now().timestamp()) // 60}"
    cache.add(key, 0, timeout=60)
    if cache.incr(key) > settings.FORGED_SCAN_LOG_PER_MINUTE:
        return None
    logger.warning("Forged or altered QR code scanned: %r", code[:300])
    return ForgedScanAttempt.objects.create(
        code=code[:300],
        claimed_product_id=claimed_product_id[:50],
        attempted_at=timezone.now(),
        channel=channel,
        country=origin.country,
        place_source=origin.place_source,
        client_hash=origin.client_hash,
    )


@dataclass(frozen=True)
class ScanOutcome:
    """``status`` is "ok" (``scan`` set), "unknown", or "forged" (signature does not verify)."""

    status: str
    scan: ScanCount | None = None


def product_scan(
    *,
    qr_code: str,
    channel: str,
    origin: ClientOrigin,
    language: str = "",
    page: bool = False,
    known_page: str = "",
) -> ScanOutcome:
    """Resolve a scanned code and count the scan: one query for a known code.

    1. A code without the QR format is unknown (no query).
    2. A well-formed code whose signature does not verify is logged for staff as forged.
    3. Otherwise the code is looked up and, when a product has it, the scan is counted (which
       may raise the copied-label alert) in the same statement.
    """
    parsed = qr_parse(qr_code)
    if parsed is None:
        return ScanOutcome(status="unknown")
    if not parsed_qr_signature_is_valid(parsed):
        forged_scan_record(
            code=qr_code, claimed_product_id=parsed.product_id, channel=channel, origin=origin
        )
        return ScanOutcome(status="forged")
    scan = scan_record(
        qr_code=qr_code,
        channel=channel,
        origin=origin,
        language=language,
        page=page,
        known_page=known_page,
    )
    if scan is None:
        return ScanOutcome(status="unknown")
    return ScanOutcome(status="ok", scan=scan)
