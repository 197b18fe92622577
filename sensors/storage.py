"""PostgreSQL storage of sample ingestion: the low-level reads and the batch writer.

What ``sensors.services`` (the ingestion rules) calls, and nothing else:
- ``batch_reads`` runs a batch's reads in one statement: stations (``STATIONS_SQL``'s rows),
  lots and the active quality thresholds;
- ``sample_row`` turns a reading into the column values of ``sqal_sensor_samples`` (payload
  zstd-compressed, matrices as binary ``float8[]``);
- ``samples_insert`` writes a batch of rows and their alerts in one statement (SQL text built
  once per shape, PostgreSQL placeholders, prepared on the writer connections); an alert already
  open for the same station and rule is updated in place (occurrences, last seen).
Plain SQL rather than the ORM: an ORM query costs ~20 times the CPU of the same query through
the cursor, and these run once per batch on the hot path.
"""

from __future__ import annotations

import functools
import operator
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import psycopg
from django.db import connection
from psycopg.adapt import Dumper
from psycopg.pq import Format

from gaveurs.models import Lot, Site
from sensors.models import Device, QualityAlert, QualityThreshold, SensorSample
from sensors.payload import compress_text
from sensors.schemas import Reading

if TYPE_CHECKING:
    from sensors.alerts import Alert

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


def _placeholders(first: int, casts: Sequence[str]) -> str:
    return "(" + ", ".join(f"${first + i}{cast}" for i, cast in enumerate(casts)) + ")"


@functools.lru_cache(maxsize=256)
def _insert_sql(count: int, alert_count: int) -> str:
    """One statement: ``count`` samples, skipping (device, sample) pairs already stored, and
    ``alert_count`` alerts, kept for the samples it inserted only: one unresolved alert per
    (station, rule), inserted or, when one is already open or acknowledged, counted in place
    (ON CONFLICT on the partial unique index ``sqal_alert_one_unresolved_per_station_rule``).

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
    return (
        f"WITH new AS ({insert}), "
        f"alerts AS (INSERT INTO {QualityAlert._meta.db_table} AS qa "
        f"({', '.join(_ALERT_COLUMNS)}, occurrences, last_seen_at) "
        f"SELECT {', '.join(_ALERT_GROUPED[c] for c in _ALERT_COLUMNS)}, count(*), "
        f"max(a.created_at) "
        f"FROM new JOIN (VALUES {alerts}) AS a ({', '.join(names)}) "
        f"ON a.device_id = new.device_id AND a.sample_key = new.sample_id "
        f"GROUP BY a.device_id, a.rule ORDER BY a.device_id, a.rule "
        f"ON CONFLICT (device_id, rule) WHERE status IN ('open', 'acknowledged') DO UPDATE SET "
        f"occurrences = qa.occurrences + EXCLUDED.occurrences, "
        f"last_seen_at = EXCLUDED.last_seen_at, value = EXCLUDED.value, "
        f"message = EXCLUDED.message, severity = EXCLUDED.severity, lot_id = EXCLUDED.lot_id) "
        f"SELECT id, device_id, sample_id FROM new"
    )


def _alert_values(a: Alert, created_at: datetime | None) -> tuple:
    """An alert's parameters, in ``_ALERT_ROW``'s order."""
    return (
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
        created_at,
    )


def refused_alerts_upsert(alerts: Sequence[Alert]) -> None:
    """The alerts of refused samples (not stored, so no sample row): one unresolved alert per
    (station, rule), inserted or counted in place, as ``samples_insert`` does for stored ones."""
    if not alerts:
        return
    names = [name for name, _ in _ALERT_ROW]
    values = ", ".join("(" + ", ".join(f"%s{cast}" for _, cast in _ALERT_ROW) + ")" for _ in alerts)
    # As ``_ALERT_GROUPED``, with no sample: the latest values by time rather than by row id.
    grouped = {c: v.replace("new.id", "a.created_at") for c, v in _ALERT_GROUPED.items()}
    grouped["sample_id"] = "NULL::bigint"
    sql = (
        f"INSERT INTO {QualityAlert._meta.db_table} AS qa "
        f"({', '.join(_ALERT_COLUMNS)}, occurrences, last_seen_at) "
        f"SELECT {', '.join(grouped[c] for c in _ALERT_COLUMNS)}, count(*), max(a.created_at) "
        f"FROM (VALUES {values}) AS a ({', '.join(names)}) "
        f"GROUP BY a.device_id, a.rule ORDER BY a.device_id, a.rule "
        f"ON CONFLICT (device_id, rule) WHERE status IN ('open', 'acknowledged') DO UPDATE SET "
        f"occurrences = qa.occurrences + EXCLUDED.occurrences, "
        f"last_seen_at = EXCLUDED.last_seen_at, value = EXCLUDED.value, "
        f"message = EXCLUDED.message, severity = EXCLUDED.severity, lot_id = EXCLUDED.lot_id"
    )
    params = [value for a in alerts for value in _alert_values(a, a.created_at)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _latest(column: str) -> str:
    return f"(array_agg(a.{column} ORDER BY new.id DESC))[1]"


# One alert row per (station, rule) of the batch: its first new sample, how many samples raised
# it, and the latest sample's value and message. Rows are inserted in (station, rule) order, so
# two writers that touch the same alerts lock them in the same order (no deadlock).
_ALERT_GROUPED = {
    "sample_id": "min(new.id)",
    "lot_id": _latest("lot_id"),
    "device_id": "a.device_id",
    "threshold_id": _latest("threshold_id"),
    "rule": "a.rule",
    "metric": _latest("metric"),
    "value": _latest("value"),
    "severity": _latest("severity"),
    "message": _latest("message"),
    "status": "'open'",
    "created_at": "min(a.created_at)",
}


_ARRAYS = {c for c, cast in _CASTS.items() if cast.endswith("[]")}


class Float8Array(bytes):
    """A float8[] in PostgreSQL's binary format (sent as it is, see ``_Float8ArrayDumper``)."""


_FLOAT8_OID, _FLOAT8_ARRAY_OID = 701, 1022
_CELL = np.dtype([("size", ">i4"), ("value", ">f8")])  # each element: its length, its value


def _float8_array(value) -> Float8Array | None:
    """Floats (a list, or a list of rows) as a binary float8[]: numpy converts the floats in C.

    The text literal ({{1.0,2.0},{…}}) meant printing and parsing 330 floats per sample, a
    fifth of the server's GIL time on compact messages. Shapes are validated (8×8, 10). The
    header depends on the shape only (two or three of them ever): built once per shape, it had
    cost as much as the conversion.
    """
    if value is None:
        return None
    floats = np.asarray(value, dtype=np.float64)
    header = _ARRAY_HEADERS.get(floats.shape)
    if header is None:
        header = _ARRAY_HEADERS[floats.shape] = _array_header(floats.shape)
    if floats.size == 0:
        return Float8Array(header)
    cells = np.empty(floats.size, dtype=_CELL)
    cells["size"] = 8
    cells["value"] = floats.ravel()
    return Float8Array(header + cells.tobytes())


def _array_header(shape: tuple[int, ...]) -> bytes:
    """The binary float8[] header: dimensions, no null bitmap, element type, then each
    dimension's size and lower bound (1)."""
    if 0 in shape:
        return struct.pack(">iiI", 0, 0, _FLOAT8_OID)
    dims = [number for size in shape for number in (size, 1)]
    return struct.pack(f">iiI{len(dims)}i", len(shape), 0, _FLOAT8_OID, *dims)


_ARRAY_HEADERS: dict[tuple[int, ...], bytes] = {}


class _Float8ArrayDumper(Dumper):
    format = Format.BINARY
    oid = _FLOAT8_ARRAY_OID

    def dump(self, obj: Float8Array) -> bytes:
        return obj


# The columns a Reading holds as they are (the others are set by ``sample_row``).
_READING_COLUMNS = [name for name in _COLUMNS if name in Reading.__dataclass_fields__]
_reading_values = operator.attrgetter(*_READING_COLUMNS)


def sample_row(
    reading: Reading, *, lot_id: int | None, site_code: str, now: datetime, payload: str
) -> list:
    values = dict(zip(_READING_COLUMNS, _reading_values(reading), strict=True))
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


def raw_cursor(*, native: bool = False):
    """A server-side-binding psycopg cursor on this thread's connection, statements prepared.

    ``native``: the statement uses PostgreSQL's placeholders ($1…) rather than %s.
    """
    connection.ensure_connection()
    session = connection.connection
    if session.prepare_threshold is None:
        session.prepare_threshold = PREPARE_THRESHOLD
        session.adapters.register_dumper(Float8Array, _Float8ArrayDumper)
    return (psycopg.RawCursor if native else psycopg.Cursor)(session)


def samples_insert(
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
        params += _alert_values(a, now)
    with connection.wrap_database_errors, raw_cursor(native=True) as cursor:
        cursor.execute(_insert_sql(len(rows), len(alerts)), params)
        return {(device_id, sample_id): pk for pk, device_id, sample_id in cursor.fetchall()}


@dataclass(frozen=True)
class LotRef:
    id: int
    code: str
    site_code: str


@dataclass(frozen=True)
class StationRef:
    device_id: str
    is_active: bool
    has_token: bool
    site_code: str | None
    assigned_lot: LotRef | None
    lots_of_any_site: bool = False


def _fetch(sql: str, params: Sequence) -> list[tuple]:
    with connection.wrap_database_errors, raw_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


_DEVICE, _SITE, _LOT = Device._meta.db_table, Site._meta.db_table, Lot._meta.db_table


STATIONS_SQL = (
    f"SELECT d.device_id, d.is_active, d.token_hash <> '', s.code, l.id, l.code, ls.code, "
    f"d.lots_of_any_site "
    f"FROM {_DEVICE} d LEFT JOIN {_SITE} s ON s.id = d.site_id "
    f"LEFT JOIN {_LOT} l ON l.id = d.assigned_lot_id "
    f"LEFT JOIN {_SITE} ls ON ls.id = l.site_id "
    f"WHERE d.device_id = ANY(%s)"
)
# The reads a batch needs before it is stored (stations, lots, active thresholds), as one
# statement with one result row: each read a JSON array of rows. A psycopg pipeline of three
# statements cost the writer thread 0.56-0.68 ms of CPU per batch against 0.32-0.37 ms for this
# one (measured by hand with its transaction, 30 November 2026): three cursors, a pipeline sync
# and three results, for a handful of rows.
BATCH_READS_SQL = (
    f"SELECT (SELECT coalesce(json_agg(json_build_array(d.device_id, d.is_active, "
    f"d.token_hash <> '', s.code, l.id, l.code, ls.code, d.lots_of_any_site)), '[]') "
    f"FROM {_DEVICE} d LEFT JOIN {_SITE} s ON s.id = d.site_id "
    f"LEFT JOIN {_LOT} l ON l.id = d.assigned_lot_id "
    f"LEFT JOIN {_SITE} ls ON ls.id = l.site_id "
    f"WHERE d.device_id = ANY($1::varchar[])), "
    f"(SELECT coalesce(json_agg(json_build_array(l.id, l.code, s.code)), '[]') "
    f"FROM {_LOT} l JOIN {_SITE} s ON s.id = l.site_id "
    f"WHERE l.id = ANY($2::bigint[]) OR l.code = ANY($3::varchar[])), "
    f"(SELECT coalesce(json_agg(json_build_array(id, metric, operator, value, grade, severity) "
    f"ORDER BY id), '[]') FROM {QualityThreshold._meta.db_table} WHERE is_active)"
)


def batch_reads(
    device_ids: Sequence[str], lot_ids: Sequence[int], lot_codes: Sequence[str]
) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """Rows of the stations (``STATIONS_SQL``'s columns), of the lots named by id or by code
    (id, code, site code) and of the active thresholds, in one round trip."""
    with connection.wrap_database_errors, raw_cursor(native=True) as cursor:
        cursor.execute(BATCH_READS_SQL, [list(device_ids), list(lot_ids), list(lot_codes)])
        stations, lots, thresholds = cursor.fetchone()
    return (
        [tuple(row) for row in stations],
        [tuple(row) for row in lots],
        [tuple(row) for row in thresholds],
    )


def stations_from(rows: Sequence[tuple]) -> dict[str, StationRef]:
    return {
        device_id: StationRef(
            device_id=device_id,
            is_active=is_active,
            has_token=has_token,
            site_code=site_code,
            assigned_lot=LotRef(lot_id, lot_code, lot_site) if lot_id is not None else None,
            lots_of_any_site=any_site,
        )
        for device_id, is_active, has_token, site_code, lot_id, lot_code, lot_site, any_site in rows
    }


def stations_fetch(device_ids: Sequence[str]) -> dict[str, StationRef]:
    return stations_from(_fetch(STATIONS_SQL, [list(device_ids)]))


def thresholds_from(rows: Sequence[tuple]) -> list[QualityThreshold]:
    """The active thresholds, from their rows. Read again for every batch (staff edit them in
    admin, and a batch must see the thresholds of its time), but built again only when the rows
    changed: model instances cost more than the query (``alerts_for`` only reads them)."""
    return list(_thresholds_built(tuple(rows)))


@functools.lru_cache(maxsize=1)
def _thresholds_built(rows: tuple[tuple, ...]) -> tuple[QualityThreshold, ...]:
    return tuple(
        QualityThreshold(
            id=pk, metric=metric, operator=op, value=value, grade=grade, severity=severity
        )
        for pk, metric, op, value, grade, severity in rows
    )
