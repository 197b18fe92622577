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

import functools
import hashlib
import logging
import re
import secrets
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.db import DatabaseError, connection, transaction
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.utils import timezone
from psycopg.adapt import Dumper
from psycopg.pq import Format

from gaveurs.models import Lot, Site
from sensors.models import Device, QualityAlert, QualityThreshold, SensorSample
from sensors.payload import compress_text
from sensors.rules import product_eligible
from sensors.schemas import Hello, Reading
from sensors.signals import product_registration_request

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
    payload: str  # the message as received (JSON text), stored verbatim (zstd, sensors/payload.py)
    authenticated: bool = False


@dataclass(slots=True)
class Alert:
    """A quality alert as ingestion writes it (one ``QualityAlert`` row), as plain data: a
    Django model instance costs ~25 µs to build, and a sample raises one or more alerts."""

    sample_id: int | None  # the row's id, once inserted
    lot_id: int | None
    device_id: str
    threshold_id: int | None
    rule: str
    metric: str
    value: str
    severity: str
    message: str
    sample_key: str = ""  # the station's sample id, until the row has an id
    status: str = QualityAlert.Status.OPEN
    created_at: datetime | None = None


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
    alerts: list[Alert] = field(default_factory=list)
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
}


# An alert row as sent with the samples: its sample is named by (station, sample id), the
# statement resolves it to the new row's id. (Typed: a parameter in VALUES is text otherwise.)
_ALERT_ROW = [
    ("device_id", "::varchar"),
    ("sample_key", "::varchar"),
    ("lot_id", "::bigint"),
    ("threshold_id", "::bigint"),
    ("rule", "::varchar"),
    ("metric", "::varchar"),
    ("value", "::varchar"),
    ("severity", "::varchar"),
    ("message", "::varchar"),
    ("status", "::varchar"),
    ("created_at", "::timestamptz"),
]


def _placeholders(first: int, casts: Sequence[str]) -> str:
    return "(" + ", ".join(f"${first + i}{cast}" for i, cast in enumerate(casts)) + ")"


@functools.lru_cache(maxsize=256)
def _insert_sql(count: int, alert_count: int) -> str:
    """One statement: ``count`` samples, skipping (device, sample) pairs already stored, and
    ``alert_count`` alerts, kept for the samples it inserted only.

    PostgreSQL's own placeholders ($1, $2…, for a ``RawCursor``): psycopg parses a statement
    written with %s on every call once it is longer than 4 KB, and this one is longer.
    """
    casts = [_CASTS.get(c, "") for c in _COLUMNS]
    samples = ", ".join(_placeholders(n * len(casts) + 1, casts) for n in range(count))
    insert = (
        f"INSERT INTO {SensorSample._meta.db_table} ({', '.join(_COLUMNS)}) VALUES {samples} "
        f"ON CONFLICT (device_id, sample_id) DO NOTHING RETURNING id, device_id, sample_id"
    )
    if not alert_count:
        return insert
    offset = count * len(casts) + 1
    alert_casts = [cast for _, cast in _ALERT_ROW]
    alerts = ", ".join(
        _placeholders(offset + n * len(alert_casts), alert_casts) for n in range(alert_count)
    )
    names = [name for name, _ in _ALERT_ROW]
    values = ["new.id" if c == "sample_id" else f"a.{c}" for c in _ALERT_COLUMNS]
    return (
        f"WITH new AS ({insert}), "
        f"alerts AS (INSERT INTO {QualityAlert._meta.db_table} ({', '.join(_ALERT_COLUMNS)}) "
        f"SELECT {', '.join(values)} "
        f"FROM new JOIN (VALUES {alerts}) AS a ({', '.join(names)}) "
        f"ON a.device_id = new.device_id AND a.sample_key = new.sample_id) "
        f"SELECT id, device_id, sample_id FROM new"
    )


_ARRAYS = {c for c, cast in _CASTS.items() if cast.endswith("[]")}


class Float8Array(bytes):
    """A float8[] in PostgreSQL's binary format (sent as it is, see ``_Float8ArrayDumper``)."""


_FLOAT8_OID, _FLOAT8_ARRAY_OID = 701, 1022
_CELL = np.dtype([("size", ">i4"), ("value", ">f8")])  # each element: its length, its value


def _float8_array(value) -> Float8Array | None:
    """Floats (a list, or a list of rows) as a binary float8[]: numpy converts the floats in C.

    The text literal ({{1.0,2.0},{…}}) meant printing and parsing 330 floats per sample, a
    fifth of the server's GIL time on compact messages. Shapes are validated (8×8, 10).
    """
    if value is None:
        return None
    floats = np.asarray(value, dtype=np.float64)
    if floats.size == 0:
        return Float8Array(struct.pack(">iiI", 0, 0, _FLOAT8_OID))
    dims = [number for size in floats.shape for number in (size, 1)]  # size, lower bound
    header = struct.pack(f">iiI{len(dims)}i", floats.ndim, 0, _FLOAT8_OID, *dims)
    cells = np.empty(floats.size, dtype=_CELL)
    cells["size"] = 8
    cells["value"] = floats.ravel()
    return Float8Array(header + cells.tobytes())


class _Float8ArrayDumper(Dumper):
    format = Format.BINARY
    oid = _FLOAT8_ARRAY_OID

    def dump(self, obj: Float8Array) -> bytes:
        return obj


def _row(reading: Reading, *, lot_id: int | None, site_code: str, now: datetime, payload: str):
    values = {name: getattr(reading, name) for name in _COLUMNS if hasattr(reading, name)}
    # The message's own text, zstd-compressed (sensors/payload.py): never re-serialised. This
    # runs on a writer thread, and zstd releases the GIL while it compresses.
    values.update(
        received_at=now, lot_id=lot_id, site_code=site_code, payload=compress_text(payload)
    )
    for name in _ARRAYS:
        values[name] = _float8_array(values[name])
    return [values[c] for c in _COLUMNS]


# psycopg prepares a statement (PostgreSQL parses and plans it once per connection) once it has
# run this many times on the connection; executemany prepares at once. Django turns that off
# (prepare_threshold None, for transaction-pooling proxies); the writer threads' connections turn
# it back on for these statements, as feedback's scan statement does: the plan of the 32-column
# INSERT was half of PostgreSQL's time per sample. Behind PgBouncer, session pooling (README).
PREPARE_THRESHOLD = 5


def _raw_cursor(*, native: bool = False):
    """A server-side-binding psycopg cursor on this thread's connection, statements prepared.

    ``native``: the statement uses PostgreSQL's placeholders ($1…) rather than %s.
    """
    import psycopg

    connection.ensure_connection()
    session = connection.connection
    if session.prepare_threshold is None:
        session.prepare_threshold = PREPARE_THRESHOLD
        session.adapters.register_dumper(Float8Array, _Float8ArrayDumper)
    return (psycopg.RawCursor if native else psycopg.Cursor)(session)


def _insert_rows(
    rows: list[list], alerts: Sequence[Alert], *, now: datetime
) -> dict[tuple[str, str], int]:
    """Insert rows, skipping (device, sample) pairs already stored, and the alerts of the rows
    inserted (each alert's ``sample_key`` names its sample); returns the new rows' ids.

    One statement, one round trip, with server-side parameters: the compressed payloads and the
    binary arrays travel as they are, with no quoting. (One statement per row, even pipelined,
    cost a psycopg send/receive cycle per row; each round trip also costs the writer thread a
    wait for the GIL, which the event loop holds most of the time.)
    """
    params = [value for row in rows for value in row]
    for a in alerts:
        params += (
            a.device_id,
            a.sample_key,
            a.lot_id,
            a.threshold_id,
            a.rule,
            a.metric,
            a.value,
            a.severity,
            a.message,
            a.status,
            now,
        )
    with connection.wrap_database_errors, _raw_cursor(native=True) as cursor:
        cursor.execute(_insert_sql(len(rows), len(alerts)), params)
        return {(device_id, sample_id): pk for pk, device_id, sample_id in cursor.fetchall()}


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
    with connection.wrap_database_errors, _raw_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


_DEVICE, _SITE, _LOT = Device._meta.db_table, Site._meta.db_table, Lot._meta.db_table


_STATIONS_SQL = (
    f"SELECT d.device_id, d.is_active, d.token_hash <> '', s.code, l.id, l.code, ls.code "
    f"FROM {_DEVICE} d LEFT JOIN {_SITE} s ON s.id = d.site_id "
    f"LEFT JOIN {_LOT} l ON l.id = d.assigned_lot_id "
    f"LEFT JOIN {_SITE} ls ON ls.id = l.site_id "
    f"WHERE d.device_id = ANY(%s)"
)
_LOTS_SQL = (
    f"SELECT l.id, l.code, s.code FROM {_LOT} l JOIN {_SITE} s ON s.id = l.site_id "
    f"WHERE l.id = ANY(%s) OR l.code = ANY(%s)"
)
_THRESHOLDS_SQL = (
    f"SELECT id, metric, operator, value, grade, severity "
    f"FROM {QualityThreshold._meta.db_table} WHERE is_active"
)


def _fetch_all(queries: Sequence[tuple[str, Sequence]]) -> list[list[tuple]]:
    """Several reads in one round trip (a psycopg pipeline): each one costs the writer thread a
    wait for PostgreSQL and then for the GIL, which the event loop holds most of the time."""
    cursors = []
    with connection.wrap_database_errors:
        first = _raw_cursor()
        with first.connection.pipeline():
            for sql, params in queries:
                cursor = first if not cursors else _raw_cursor()
                cursor.execute(sql, params)
                cursors.append(cursor)
        try:
            return [cursor.fetchall() for cursor in cursors]
        finally:
            for cursor in cursors:
                cursor.close()


def _stations_from(rows: Sequence[tuple]) -> dict[str, _Station]:
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


def _stations(device_ids: Sequence[str]) -> dict[str, _Station]:
    return _stations_from(_fetch(_STATIONS_SQL, [list(device_ids)]))


def _thresholds_from(rows: Sequence[tuple]) -> list[QualityThreshold]:
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


def _ingest_batch(items: Sequence[SampleInput], *, allow_unregistered: bool) -> list[IngestResult]:
    now = timezone.now()
    results = [
        IngestResult(
            device_id=item.reading.device_id, sample_id=item.reading.sample_id, status="error"
        )
        for item in items
    ]

    # 1. Stations, lots and quality thresholds, in one round trip. Lots: those named by id, and
    #    by slaughter lot code (used when the station has no assigned lot). (Reads in this
    #    function are plain SQL: an ORM query costs ~20 times the CPU of the same query through
    #    the cursor, and they run once per batch on the hot path.)
    device_ids = sorted({item.reading.device_id for item in items})
    lot_ids = sorted({item.reading.lot_id for item in items if item.reading.lot_id is not None})
    codes = sorted(
        {
            item.reading.lot_abattage
            for item in items
            if item.reading.lot_id is None and item.reading.lot_abattage
        }
    )
    station_rows, lot_rows, threshold_rows = _fetch_all(
        [
            (_STATIONS_SQL, [device_ids]),
            (_LOTS_SQL, [lot_ids, codes]),
            (_THRESHOLDS_SQL, []),
        ]
    )
    devices = _stations_from(station_rows)
    missing = [d for d in device_ids if d not in devices]
    if missing and allow_unregistered:
        _create_devices(missing)
        devices.update(_stations(missing))
    lots = [_Lot(*row) for row in lot_rows]
    named_ids, named_codes = set(lot_ids), set(codes)
    lots_by_id = {lot.id: lot for lot in lots if lot.id in named_ids}
    lots_by_code = {lot.code: lot for lot in lots if lot.code in named_codes}

    thresholds = _thresholds_from(threshold_rows)
    rows: list[list] = []
    alerts: list[Alert] = []
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
        # Its alerts go with it, in the same statement, which keeps them if the row is new.
        result.alerts = _alerts_for(result, reading, thresholds, now=now)
        alerts.extend(result.alerts)

    # 2. Insert, with their alerts; rows already there are duplicates.
    inserted = _insert_rows(rows, alerts, now=now) if rows else {}
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
            .annotate(
                has_product=ExpressionWrapper(Q(product__isnull=False), output_field=BooleanField())
            )
        }

    for key, indexes in pending.items():
        first = results[indexes[0]]
        reading = first.reading
        if key in inserted:
            first.status, first.pk = "saved", inserted[key]
            first.fusion_score, first.fusion_grade = reading.fusion_score, reading.fusion_grade
            for alert in first.alerts:
                alert.sample_id = first.pk
            if product_eligible(
                is_compliant=reading.is_compliant,
                fusion_grade=reading.fusion_grade,
                lot_id=first.lot_id,
            ):
                product_registration_request(
                    lot_id=first.lot_id, sample_id=reading.sample_id, site_code=first.site_code
                )
                first.product_requested = True
            later = indexes[1:]
        else:
            first.alerts = []  # the statement kept none: the sample was already stored
            stored = existing[key]
            first.status, first.pk = "duplicate", stored.pk
            first.fusion_score, first.fusion_grade = stored.fusion_score, stored.fusion_grade
            if (
                product_eligible(
                    is_compliant=stored.is_compliant,
                    fusion_grade=stored.fusion_grade,
                    lot_id=stored.lot_id,
                )
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

    # 3. Stations seen (at most every LAST_SEEN_EVERY seconds per station: a busy station
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
    result: IngestResult,
    reading: Reading,
    thresholds: Sequence[QualityThreshold],
    *,
    now: datetime,
) -> list[Alert]:
    alerts: list[Alert] = []

    def alert(*, threshold, rule, metric, value, severity, message) -> None:
        alerts.append(
            Alert(
                sample_id=result.pk,
                lot_id=result.lot_id,
                device_id=reading.device_id,
                threshold_id=threshold.id if threshold is not None else None,
                rule=rule,
                metric=metric,
                value=value,
                severity=severity,
                message=message[:300],
                sample_key=reading.sample_id,
                created_at=now,
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
