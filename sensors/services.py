"""Writes of the sensors app: station tokens and greetings, sample ingestion, quality alerts.

``ingest_samples`` is the one writer of ``sqal_sensor_samples``. It stores a batch of samples in
one transaction (group commit): the websocket batcher hands it whatever arrived while the previous
batch was committing, so many stations cost one transaction per batch, not one per message.
``ingest_sample`` is the same for one sample.

Per sample, inside the transaction:
  1. the station must exist (or be created, when unregistered stations are allowed in development)
     and be active; a station that has a token must have used it;
  2. its lot is resolved: the message's ``lot_id``; else the lot staff assigned to the station;
     else the lot whose code is the message's ``lot_abattage``; else none, and an alert says so;
  3. it is inserted once per (station, sample id): a resent sample is reported as a duplicate
     (and, eligible with no product yet, asks for it again: its first request may have been lost);
  4. thresholds staff edit in admin raise quality alerts;
  5. a compliant sample whose grade is not REJECT and that has a lot asks for its consumer
     product, which traceability registers once the transaction commits.
If the batch transaction fails, each sample is retried alone so one bad row cannot sink the rest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from gaveurs.models import Lot, Site
from sensors.models import Device, QualityAlert, QualityThreshold, SensorSample
from sensors.schemas import Hello, Reading
from traceability.models import ConsumerProduct
from traceability.services import product_registration_request

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "sqal_"
_SITE_IN_DEVICE_ID = re.compile(r"^[A-Za-z0-9]+_([A-Z]{2,5})_")
GRADE_RANK = {"REJECT": 0, "C": 1, "B": 2, "A": 3, "A+": 4}
LAST_SEEN_EVERY = 5.0
_last_seen_written: dict[str, float] = {}


class DeviceRefused(Exception):
    """A station may not connect or send; ``code`` is stable, ``detail`` says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


# --- station tokens and identity ------------------------------------------------------------


def device_token_hash(token: str) -> str:
    """SHA-256 of a token. Tokens are 256-bit random, so a fast hash is enough to store them."""
    return hashlib.sha256(token.encode()).hexdigest()


def device_issue_token(*, device: Device) -> str:
    """Give a station a new token (replacing the old one); returns it, to be shown once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    device.token_hash = device_token_hash(token)
    device.save(update_fields=["token_hash"])
    return token


def device_authenticate(*, token: str | None, allow_unregistered: bool) -> Device | None:
    """The station a connection speaks for, from its token.

    Returns None for an anonymous connection (allowed only with ``allow_unregistered``).
    """
    if not token:
        if allow_unregistered:
            return None
        raise DeviceRefused("token_required", "a station token is required")
    device = (
        Device.objects.select_related("site").filter(token_hash=device_token_hash(token)).first()
    )
    if device is None:
        raise DeviceRefused("unknown_device", "no station has this token")
    if not device.is_active:
        raise DeviceRefused("device_inactive", f"station {device.device_id} is disabled")
    return device


def site_code_for(*, device: Device | None, device_id: str, message_site_code: str | None) -> str:
    """The station's site: its record, else the message's, else its id (ESP32_LL_01 → LL)."""
    return _site_code(
        device.site.code if device is not None and device.site_id is not None else None,
        device_id,
        message_site_code,
    )


def _site_code(recorded: str | None, device_id: str, message_site_code: str | None) -> str:
    if recorded:
        return recorded
    if message_site_code:
        return message_site_code
    match = _SITE_IN_DEVICE_ID.match(device_id)
    return match.group(1) if match else ""


def _create_devices(device_ids: Sequence[str]) -> None:
    codes = {
        device_id: site_code_for(device=None, device_id=device_id, message_site_code=None)
        for device_id in device_ids
    }
    sites = {s.code: s for s in Site.objects.filter(code__in=set(codes.values()))}
    Device.objects.bulk_create(
        [
            Device(device_id=device_id, name=device_id, site=sites.get(codes[device_id]))
            for device_id in device_ids
        ],
        ignore_conflicts=True,
    )


def device_hello(*, hello: Hello, authenticated: bool, allow_unregistered: bool) -> Device:
    """Record a station's greeting (firmware, MAC address, location)."""
    stations = Device.objects.select_related("site")
    device = stations.filter(device_id=hello.device_id).first()
    if device is None:
        if not allow_unregistered:
            raise DeviceRefused("unknown_device", f"station {hello.device_id} is not registered")
        _create_devices([hello.device_id])
        device = stations.get(device_id=hello.device_id)
    _check_device(device, authenticated=authenticated)
    device.firmware_version = hello.firmware_version or device.firmware_version
    device.mac_address = hello.mac_address or device.mac_address
    device.location = hello.location or device.location
    device.last_seen_at = timezone.now()
    device.save(update_fields=["firmware_version", "mac_address", "location", "last_seen_at"])
    return device


def _check_device(device: Device | _Station, *, authenticated: bool) -> None:
    if not device.is_active:
        raise DeviceRefused("device_inactive", f"station {device.device_id} is disabled")
    if device.has_token and not authenticated:
        raise DeviceRefused(
            "device_auth_required",
            f"station {device.device_id} has a token: connect with it",
        )


# --- ingestion --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleInput:
    reading: Reading
    payload: str  # the message as received (JSON text), stored verbatim as jsonb
    authenticated: bool = False


@dataclass
class IngestResult:
    device_id: str
    sample_id: str
    status: str  # "saved", "duplicate" or "error"
    fusion_score: float | None = None
    fusion_grade: str | None = None
    pk: int | None = None
    lot_id: int | None = None
    lot_code: str = ""
    site_code: str = ""
    error_code: str = ""
    error_detail: str = ""
    product_requested: bool = False
    alerts: list[QualityAlert] = field(default_factory=list)
    reading: Reading | None = None

    def frame(self) -> dict:
        """The acknowledgement (or error) frame sent back to the station."""
        if self.status == "error":
            return {
                "type": "error",
                "code": self.error_code,
                "detail": self.error_detail,
                "sample_id": self.sample_id,
            }
        return {
            "type": "ack",
            "sample_id": self.sample_id,
            "status": self.status,
            "fusion_score": self.fusion_score,
            "fusion_grade": self.fusion_grade,
        }


def ingest_sample(
    *, reading: Reading, payload: str, allow_unregistered: bool, authenticated: bool = False
) -> IngestResult:
    """Store one sample (see ``ingest_samples``)."""
    item = SampleInput(reading=reading, payload=payload, authenticated=authenticated)
    return ingest_samples(items=[item], allow_unregistered=allow_unregistered)[0]


def ingest_samples(*, items: Sequence[SampleInput], allow_unregistered: bool) -> list[IngestResult]:
    """Store a batch of samples in one transaction; one result per item, in order."""
    try:
        with transaction.atomic():
            return _ingest_batch(items, allow_unregistered=allow_unregistered)
    except DatabaseError:
        if len(items) == 1:
            logger.exception("sample %s could not be stored", items[0].reading.sample_id)
            reading = items[0].reading
            return [
                IngestResult(
                    device_id=reading.device_id,
                    sample_id=reading.sample_id,
                    status="error",
                    error_code="storage_error",
                    error_detail="the database refused this sample; it was not stored",
                )
            ]
        logger.warning("batch of %d failed; storing its samples one by one", len(items))
    results: list[IngestResult] = []
    for item in items:
        results.extend(ingest_samples(items=[item], allow_unregistered=allow_unregistered))
    return results


_COLUMNS = [
    "time",
    "received_at",
    "device_id",
    "sample_id",
    "lot_id",
    "site_code",
    "tof_volume_mm3",
    "tof_surface_uniformity",
    "tof_quality_score",
    "tof_grade",
    "distance_matrix",
    "reflectance_matrix",
    "amplitude_matrix",
    "ambient_matrix",
    "status_matrix",
    "spectral_channels",
    "spectral_freshness_index",
    "spectral_fat_quality_index",
    "spectral_oxidation_index",
    "spectral_quality_score",
    "spectral_grade",
    "fusion_score",
    "fusion_grade",
    "is_compliant",
    "fill_conformity",
    "lot_abattage",
    "eleveur",
    "provenance",
    "firmware_version",
    "temperature_c",
    "humidity_percent",
    "payload",
]
_CASTS = {
    "distance_matrix": "::double precision[]",
    "reflectance_matrix": "::double precision[]",
    "amplitude_matrix": "::double precision[]",
    "ambient_matrix": "::double precision[]",
    "status_matrix": "::double precision[]",
    "spectral_channels": "::double precision[]",
    "payload": "::jsonb",
}
_INSERT_SQL = (
    f"INSERT INTO {SensorSample._meta.db_table} ({', '.join(_COLUMNS)}) VALUES ("
    + ", ".join("%s" + _CASTS.get(c, "") for c in _COLUMNS)
    + ") ON CONFLICT (device_id, sample_id) DO NOTHING RETURNING id, device_id, sample_id"
)
_ARRAYS = {c for c, cast in _CASTS.items() if cast.endswith("[]")}
_BRACKETS = str.maketrans("[]", "{}")


def _array_literal(value) -> str | None:
    """A PostgreSQL array literal of floats ({{1.0,2.0},{…}}): much cheaper than adapting lists."""
    if value is None:
        return None
    # json.dumps writes floats with repr (exact round trip), in C.
    return json.dumps(value).translate(_BRACKETS)


def _row(reading: Reading, *, lot_id: int | None, site_code: str, now: datetime, payload: str):
    values = {name: getattr(reading, name) for name in _COLUMNS if hasattr(reading, name)}
    values.update(received_at=now, lot_id=lot_id, site_code=site_code, payload=payload)
    for name in _ARRAYS:
        values[name] = _array_literal(values[name])
    return [values[c] for c in _COLUMNS]


def _insert_rows(rows: list[list]) -> dict[tuple[str, str], int]:
    """Insert rows, skipping (device, sample) pairs already stored; returns the new ids.

    One statement per row in a pipeline (psycopg ``executemany``), with server-side parameters:
    the 190 KB payloads travel as they are, with no quoting, and the statement is parsed once.
    """
    import psycopg

    connection.ensure_connection()
    inserted: dict[tuple[str, str], int] = {}
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.executemany(_INSERT_SQL, rows, returning=True)
        while True:
            for pk, device_id, sample_id in cursor.fetchall():
                inserted[(device_id, sample_id)] = pk
            if not cursor.nextset():
                break
    return inserted


@dataclass(frozen=True)
class _Lot:
    id: int
    code: str
    site_code: str


@dataclass(frozen=True)
class _Station:
    device_id: str
    is_active: bool
    has_token: bool
    site_code: str | None
    assigned_lot: _Lot | None


def _fetch(sql: str, params: Sequence) -> list[tuple]:
    import psycopg

    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


_DEVICE, _SITE, _LOT = Device._meta.db_table, Site._meta.db_table, Lot._meta.db_table


def _stations(device_ids: Sequence[str]) -> dict[str, _Station]:
    rows = _fetch(
        f"SELECT d.device_id, d.is_active, d.token_hash <> '', s.code, l.id, l.code, ls.code "
        f"FROM {_DEVICE} d LEFT JOIN {_SITE} s ON s.id = d.site_id "
        f"LEFT JOIN {_LOT} l ON l.id = d.assigned_lot_id "
        f"LEFT JOIN {_SITE} ls ON ls.id = l.site_id "
        f"WHERE d.device_id = ANY(%s)",
        [list(device_ids)],
    )
    return {
        device_id: _Station(
            device_id=device_id,
            is_active=is_active,
            has_token=has_token,
            site_code=site_code,
            assigned_lot=_Lot(lot_id, lot_code, lot_site) if lot_id is not None else None,
        )
        for device_id, is_active, has_token, site_code, lot_id, lot_code, lot_site in rows
    }


def _lots(column: str, values: Sequence) -> list[_Lot]:
    rows = _fetch(
        f"SELECT l.id, l.code, s.code FROM {_LOT} l JOIN {_SITE} s ON s.id = l.site_id "
        f"WHERE {column} = ANY(%s)",
        [list(values)],
    )
    return [_Lot(*row) for row in rows]


def _active_thresholds() -> list[QualityThreshold]:
    rows = _fetch(
        f"SELECT id, metric, operator, value, grade, severity "
        f"FROM {QualityThreshold._meta.db_table} WHERE is_active",
        [],
    )
    return [
        QualityThreshold(
            id=pk, metric=metric, operator=op, value=value, grade=grade, severity=severity
        )
        for pk, metric, op, value, grade, severity in rows
    ]


_ALERT_COLUMNS = [
    "sample_id",
    "lot_id",
    "device_id",
    "threshold_id",
    "rule",
    "metric",
    "value",
    "severity",
    "message",
    "status",
    "created_at",
]


def _insert_alerts(alerts: Sequence[QualityAlert], *, now: datetime) -> None:
    import psycopg

    for alert in alerts:
        alert.created_at = now
    sql = (
        f"INSERT INTO {QualityAlert._meta.db_table} ({', '.join(_ALERT_COLUMNS)}) "
        f"VALUES ({', '.join(['%s'] * len(_ALERT_COLUMNS))})"
    )
    rows = [
        [
            a.sample_id,
            a.lot_id,
            a.device_id,
            a.threshold_id,
            a.rule,
            a.metric,
            a.value,
            a.severity,
            a.message,
            a.status,
            now,
        ]
        for a in alerts
    ]
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.executemany(sql, rows)


def _ingest_batch(items: Sequence[SampleInput], *, allow_unregistered: bool) -> list[IngestResult]:
    now = timezone.now()
    results = [
        IngestResult(
            device_id=item.reading.device_id, sample_id=item.reading.sample_id, status="error"
        )
        for item in items
    ]

    # 1. Stations. (Reads in this function are plain SQL: an ORM query costs ~20 times the CPU
    #    of the same query through the cursor, and they run once per batch on the hot path.)
    device_ids = sorted({item.reading.device_id for item in items})
    devices = _stations(device_ids)
    missing = [d for d in device_ids if d not in devices]
    if missing and allow_unregistered:
        _create_devices(missing)
        devices.update(_stations(missing))

    # 2. Lots named by id, and by slaughter lot code when the station has no assigned lot.
    lot_ids = sorted({item.reading.lot_id for item in items if item.reading.lot_id is not None})
    lots_by_id = {lot.id: lot for lot in _lots("l.id", lot_ids)} if lot_ids else {}
    codes = sorted(
        {
            item.reading.lot_abattage
            for item in items
            if item.reading.lot_id is None
            and item.reading.lot_abattage
            and item.reading.device_id in devices
            and devices[item.reading.device_id].assigned_lot is None
        }
    )
    lots_by_code = {lot.code: lot for lot in _lots("l.code", codes)} if codes else {}

    rows: list[list] = []
    pending: dict[tuple[str, str], list[int]] = {}  # (device, sample) -> indexes of items
    for index, item in enumerate(items):
        reading, result = item.reading, results[index]
        result.reading = reading
        device = devices.get(reading.device_id)
        if device is None:
            result.error_code = "unknown_device"
            result.error_detail = f"station {reading.device_id} is not registered"
            continue
        try:
            _check_device(device, authenticated=item.authenticated)
        except DeviceRefused as exc:
            result.error_code, result.error_detail = exc.code, exc.detail
            continue
        if reading.lot_id is not None:
            lot = lots_by_id.get(reading.lot_id)
            if lot is None:
                result.error_code = "unknown_lot"
                result.error_detail = f"lot_id: lot {reading.lot_id} does not exist (lot_exists)"
                continue
        elif device.assigned_lot is not None:
            lot = device.assigned_lot
        else:
            lot = lots_by_code.get(reading.lot_abattage)
        site_code = _site_code(device.site_code, reading.device_id, reading.site_code) or (
            lot.site_code if lot is not None else ""
        )
        result.lot_id = lot.id if lot is not None else None
        result.lot_code = lot.code if lot is not None else ""
        result.site_code = site_code
        key = (reading.device_id, reading.sample_id)
        if key in pending:
            pending[key].append(index)  # the same sample twice in one batch: stored once
            continue
        pending[key] = [index]
        rows.append(
            _row(reading, lot_id=result.lot_id, site_code=site_code, now=now, payload=item.payload)
        )

    # 3. Insert; rows already there are duplicates.
    inserted = _insert_rows(rows) if rows else {}
    existing_keys = [key for key in pending if key not in inserted]
    existing = {}
    if existing_keys:
        existing = {
            (s.device_id, s.sample_id): s
            for s in SensorSample.objects.filter(
                device_id__in={d for d, _ in existing_keys},
                sample_id__in={s for _, s in existing_keys},
            )
            .only(
                "id",
                "device_id",
                "sample_id",
                "fusion_score",
                "fusion_grade",
                "is_compliant",
                "lot_id",
                "site_code",
            )
            .annotate(has_product=Exists(ConsumerProduct.objects.filter(sample=OuterRef("pk"))))
        }

    thresholds = _active_thresholds() if inserted else []
    alerts: list[QualityAlert] = []
    for key, indexes in pending.items():
        first = results[indexes[0]]
        reading = first.reading
        if key in inserted:
            first.status, first.pk = "saved", inserted[key]
            first.fusion_score, first.fusion_grade = reading.fusion_score, reading.fusion_grade
            first.alerts = _alerts_for(first, reading, thresholds)
            alerts.extend(first.alerts)
            if reading.is_compliant and reading.fusion_grade != "REJECT" and first.lot_id:
                product_registration_request(
                    lot_id=first.lot_id, sample_id=reading.sample_id, site_code=first.site_code
                )
                first.product_requested = True
            later = indexes[1:]
        else:
            stored = existing[key]
            first.status, first.pk = "duplicate", stored.pk
            first.fusion_score, first.fusion_grade = stored.fusion_score, stored.fusion_grade
            if (
                stored.is_compliant
                and stored.fusion_grade != "REJECT"
                and stored.lot_id
                and not stored.has_product
            ):
                # Resent because its ack was lost: so may its product request have been (server
                # killed, or connection lost, between the commit and the publication). Ask again;
                # registration is idempotent.
                product_registration_request(
                    lot_id=stored.lot_id, sample_id=stored.sample_id, site_code=stored.site_code
                )
                first.product_requested = True
            later = indexes[1:]
        for index in later:
            dup = results[index]
            dup.status, dup.pk = "duplicate", first.pk
            dup.fusion_score, dup.fusion_grade = first.fusion_score, first.fusion_grade
    if alerts:
        _insert_alerts(alerts, now=now)

    # 4. Stations seen (at most every LAST_SEEN_EVERY seconds per station: a busy station
    #    would otherwise rewrite its row in every batch).
    clock = time.monotonic()
    seen = {
        r.device_id
        for r in results
        if r.status != "error"
        and clock - _last_seen_written.get(r.device_id, -1e9) > LAST_SEEN_EVERY
    }
    if seen:
        Device.objects.filter(device_id__in=seen).update(last_seen_at=now)
        transaction.on_commit(lambda: _last_seen_written.update(dict.fromkeys(seen, clock)))
    return results


# --- quality alerts ---------------------------------------------------------------------------

_COMPARE = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}


def _alerts_for(
    result: IngestResult, reading: Reading, thresholds: Sequence[QualityThreshold]
) -> list[QualityAlert]:
    alerts: list[QualityAlert] = []

    def alert(*, threshold, rule, metric, value, severity, message) -> None:
        alerts.append(
            QualityAlert(
                sample_id=result.pk,
                lot_id=result.lot_id,
                device_id=reading.device_id,
                threshold=threshold,
                rule=rule,
                metric=metric,
                value=value,
                severity=severity,
                message=message[:300],
            )
        )

    lot_label = result.lot_code or "sans lot / no lot"
    for threshold in thresholds:
        if threshold.metric == QualityThreshold.Metric.FUSION_GRADE:
            grade = reading.fusion_grade
            if GRADE_RANK.get(grade, 0) <= GRADE_RANK.get(threshold.grade, -1):
                alert(
                    threshold=threshold,
                    rule=threshold.rule,
                    metric=threshold.metric,
                    value=grade,
                    severity=threshold.severity,
                    message=f"{reading.sample_id} (lot {lot_label}): grade {grade} "
                    f"— {threshold.rule}",
                )
            continue
        value = getattr(reading, threshold.metric, None)
        if value is None or threshold.value is None:
            continue
        if _COMPARE[threshold.operator](value, threshold.value):
            alert(
                threshold=threshold,
                rule=threshold.rule,
                metric=threshold.metric,
                value=f"{value:.4g}",
                severity=threshold.severity,
                message=f"{reading.sample_id} (lot {lot_label}): {threshold.metric} = "
                f"{value:.4g} — {threshold.rule}",
            )
    if result.lot_id is None:
        alert(
            threshold=None,
            rule="no_lot",
            metric="lot",
            value=reading.lot_abattage[:40],
            severity=QualityThreshold.Severity.CRITICAL,
            message=f"{reading.sample_id}: aucun lot trouvé (lot_abattage "
            f"{reading.lot_abattage!r}), aucun produit ne peut être enregistré / no lot found, "
            f"no product can be registered",
        )
    return alerts


def alert_resolve(*, alert: QualityAlert, user) -> QualityAlert:
    """Mark an alert resolved by a staff member."""
    alert.status = QualityAlert.Status.RESOLVED
    alert.handled_at = timezone.now()
    alert.handled_by = user
    alert.save(update_fields=["status", "handled_at", "handled_by"])
    return alert
