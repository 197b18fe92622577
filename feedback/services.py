"""Consumer feedback and scan tracking: the only writers of the feedback app's tables.

- ``feedback_submit`` stores one review per product unit and keeps ``LotReviewStats`` in step;
  ``feedback_hide`` / ``feedback_unhide`` moderate (hidden reviews are kept, not counted).
- ``scan_record`` resolves a code and counts the scan in one SQL statement (event row +
  per-product counter; prepared once per database session), one round trip, and raises a
  ``ScanAlert`` when a code is scanned more than ``settings.SCAN_ALERT_THRESHOLD`` times.
- ``forged_scan_record`` logs a code whose signature does not verify.
- ``client_hash`` / ``coarse_place`` reduce a request to what we keep: never the IP address.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, ProgrammingError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from psycopg import errors as psycopg_errors

from feedback.models import (
    COMMENT_MAX_LENGTH,
    RATING_FIELDS,
    ConsumerFeedback,
    ForgedScanAttempt,
    LotReviewStats,
    PlaceSource,
    ScanAlert,
)
from traceability.models import ConsumerProduct

logger = logging.getLogger(__name__)

THANK_YOU_MESSAGE = _("Merci pour votre retour ! Il nous aidera à améliorer nos produits.")
STATS_FIELDS = {f: f.replace("_rating", "_sum") for f in RATING_FIELDS}


class FeedbackError(Exception):
    """A review refused; ``code`` is stable, ``field`` names the input at fault."""

    def __init__(self, code: str, field: str, detail: str, status: int) -> None:
        super().__init__(detail)
        self.code = code
        self.field = field
        self.detail = detail
        self.status = status


def reward_points() -> int:
    return settings.FEEDBACK_REWARD_POINTS


def _ratings_check(ratings: dict[str, Any]) -> None:
    for field, value in ratings.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            raise FeedbackError(
                "invalid_rating", field, f"{field} must be an integer from 1 to 5.", 422
            )


def feedback_submit(
    *,
    qr_code: str,
    overall_rating: int,
    taste_rating: int,
    texture_rating: int,
    appearance_rating: int,
    value_rating: int,
    comment: str = "",
    consent_to_publish: bool = False,
    language: str = "",
) -> ConsumerFeedback:
    """Store the review of one product unit and add it to its lot's statistics.

    Raises ``FeedbackError``: a rating outside 1–5 or a comment too long (422), an unknown code
    (404), a unit already reviewed (409).
    """
    ratings = {
        "overall_rating": overall_rating,
        "taste_rating": taste_rating,
        "texture_rating": texture_rating,
        "appearance_rating": appearance_rating,
        "value_rating": value_rating,
    }
    _ratings_check(ratings)
    comment = (comment or "").strip()
    if len(comment) > COMMENT_MAX_LENGTH:
        raise FeedbackError(
            "comment_too_long", "comment", f"comment is limited to {COMMENT_MAX_LENGTH}.", 422
        )
    product = ConsumerProduct.objects.filter(qr_code=qr_code).only("id", "lot_id").first()
    if product is None:
        raise FeedbackError("unknown_qr_code", "qr_code", "No product has this QR code.", 404)
    try:
        with transaction.atomic():
            feedback = ConsumerFeedback.objects.create(
                product=product,
                comment=comment,
                consent_to_publish=consent_to_publish,
                reward_points=reward_points(),
                language=(language or "")[:8],
                **ratings,
            )
            _stats_add(lot_id=product.lot_id, feedback=feedback, sign=1)
    except IntegrityError as exc:
        # The one-to-one on product: this unit already has a review (possibly a concurrent one).
        if ConsumerFeedback.objects.filter(product_id=product.id).exists():
            raise FeedbackError(
                "already_reviewed", "qr_code", "This product unit has already been reviewed.", 409
            ) from exc
        raise
    return feedback


def _stats_add(*, lot_id: int, feedback: ConsumerFeedback, sign: int) -> None:
    """Add (sign=1) or remove (sign=-1) one visible review from its lot's sums."""
    LotReviewStats.objects.get_or_create(lot_id=lot_id)
    LotReviewStats.objects.filter(lot_id=lot_id).update(
        review_count=F("review_count") + sign,
        **{s: F(s) + sign * getattr(feedback, f) for f, s in STATS_FIELDS.items()},
        updated_at=timezone.now(),
    )


def feedback_hide(*, feedback_id: int, reason: str) -> ConsumerFeedback:
    """Hide a review from the public figures, with the moderator's reason. The review is kept."""
    reason = (reason or "").strip()
    if not reason:
        raise FeedbackError("reason_required", "hidden_reason", "Give a reason to hide.", 422)
    with transaction.atomic():
        feedback = ConsumerFeedback.objects.select_for_update().get(pk=feedback_id)
        lot_id = ConsumerProduct.objects.values_list("lot_id", flat=True).get(
            pk=feedback.product_id
        )
        if not feedback.is_hidden:
            _stats_add(lot_id=lot_id, feedback=feedback, sign=-1)
        feedback.is_hidden = True
        feedback.hidden_reason = reason[:200]
        feedback.save(update_fields=["is_hidden", "hidden_reason"])
    return feedback


def feedback_unhide(*, feedback_id: int) -> ConsumerFeedback:
    """Show a hidden review again (it counts in its lot's figures again)."""
    with transaction.atomic():
        feedback = ConsumerFeedback.objects.select_for_update().get(pk=feedback_id)
        if feedback.is_hidden:
            lot_id = ConsumerProduct.objects.values_list("lot_id", flat=True).get(
                pk=feedback.product_id
            )
            _stats_add(lot_id=lot_id, feedback=feedback, sign=1)
            feedback.is_hidden = False
            feedback.hidden_reason = ""
            feedback.save(update_fields=["is_hidden", "hidden_reason"])
    return feedback


# Recomputes lots' review sums from their visible reviews, one statement for any number of lots.
LOT_REVIEW_STATS_REFRESH_SQL = """
INSERT INTO feedback_lot_review_stats AS s
    (lot_id, review_count, overall_sum, taste_sum, texture_sum, appearance_sum, value_sum,
     updated_at)
SELECT l.id, count(f.id),
       coalesce(sum(f.overall_rating), 0), coalesce(sum(f.taste_rating), 0),
       coalesce(sum(f.texture_rating), 0), coalesce(sum(f.appearance_rating), 0),
       coalesce(sum(f.value_rating), 0), now()
FROM lots_gavage l
LEFT JOIN consumer_products p ON p.lot_id = l.id
LEFT JOIN consumer_feedback f ON f.product_id = p.id AND NOT f.is_hidden
WHERE l.id = ANY(%s::bigint[])
GROUP BY l.id
ON CONFLICT (lot_id) DO UPDATE SET
    review_count = EXCLUDED.review_count, overall_sum = EXCLUDED.overall_sum,
    taste_sum = EXCLUDED.taste_sum, texture_sum = EXCLUDED.texture_sum,
    appearance_sum = EXCLUDED.appearance_sum, value_sum = EXCLUDED.value_sum,
    updated_at = EXCLUDED.updated_at
"""


def lot_review_stats_refresh(*, lot_ids: Iterable[int]) -> None:
    """Recompute the sums of these lots from their visible reviews (bulk writers, repair)."""
    ids = sorted(set(lot_ids))
    if not ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(LOT_REVIEW_STATS_REFRESH_SQL, [ids])


def lot_review_stats_rebuild(*, lot_id: int) -> LotReviewStats:
    """Recompute one lot's sums from its visible reviews (repair; the running sums agree)."""
    lot_review_stats_refresh(lot_ids=[lot_id])
    return LotReviewStats.objects.get(lot_id=lot_id)


@transaction.atomic
def feedback_bulk_import(*, reviews: Sequence[ConsumerFeedback]) -> int:
    """The bulk path beside ``feedback_submit`` (history import, demo and synthetic data):
    store unsaved reviews of distinct product units and recompute their lots' sums in the same
    transaction, so the scan page and moderation see them like submitted ones."""
    for review in reviews:
        _ratings_check({f: getattr(review, f) for f in RATING_FIELDS})
        if len(review.comment or "") > COMMENT_MAX_LENGTH:
            raise FeedbackError(
                "comment_too_long", "comment", f"comment is limited to {COMMENT_MAX_LENGTH}.", 422
            )
    ConsumerFeedback.objects.bulk_create(reviews, batch_size=5000)
    lot_review_stats_refresh(
        lot_ids=ConsumerProduct.objects.filter(
            pk__in=[review.product_id for review in reviews]
        ).values_list("lot_id", flat=True)
    )
    return len(reviews)


def feedback_rate_limited(*, client_key: str) -> bool:
    """Count one feedback attempt of this client; True once it exceeds the allowed rate.

    A fixed window in Django's cache (per process with the default local-memory cache, shared
    with a Redis or Memcached cache).
    """
    window = settings.FEEDBACK_RATE_WINDOW_SECONDS
    key = f"feedback-rate:{client_key}:{int(timezone.now().timestamp()) // window}"
    cache.add(key, 0, timeout=window)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window)
        count = 1
    return count > settings.FEEDBACK_RATE_LIMIT


# --- scans ---------------------------------------------------------------------------------

COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
LANGUAGE_REGION_RE = re.compile(r"^[a-zA-Z]{2,3}[-_]([a-zA-Z]{2})\b")


@dataclass(frozen=True)
class ClientOrigin:
    """What we keep of a request: a coarse place and a daily-salted client hash, never the IP."""

    country: str = ""
    place_source: str = PlaceSource.NONE
    client_hash: str = ""


def client_hash(*, address: str, day: str | None = None) -> str:
    """16 hex characters of HMAC(SECRET_KEY, day|address): links a client's requests within a
    day (rate limits, distinct scanners) without storing or being able to recover the address."""
    day = day or timezone.now().date().isoformat()
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"{day}|{address}".encode(), hashlib.sha256).hexdigest()[:16]


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
    SELECT p.id, p.lot_id, p.xmin::text AS record_version,
           EXISTS (SELECT 1 FROM consumer_feedback f WHERE f.product_id = p.id) AS reviewed,
           COALESCE(s.review_count, 0) AS review_count,
           COALESCE(s.overall_sum, 0) AS review_sum
    FROM consumer_products p
    LEFT JOIN feedback_lot_review_stats s ON s.lot_id = p.lot_id
    WHERE p.qr_code = $1
), async_commit AS (
    SELECT set_config('synchronous_commit', 'off', true) AS value
), event AS (
    INSERT INTO feedback_scan_events
        (product_id, scanned_at, channel, country, place_source, language, client_hash)
    SELECT product.id, $2, $3, $4, $5, $6, $7
    FROM product
), counter AS (
    INSERT INTO feedback_product_scan_stats
        (product_id, scan_count, first_scanned_at, last_scanned_at)
    SELECT product.id, 1, $2, $2 FROM product, async_commit
    ON CONFLICT (product_id) DO UPDATE
        SET scan_count = feedback_product_scan_stats.scan_count + 1,
            last_scanned_at = EXCLUDED.last_scanned_at
    RETURNING scan_count
)
SELECT product.id, product.lot_id, product.record_version, product.reviewed,
       product.review_count, product.review_sum, (SELECT scan_count FROM counter)
FROM product
"""
SCAN_RECORD_PARAMS = ("qr_code", "now", "channel", "country", "place_source", "language", "hash")

# The statement is a prepared statement of the database session: PostgreSQL parses and plans
# it once per connection instead of on every scan (planning is most of its server time). The
# first scan on a connection sends PREPARE and EXECUTE together (still one round trip); the
# session keeps it until the connection closes (a PREPARE survives a rollback). Name versioned
# with the text: a changed statement gets a new name. Needs session-level state: behind
# PgBouncer use session pooling (README), as for the rest of the application.
SCAN_STATEMENT = "gaveurs_scan_record_v2"
SCAN_PREPARE_SQL = (
    f"PREPARE {SCAN_STATEMENT} (text, timestamptz, text, text, text, text, text) AS "
    + SCAN_RECORD_SQL
)
SCAN_EXECUTE_SQL = (
    f"EXECUTE {SCAN_STATEMENT} (" + ", ".join(f"%({n})s" for n in SCAN_RECORD_PARAMS) + ")"
)
# Database sessions (psycopg connections) on which the statement is prepared.
_prepared_sessions: weakref.WeakSet[Any] = weakref.WeakSet()


def _scan_statement_run(params: dict[str, Any]) -> tuple[Any, ...] | None:
    """Run the scan statement on this thread's connection: one round trip, through Django's
    cursor (so it is counted and logged like any query)."""
    with connection.cursor() as cursor:
        session = connection.connection
        for attempt in (1, 2):
            prepared = session in _prepared_sessions
            try:
                if prepared:
                    cursor.execute(SCAN_EXECUTE_SQL, params)
                else:
                    cursor.execute(f"{SCAN_PREPARE_SQL};\n{SCAN_EXECUTE_SQL}", params)
                    cursor.nextset()  # PREPARE's result, then EXECUTE's
                    _prepared_sessions.add(session)
                return cursor.fetchone()
            except ProgrammingError as exc:
                # Our record of the session was wrong: the statement was deallocated behind our
                # back (DISCARD ALL, a pooler) or prepared by a call that failed afterwards.
                # Nothing ran (a failed statement is rolled back whole): correct the record and,
                # outside a transaction, try once more; inside one the transaction is aborted.
                cause = exc.__cause__
                if isinstance(cause, psycopg_errors.InvalidSqlStatementName):
                    _prepared_sessions.discard(session)
                elif isinstance(cause, psycopg_errors.DuplicatePreparedStatement):
                    _prepared_sessions.add(session)
                else:
                    raise
                if attempt == 2 or connection.in_atomic_block:
                    raise
    return None


def scan_record(
    *, qr_code: str, channel: str, origin: ClientOrigin, language: str = ""
) -> ScanCount | None:
    """Count one scan of the product with this code (None, and nothing counted, when no product
    has it). Raises the copied-label alert once the count passes SCAN_ALERT_THRESHOLD."""
    now = timezone.now()
    row = _scan_statement_run(
        {
            "qr_code": qr_code,
            "now": now,
            "channel": channel,
            "country": origin.country,
            "place_source": origin.place_source,
            "language": (language or "")[:8],
            "hash": origin.client_hash,
        }
    )
    if row is None:
        return None
    scan = ScanCount(*row)
    threshold = settings.SCAN_ALERT_THRESHOLD
    if scan.scan_count == threshold + 1:
        # Counts are atomic increments, so exactly one scan crosses the threshold.
        _, created = ScanAlert.objects.get_or_create(
            product_id=scan.product_pk,
            defaults={"threshold": threshold, "scan_count": scan.scan_count, "raised_at": now},
        )
        if created:
            logger.warning(
                "Product %s scanned %s times (threshold %s): label probably copied",
                scan.product_pk,
                scan.scan_count,
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
