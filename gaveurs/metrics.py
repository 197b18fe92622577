"""Prometheus metrics: the ``/metrics`` endpoint, our own counters, and database collectors.

1. Counters and histograms kept by the process that does the work (the websocket server for
   ingestion): samples received and stored, the ack latency, the batch size. Apps call
   ``sample_received``, ``ack_timed`` and ``batch_stored``; django-prometheus adds the HTTP
   request metrics (``METRICS_HTTP``) and the process ones.
2. ``DatabaseCollector`` reads, on each scrape and not on any request, what several processes
   share through PostgreSQL: the registration queue (eligible samples without product, the
   oldest one's age, recent registration latency), scans and reviews, the ledger's size and
   the age of its last signed head, open alerts. It reads the other apps' tables by name (this
   package imports no app to its right), each query bounded by ``METRICS_QUERY_TIMEOUT_MS``.
3. ``/metrics`` answers only to the addresses of ``METRICS_ALLOWED_IPS`` or with
   ``Authorization: Bearer <METRICS_TOKEN>``; 403 otherwise. With several processes behind one
   address set ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

logger = logging.getLogger(__name__)

SAMPLES_RECEIVED = Counter(
    "gaveurs_sqal_samples_received",
    "Station samples (sensor_data frames that parsed) handed to storage.",
)
SAMPLES_STORED = Counter(
    "gaveurs_sqal_samples_stored",
    "Ingestion results by status: saved (new row), duplicate (already stored), error.",
    ["status"],
)
ACK_LATENCY = Histogram(
    "gaveurs_sqal_ack_latency_seconds",
    "From a sample handed to storage to its result (the ack is sent after its commit).",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SIZE = Histogram(
    "gaveurs_sqal_batch_size",
    "Samples written per ingestion transaction (group commit).",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)


def sample_received() -> None:
    SAMPLES_RECEIVED.inc()


async def ack_timed(awaitable: Any) -> Any:
    """Await a sample's storage result, observing how long it took."""
    started = time.perf_counter()
    try:
        return await awaitable
    finally:
        ACK_LATENCY.observe(time.perf_counter() - started)


def batch_stored(results: Iterable[Any]) -> None:
    """One committed batch of ingestion results (objects with a ``status``)."""
    count = 0
    for result in results:
        SAMPLES_STORED.labels(result.status).inc()
        count += 1
    BATCH_SIZE.observe(count)


# --- 2. What the database knows -------------------------------------------------------------

_PENDING_SQL = """
SELECT count(*), extract(epoch FROM clock_timestamp() - min(s.received_at))
FROM sqal_sensor_samples s
WHERE s.is_compliant AND s.fusion_grade <> 'REJECT' AND s.lot_id IS NOT NULL
  AND s.received_at >= clock_timestamp() - make_interval(days => %s)
  AND NOT EXISTS (SELECT 1 FROM consumer_products p WHERE p.sqal_sample_pk = s.id)
"""
_LATENCY_SQL = """
SELECT count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY l.seconds),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY l.seconds),
       max(l.seconds)
FROM (
    SELECT extract(epoch FROM p.created_at - s.received_at) AS seconds
    FROM consumer_products p JOIN sqal_sensor_samples s ON s.id = p.sqal_sample_pk
    WHERE p.created_at >= clock_timestamp() - make_interval(secs => %s)
) l
"""
_SCANS_SQL = "SELECT coalesce(sum(scan_count), 0) FROM feedback_product_scan_stats"
_REVIEWS_SQL = "SELECT count(*) FROM consumer_feedback"
_LEDGER_SQL = """
SELECT (SELECT coalesce(max(leaf_index) + 1, 0) FROM ledger_leaves),
       h.tree_size, extract(epoch FROM clock_timestamp()) - h.timestamp_ms / 1000.0
FROM (SELECT 1) one
LEFT JOIN LATERAL (
    SELECT tree_size, timestamp_ms FROM ledger_heads ORDER BY tree_size DESC LIMIT 1
) h ON true
"""
_ALERTS_SQL = """
SELECT (SELECT count(*) FROM sensors_qualityalert WHERE status = 'open'),
       (SELECT count(*) FROM feedback_scan_alerts WHERE NOT is_resolved)
"""
# Products registered within this window give the recent registration latency.
LATENCY_WINDOW_SECONDS = 900


class DatabaseCollector:
    """A prometheus_client collector; one scrape runs each query once (see point 2)."""

    def describe(self) -> list[Metric]:
        return []  # no query at registration time

    def collect(self) -> Iterator[Metric]:
        errors = 0
        rows: dict[str, tuple | None] = {}
        queries = {
            "pending": (_PENDING_SQL, [settings.PRODUCT_SWEEP_MAX_AGE_DAYS]),
            "latency": (_LATENCY_SQL, [LATENCY_WINDOW_SECONDS]),
            "scans": (_SCANS_SQL, []),
            "reviews": (_REVIEWS_SQL, []),
            "ledger": (_LEDGER_SQL, []),
            "alerts": (_ALERTS_SQL, []),
        }
        timeout = str(settings.METRICS_QUERY_TIMEOUT_MS)
        previous = self._one(
            "timeout",
            "SELECT current_setting('statement_timeout'), "
            "set_config('statement_timeout', %s, false)",
            [timeout],
        )
        try:
            for name, (sql, params) in queries.items():
                rows[name] = self._one(name, sql, params)
                errors += rows[name] is None
        finally:
            if previous:
                restore = "SELECT set_config('statement_timeout', %s, false)"
                self._one("timeout", restore, [previous[0]])

        if row := rows["pending"]:
            yield _gauge(
                "gaveurs_registration_queue_depth",
                "Eligible samples with no product yet (registrations queued or lost).",
                row[0],
            )
            yield _gauge(
                "gaveurs_registration_oldest_pending_seconds",
                "Age of the oldest eligible sample with no product (0 when none).",
                row[1] or 0,
            )
        if row := rows["latency"]:
            family = GaugeMetricFamily(
                "gaveurs_registration_latency_seconds",
                f"From a sample's receipt to its product, over the products of the last "
                f"{LATENCY_WINDOW_SECONDS} s (quantile 1 is the maximum).",
                labels=["quantile"],
            )
            if row[0]:
                for quantile, value in (("0.5", row[1]), ("0.95", row[2]), ("1", row[3])):
                    family.add_metric([quantile], float(value))
            yield family
            yield _gauge(
                "gaveurs_registration_recent_products",
                f"Products registered in the last {LATENCY_WINDOW_SECONDS} s.",
                row[0],
            )
        if row := rows["scans"]:
            yield CounterMetricFamily(
                "gaveurs_scans", "Scans of valid product codes (page and API).", value=row[0]
            )
        if row := rows["reviews"]:
            yield CounterMetricFamily("gaveurs_reviews", "Consumer reviews stored.", value=row[0])
        if row := rows["ledger"]:
            yield _gauge("gaveurs_ledger_size", "Products sealed in the ledger (leaves).", row[0])
            if row[1] is not None:
                yield _gauge(
                    "gaveurs_ledger_signed_tree_size", "Tree size of the last signed head.", row[1]
                )
                yield _gauge(
                    "gaveurs_ledger_signed_head_age_seconds",
                    "Seconds since the last signed tree head was signed.",
                    row[2],
                )
        if row := rows["alerts"]:
            family = GaugeMetricFamily(
                "gaveurs_open_alerts",
                "Alerts waiting for staff: quality (station samples) and scan (copied labels).",
                labels=["kind"],
            )
            family.add_metric(["quality"], row[0])
            family.add_metric(["scan"], row[1])
            yield family
        yield _gauge(
            "gaveurs_metrics_query_errors",
            "Database metric queries that failed during this scrape (see the logs).",
            errors,
        )

    @staticmethod
    def _one(name: str, sql: str, params: list) -> tuple | None:
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchone()
        except DatabaseError:
            logger.warning("metrics query %s failed", name, exc_info=True)
            return None


def _gauge(name: str, documentation: str, value: Any) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


# --- 3. The endpoint ------------------------------------------------------------------------


def client_allowed(request: HttpRequest) -> bool:
    """The token, or an address in METRICS_ALLOWED_IPS (REMOTE_ADDR: a scraper comes directly,
    never through the public reverse proxy; behind one, use the token)."""
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, sent = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(sent.strip(), token):
            return True
    if settings.TRUSTED_PROXY_HOPS > 0 or request.META.get("HTTP_X_FORWARDED_FOR"):
        # A request relayed by a proxy has the proxy's address (often 127.0.0.1): only the
        # token counts then.
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in _allowed_networks())


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n, strict=False) for n in settings.METRICS_ALLOWED_IPS]


def _registry() -> CollectorRegistry:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


_database_registry = CollectorRegistry(auto_describe=False)
_database_registry.register(DatabaseCollector())


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not client_allowed(request):
        return HttpResponse(
            "Forbidden: /metrics needs an address in METRICS_ALLOWED_IPS or the METRICS_TOKEN.\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    body = generate_latest(_registry()) + generate_latest(_database_registry)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
