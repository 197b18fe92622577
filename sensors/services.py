"""Writes of the sensors app: station tokens and greetings, and the rules of sample ingestion.

Storage (SQL, binary arrays, prepared statements) is ``sensors.storage``; quality alerts are
``sensors.alerts``.

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
     product, which traceability registers once the transaction commits (the batch's requests
     go in one message).
If the batch transaction fails, each sample is retried alone so one bad row cannot sink the rest.
``_ingest_batch`` names these steps: ``_batch_context`` (reads), ``_sample_prepare`` (1, 2, 4),
``storage.samples_insert``, ``_samples_already_stored`` and ``_sample_settle`` (3, 5),
``_stations_seen``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DatabaseError, transaction
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.utils import timezone

from gaveurs.models import Lot, Site
from sensors import storage
from sensors.alerts import (
    Alert,
    alert_resolve,
    alerts_for,
    refusal_alert,
    unresolved_no_lot_alerts,
)
from sensors.models import Device, QualityThreshold, SensorSample
from sensors.rules import product_eligible
from sensors.schemas import Hello, Reading
from sensors.signals import ProductRequest, products_registration_request
from sensors.storage import LotRef, StationRef

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "sqal_"
_SITE_IN_DEVICE_ID = re.compile(r"^[A-Za-z0-9]+_([A-Z]{2,5})_")
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
    # The audit trail's diff leaves out non-editable fields (the hash): say what happened.
    device._change_reason = "new token issued"
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
    # What the station says of itself is not a staff change: no audit-trail row per greeting.
    device.save_without_historical_record(
        update_fields=["firmware_version", "mac_address", "location", "last_seen_at"]
    )
    return device


def _check_device(device: Device | StationRef, *, authenticated: bool) -> None:
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
    error_field: str | None = None  # the input at fault, and the rule it broke
    error_rule: str | None = None
    product_requested: bool = False
    alerts: list[Alert] = field(default_factory=list)
    reading: Reading | None = None

    def frame(self) -> dict:
        """The acknowledgement (or error) frame sent back to the station."""
        if self.status == "error":
            frame = {
                "type": "error",
                "code": self.error_code,
                "detail": self.error_detail,
                "sample_id": self.sample_id,
            }
            if self.error_field is not None:
                frame["field"] = self.error_field
            if self.error_rule is not None:
                frame["rule"] = self.error_rule
            return frame
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


@dataclass
class _BatchContext:
    """What a batch needs from the database before it is stored, read in one round trip."""

    devices: dict[str, StationRef]
    lots_by_id: dict[int, LotRef]
    lots_by_code: dict[str, LotRef]
    thresholds: list[QualityThreshold]


@dataclass
class _Pending:
    """The rows and alerts to insert, and which items each (station, sample id) came from."""

    rows: list[list] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    refused: list[Alert] = field(default_factory=list)  # of samples refused, not stored
    items: dict[tuple[str, str], list[int]] = field(default_factory=dict)


def _ingest_batch(items: Sequence[SampleInput], *, allow_unregistered: bool) -> list[IngestResult]:
    """The steps of ``ingest_samples``, inside its transaction (numbered in the module doc)."""
    now = timezone.now()
    results = [
        IngestResult(
            device_id=item.reading.device_id, sample_id=item.reading.sample_id, status="error"
        )
        for item in items
    ]
    context = _batch_context(items, allow_unregistered=allow_unregistered)
    pending = _Pending()
    for index, item in enumerate(items):
        _sample_prepare(item, results[index], context, pending, index=index, now=now)
    inserted = storage.samples_insert(pending.rows, pending.alerts, now=now) if pending.rows else {}
    storage.refused_alerts_upsert(pending.refused)
    stored = _samples_already_stored([key for key in pending.items if key not in inserted])
    wanted: list[ProductRequest] = []
    for key, indexes in pending.items.items():
        _sample_settle([results[i] for i in indexes], inserted.get(key), stored.get(key), wanted)
    products_registration_request(wanted)
    _stations_seen(results, now=now)
    return results


def _batch_context(items: Sequence[SampleInput], *, allow_unregistered: bool) -> _BatchContext:
    """Stations, lots and quality thresholds, in one round trip. Lots: those named by id, and
    by slaughter lot code (used when the station has no assigned lot). Missing stations are
    created when unregistered stations are allowed."""
    device_ids = sorted({item.reading.device_id for item in items})
    lot_ids = sorted({item.reading.lot_id for item in items if item.reading.lot_id is not None})
    codes = sorted(
        {
            item.reading.lot_abattage
            for item in items
            if item.reading.lot_id is None and item.reading.lot_abattage
        }
    )
    station_rows, lot_rows, threshold_rows = storage.batch_reads(device_ids, lot_ids, codes)
    devices = storage.stations_from(station_rows)
    missing = [d for d in device_ids if d not in devices]
    if missing and allow_unregistered:
        _create_devices(missing)
        devices.update(storage.stations_fetch(missing))
    lots = [LotRef(*row) for row in lot_rows]
    named_ids, named_codes = set(lot_ids), set(codes)
    return _BatchContext(
        devices=devices,
        lots_by_id={lot.id: lot for lot in lots if lot.id in named_ids},
        lots_by_code={lot.code: lot for lot in lots if lot.code in named_codes},
        thresholds=storage.thresholds_from(threshold_rows),
    )


def _lot_refusal(station: StationRef, lot: LotRef) -> tuple[str, str] | None:
    """Why ``station`` may not put a sample into ``lot`` (detail, rule), or None when it may.

    A station writes into its own site's lots only, and only into its assigned lot when staff
    set one; staff can lift this per station (``Device.lots_of_any_site``). The station's site
    is the one staff recorded, else the one its id names (``ESP32_LL_01``), never the message's.
    """
    if station.lots_of_any_site:
        return None
    assigned = station.assigned_lot
    if assigned is not None and lot.id != assigned.id:
        return (
            f"lot_id: lot {lot.code} is not this station's assigned lot {assigned.code} "
            f"(assigned_lot)",
            "assigned_lot",
        )
    site = _site_code(station.site_code, station.device_id, None)
    if lot.site_code != site:
        return (
            f"lot_id: lot {lot.code} belongs to site {lot.site_code}, not to this station's "
            f"site {site or '(none recorded)'} (lot_site)",
            "lot_site",
        )
    return None


def _sample_prepare(
    item: SampleInput,
    result: IngestResult,
    context: _BatchContext,
    pending: _Pending,
    *,
    index: int,
    now: datetime,
) -> None:
    """Check the station, resolve the lot and site, and queue the row and its alerts (steps 1,
    2 and 4); a refusal is written on ``result``. ``index`` is the item's place in the batch."""
    reading = result.reading = item.reading
    device = context.devices.get(reading.device_id)
    if device is None:
        result.error_code = "unknown_device"
        result.error_detail = f"station {reading.device_id} is not registered"
        return
    try:
        _check_device(device, authenticated=item.authenticated)
    except DeviceRefused as exc:
        result.error_code, result.error_detail = exc.code, exc.detail
        return
    if reading.lot_id is not None:
        lot = context.lots_by_id.get(reading.lot_id)
        if lot is None:
            result.error_code = "unknown_lot"
            result.error_detail = f"lot_id: lot {reading.lot_id} does not exist (lot_exists)"
            result.error_field, result.error_rule = "lot_id", "lot_exists"
            return
        refusal = _lot_refusal(device, lot)
        if refusal:
            logger.warning("station %s refused: %s", reading.device_id, refusal[0])
            result.error_code, result.error_detail = "lot_not_allowed", refusal[0]
            result.error_field, result.error_rule = "lot_id", refusal[1]
            result.alerts = [
                refusal_alert(
                    device_id=reading.device_id,
                    sample_key=reading.sample_id,
                    lot_id=lot.id,
                    lot_code=lot.code,
                    rule=refusal[1],
                    detail=refusal[0],
                    now=now,
                )
            ]
            pending.refused.extend(result.alerts)
            return
    elif device.assigned_lot is not None:
        lot = device.assigned_lot
    else:
        lot = context.lots_by_code.get(reading.lot_abattage)
        if lot is not None and _lot_refusal(device, lot):
            lot = None  # a slaughter lot code of another site: no lot (alert no_lot)
    site_code = _site_code(device.site_code, reading.device_id, reading.site_code) or (
        lot.site_code if lot is not None else ""
    )
    result.lot_id = lot.id if lot is not None else None
    result.lot_code = lot.code if lot is not None else ""
    result.site_code = site_code
    key = (reading.device_id, reading.sample_id)
    if key in pending.items:
        pending.items[key].append(index)  # the same sample twice in one batch: stored once
        return
    pending.items[key] = [index]
    pending.rows.append(
        storage.sample_row(
            reading, lot_id=result.lot_id, site_code=site_code, now=now, payload=item.payload
        )
    )
    # Its alerts go with it, in the same statement, which keeps them if the row is new.
    result.alerts = alerts_for(result, reading, context.thresholds, now=now)
    pending.alerts.extend(result.alerts)


def _samples_already_stored(keys: list[tuple[str, str]]) -> dict[tuple[str, str], SensorSample]:
    """The stored rows of the (station, sample id) pairs the insert skipped (step 3), with
    whether each already has its product."""
    if not keys:
        return {}
    return {
        (s.device_id, s.sample_id): s
        for s in SensorSample.objects.filter(
            device_id__in={d for d, _ in keys}, sample_id__in={s for _, s in keys}
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


def _sample_settle(
    results: list[IngestResult],
    inserted_pk: int | None,
    stored: SensorSample | None,
    wanted: list[ProductRequest],
) -> None:
    """The outcome of one (station, sample id) of the batch (steps 3 and 5): saved, or a
    duplicate of the stored row; ``results`` are the batch's items with that key, in order.
    Its product request, if any, is added to ``wanted`` (sent once for the batch).

    An eligible sample asks for its product; so does an eligible duplicate that has none yet: it
    was resent because its ack was lost, and so may its product request have been (server
    killed, or connection lost, between the commit and the publication). Registration is
    idempotent.
    """
    first, later = results[0], results[1:]
    if inserted_pk is not None:
        reading = first.reading
        first.status, first.pk = "saved", inserted_pk
        first.fusion_score, first.fusion_grade = reading.fusion_score, reading.fusion_grade
        for alert in first.alerts:
            alert.sample_id = first.pk
        if product_eligible(
            is_compliant=reading.is_compliant,
            fusion_grade=reading.fusion_grade,
            lot_id=first.lot_id,
        ):
            wanted.append(ProductRequest(first.lot_id, reading.sample_id, first.site_code))
            first.product_requested = True
    else:
        first.alerts = []  # the statement kept none: the sample was already stored
        first.status, first.pk = "duplicate", stored.pk
        first.fusion_score, first.fusion_grade = stored.fusion_score, stored.fusion_grade
        eligible = product_eligible(
            is_compliant=stored.is_compliant, fusion_grade=stored.fusion_grade, lot_id=stored.lot_id
        )
        if eligible and not stored.has_product:
            wanted.append(ProductRequest(stored.lot_id, stored.sample_id, stored.site_code))
            first.product_requested = True
    for dup in later:
        dup.status, dup.pk = "duplicate", first.pk
        dup.fusion_score, dup.fusion_grade = first.fusion_score, first.fusion_grade


def _stations_seen(results: Sequence[IngestResult], *, now: datetime) -> None:
    """Stations seen, at most every LAST_SEEN_EVERY seconds per station: a busy station would
    otherwise rewrite its row in every batch."""
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


# --- stations that sent without a lot -----------------------------------------------------------


@dataclass(frozen=True)
class LotAttachResult:
    attached: int  # samples given the lot
    products_requested: int  # of which eligible: their products are asked for on commit
    alert_resolved: bool


def station_samples_attach_lot(
    *,
    device: Device,
    lot: Lot,
    since: datetime | None,
    until: datetime | None,
    assign: bool,
    user,
) -> LotAttachResult:
    """Give ``lot`` to the samples ``device`` sent without one, measured in [since, until]
    (either bound may be open); each eligible one asks for its product through the same
    registration path as ingestion (``products_registration_request``, on commit). Nothing the
    station sent is changed but the sample's lot (and its site when it had none).

    ``assign``: the lot also becomes the station's assigned lot, and its open ``no_lot`` alert
    is resolved. The station's site rule applies (``_lot_refusal``): a lot of another site is
    refused (``DeviceRefused``, code ``lot_site``) unless staff let the station write into any
    site's lots.
    """
    with transaction.atomic():
        device = (
            Device.objects.select_for_update(of=("self",)).select_related("site").get(pk=device.pk)
        )
        station = StationRef(
            device_id=device.device_id,
            is_active=device.is_active,
            has_token=device.has_token,
            site_code=device.site.code if device.site is not None else None,
            assigned_lot=None,  # staff choose the lot: only the site rule applies
            lots_of_any_site=device.lots_of_any_site,
        )
        lot_ref = LotRef(lot.pk, lot.code, lot.site.code)
        refusal = _lot_refusal(station, lot_ref)
        if refusal:
            raise DeviceRefused(refusal[1], refusal[0])
        samples = SensorSample.objects.select_for_update().filter(
            device_id=device.device_id, lot__isnull=True
        )
        if since is not None:
            samples = samples.filter(time__gte=since)
        if until is not None:
            samples = samples.filter(time__lte=until)
        rows = list(
            samples.order_by("time", "id").values_list(
                "id", "sample_id", "site_code", "is_compliant", "fusion_grade"
            )
        )
        site = _site_code(station.site_code, device.device_id, None) or lot_ref.site_code
        SensorSample.objects.filter(id__in=[r[0] for r in rows]).update(lot=lot)
        SensorSample.objects.filter(id__in=[r[0] for r in rows], site_code="").update(
            site_code=site
        )
        wanted = [
            ProductRequest(lot.pk, sample_id, site_code or site)
            for _, sample_id, site_code, is_compliant, grade in rows
            if product_eligible(is_compliant=is_compliant, fusion_grade=grade, lot_id=lot.pk)
        ]
        products_registration_request(wanted)
        requested = len(wanted)
        resolved = False
        if assign:
            device.assigned_lot = lot
            device._history_user = user  # the audit trail's "who", also outside a request
            device.save(update_fields=["assigned_lot"])
            # At most one (one unresolved alert per station and rule), resolved through the
            # service so the audit trail records who resolved it.
            for alert in unresolved_no_lot_alerts().filter(device_id=device.device_id):
                alert_resolve(alert=alert, user=user)
                resolved = True
    logger.info(
        "station %s: %d samples attached to lot %s (%d products requested)",
        device.device_id,
        len(rows),
        lot.code,
        requested,
    )
    return LotAttachResult(
        attached=len(rows), products_requested=requested, alert_resolved=resolved
    )
