"""Each product's life as EPCIS 2.0 events (JSON-LD), read from the database as a stream.

Events per lot, in this order (the order is also the pagination cursor, ``EventKey``):

0. **feeding** — an ``ObjectEvent`` (OBSERVE, bizStep ``gt:BizStep-feeding``, our vocabulary:
   the CBV has no feeding step) on the lot of ducks as an EPC class, at the end of feeding, with
   the feeding period and the lot's figures as ``gt:`` extension fields; only once it is over.
1. **transformation** — one ``TransformationEvent`` per lot and UTC day of registration: the
   lot of ducks as input quantity, the units registered that day as outputs, one
   ``transformationID`` per lot so the days read as one transformation.
2. per unit, **inspection** — an ``ObjectEvent`` (OBSERVE, bizStep ``inspecting``, disposition
   ``conformant`` or ``non_conformant``) with one ``sensorReport`` per SQAL quantity, then
   **commissioning** — an ``ObjectEvent`` (ADD, bizStep ``commissioning``, disposition
   ``active``) at registration.
3. **recall** — per recall or withdrawal that reaches units of the lot (``recall_events``): an
   ``ObjectEvent`` (OBSERVE, bizStep ``holding``, disposition ``recalled`` for a recall,
   ``non_sellable_other`` for a withdrawal from sale) on the lot's affected units at the
   recall's start, with its reference and kind as ``gt:`` extension fields.

Every event carries its CBV 2.0 hash ID (traceability/gs1/event_hash.py). Identifiers:
traceability/gs1/identifiers.py. Nothing here holds more than one lot-day of unit identifiers
in memory: units are read through a server-side cursor and documents are written as chunks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from gaveurs.models import Lot, Site
from sensors.models import Grade
from traceability.gs1 import identifiers as ids
from traceability.gs1.event_hash import event_hash_id
from traceability.models import ConsumerProduct
from traceability.recalls import recall_affected_products, recalls_for_lot

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
EXTENSION_PREFIX = "gt"
EVENT_TYPES = ("ObjectEvent", "TransformationEvent")
QUERY_NAME = "SimpleEventQuery"
UNIT_CHUNK = 2000  # rows fetched per round trip from the server-side cursor

# Phases of a lot's events, in output order.
FEEDING, TRANSFORMATION, UNIT, RECALL = 0, 1, 2, 3
INSPECTION, COMMISSIONING = 0, 1

# (field of the sample, CBV measurement type, unit of measure, scale, our method name)
SENSOR_QUANTITIES = (
    ("fusion_score", "Dimensionless", "P1", 100.0, "fusionScore"),
    ("tof_volume_mm3", "Volume", "MMQ", 1.0, "tofVolume"),
    ("tof_surface_uniformity", "Dimensionless", "P1", 100.0, "surfaceUniformity"),
    ("spectral_freshness_index", "Dimensionless", "P1", 100.0, "spectralFreshness"),
    ("spectral_fat_quality_index", "Dimensionless", "P1", 100.0, "fatQuality"),
    ("spectral_oxidation_index", "Dimensionless", "P1", 100.0, "oxidation"),
)


def context() -> list[Any]:
    return [EPCIS_CONTEXT, {EXTENSION_PREFIX: ids.vocabulary()}]


def namespaces() -> dict[str, str]:
    return {EXTENSION_PREFIX: ids.vocabulary()}


# --- Cursor and filters ------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class EventKey:
    """Position of an event in the stream: (lot, phase, unit or day, sub-event)."""

    lot_id: int
    phase: int
    item: int = 0
    sub: int = 0

    _TOKEN = re.compile(r"^(\d{1,18})\.([0-3])\.(\d{1,18})\.([01])$")

    def token(self) -> str:
        return f"{self.lot_id}.{self.phase}.{self.item}.{self.sub}"

    @classmethod
    def from_token(cls, token: str) -> EventKey:
        match = cls._TOKEN.match(token)
        if not match:
            raise ValueError("nextPageToken is not a token this server gave")
        return cls(*(int(g) for g in match.groups()))


@dataclass(frozen=True)
class EventFilter:
    """What to export. ``product`` is a product id (``FG_…``); times bound ``eventTime``."""

    lot: str | None = None
    product: str | None = None
    site: str | None = None
    event_types: tuple[str, ...] = EVENT_TYPES
    since: datetime | None = None  # eventTime >= since
    until: datetime | None = None  # eventTime < until
    after: EventKey | None = None  # resume after this event (pagination)

    def wants(self, event_type: str, when: datetime) -> bool:
        if event_type not in self.event_types:
            return False
        if self.since is not None and when < self.since:
            return False
        return self.until is None or when < self.until


# --- Formatting --------------------------------------------------------------------------------


def event_time(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def time_zone_offset(when: datetime) -> str:
    offset = when.astimezone(_zone(settings.TIME_ZONE)).strftime("%z")
    return f"{offset[:3]}:{offset[3:]}"


def _finish(event: dict[str, Any], when: datetime) -> dict[str, Any]:
    """Set the times first and the hash ID, computed over everything else."""
    body = {"type": event.pop("type"), "eventTime": event_time(when)}
    body["eventTimeZoneOffset"] = time_zone_offset(when)
    body.update(event)
    eid = event_hash_id(body, namespaces())
    return {"type": body["type"], "eventID": eid, **{k: v for k, v in body.items() if k != "type"}}


@dataclass(frozen=True)
class SiteIds:
    code: str
    gtin: str | None  # 14 digits
    gln: str

    @property
    def location(self) -> str:
        return ids.site_uri(code=self.code, gln=self.gln)

    def read_point(self, device_id: str | None = None) -> str:
        return ids.read_point_uri(code=self.code, gln=self.gln, device_id=device_id)

    def unit(self, *, serial: str, product_id: str) -> str:
        return ids.unit_uri(gtin=self.gtin, serial=serial, product_id=product_id)


def site_ids(site: Site) -> SiteIds:
    return SiteIds(code=site.code, gtin=ids.gtin14(site.gtin), gln=site.gln)


# --- Builders (pure: data in, one event out) ---------------------------------------------------


def feeding_event(lot: Lot, site: SiteIds) -> dict[str, Any]:
    """The lot's feeding period, observed at its end."""
    alive = lot.duck_count - lot.dead_count
    quantity: dict[str, Any] = {"epcClass": ids.lot_class_uri(lot.code)}
    if alive > 0:
        quantity["quantity"] = alive
    event: dict[str, Any] = {
        "type": "ObjectEvent",
        "quantityList": [quantity],
        "action": "OBSERVE",
        "bizStep": ids.vocabulary() + "BizStep-feeding",
        "readPoint": {"id": site.read_point()},
        "bizLocation": {"id": site.location},
        "gt:feedingStart": event_time(lot.feeding_start),
        "gt:feedingEnd": event_time(lot.planned_feeding_end),
        "gt:duckCount": lot.duck_count,
        "gt:deadCount": lot.dead_count,
    }
    if lot.duration_days is not None:
        event["gt:durationDays"] = lot.duration_days
    if lot.itm is not None:
        event["gt:itm"] = lot.itm
    if lot.mean_final_weight_g is not None:
        event["gt:meanFinalWeightG"] = lot.mean_final_weight_g
    return _finish(event, lot.planned_feeding_end)


def transformation_event(
    *, lot_code: str, site: SiteIds, when: datetime, units: list[str]
) -> dict[str, Any]:
    """Ducks of the lot (input quantity) become product units (outputs), one day's worth."""
    event = {
        "type": "TransformationEvent",
        "inputQuantityList": [{"epcClass": ids.lot_class_uri(lot_code), "quantity": len(units)}],
        "outputEPCList": units,
        "transformationID": ids.transformation_uri(lot_code),
        "readPoint": {"id": site.read_point()},
        "bizLocation": {"id": site.location},
    }
    return _finish(event, when)


def _percent_or_value(value: float, scale: float) -> float:
    return round(value * scale, 4)


def inspection_event(
    *, unit: str, site: SiteIds, when: datetime, device_id: str, sample: dict[str, Any]
) -> dict[str, Any]:
    """The SQAL inspection of a unit: one sensor report per measured quantity."""
    device = ids.device_uri(device_id)
    reports = []
    for name, kind, uom, scale, method in SENSOR_QUANTITIES:
        value = sample.get(name)
        if value is None:
            continue
        reports.append(
            {
                "type": kind,
                "deviceID": device,
                "dataProcessingMethod": f"{ids.vocabulary()}sqal/{method}",
                "value": _percent_or_value(value, scale),
                "uom": uom,
            }
        )
    conformant = bool(sample.get("is_compliant")) and sample.get("fusion_grade") != Grade.REJECT
    event: dict[str, Any] = {
        "type": "ObjectEvent",
        "epcList": [unit],
        "action": "OBSERVE",
        "bizStep": "inspecting",
        "disposition": "conformant" if conformant else "non_conformant",
        "readPoint": {"id": site.read_point(device_id)},
        "bizLocation": {"id": site.location},
    }
    if reports:
        event["sensorElementList"] = [
            {
                "sensorMetadata": {"time": event_time(when), "deviceID": device},
                "sensorReport": reports,
            }
        ]
    if sample.get("fusion_grade"):
        event["gt:grade"] = sample["fusion_grade"]
    return _finish(event, when)


def commissioning_event(*, unit: str, site: SiteIds, when: datetime) -> dict[str, Any]:
    """A unit's registration (its QR code and serial are given then)."""
    event = {
        "type": "ObjectEvent",
        "epcList": [unit],
        "action": "ADD",
        "bizStep": "commissioning",
        "disposition": "active",
        "readPoint": {"id": site.read_point()},
        "bizLocation": {"id": site.location},
    }
    return _finish(event, when)


# CBV 2.0 dispositions: a recall is "recalled"; a withdrawal from sale (no consumer action
# needed) has no disposition of its own, "non_sellable_other" says the units may not be sold.
RECALL_DISPOSITIONS = {"recall": "recalled", "withdrawal": "non_sellable_other"}


def recall_event(
    *,
    units: list[str],
    site: SiteIds,
    when: datetime,
    kind: str = "recall",
    reference: str | None = None,
) -> dict[str, Any]:
    """A recall (disposition ``recalled``) or a withdrawal from sale of units."""
    event: dict[str, Any] = {
        "type": "ObjectEvent",
        "epcList": units,
        "action": "OBSERVE",
        "bizStep": "holding",
        "disposition": RECALL_DISPOSITIONS[kind],
        "readPoint": {"id": site.read_point()},
        "bizLocation": {"id": site.location},
        "gt:recallKind": kind,
    }
    if reference:
        event["gt:recallReference"] = reference
    return _finish(event, when)


def recall_events(lot: Lot, flt: EventFilter) -> Iterator[tuple[EventKey, dict[str, Any]]]:
    """The recalls and withdrawals that reach the lot's units, phase ``RECALL``, in the order
    they start; each event lists the lot's affected units (``flt.product``: that one only)."""
    if "ObjectEvent" not in flt.event_types:
        return
    lot_site = site_ids(lot.site)
    for recall in recalls_for_lot(lot):
        key = EventKey(lot.id, RECALL, recall.pk)
        if not _after(key, flt) or not flt.wants("ObjectEvent", recall.starts_at):
            continue
        units = recall_affected_products(recall).filter(lot_id=lot.id)
        if flt.product is not None:
            units = units.filter(product_id=flt.product)
        rows = units.order_by("id").values_list("gs1_serial", "product_id")
        epcs = [lot_site.unit(serial=serial, product_id=pid) for serial, pid in rows]
        if epcs:
            event = recall_event(
                units=epcs,
                site=lot_site,
                when=recall.starts_at,
                kind=recall.kind,
                reference=recall.reference,
            )
            yield key, event


# --- Reading the database ----------------------------------------------------------------------

UNIT_FIELDS = (
    "id",
    "product_id",
    "gs1_serial",
    "created_at",
    "site_code",
    "sample__time",
    "sample__device_id",
    "sample__fusion_grade",
    "sample__is_compliant",
    *(f"sample__{q[0]}" for q in SENSOR_QUANTITIES),
)


def _lots(flt: EventFilter) -> Iterator[Lot]:
    lots = Lot.objects.select_related("site").order_by("id")
    if flt.lot is not None:
        lots = lots.filter(code=flt.lot)
    if flt.site is not None:
        lots = lots.filter(site__code=flt.site)
    if flt.product is not None:
        lots = lots.filter(products__product_id=flt.product)
    if flt.after is not None:
        lots = lots.filter(id__gte=flt.after.lot_id)
    return lots.iterator(chunk_size=200)


SiteLookup = Callable[[str], SiteIds]


def _after(key: EventKey, flt: EventFilter) -> bool:
    return flt.after is None or key > flt.after


def events(flt: EventFilter) -> Iterator[tuple[EventKey, dict[str, Any]]]:
    """Every event ``flt`` selects, in ``EventKey`` order, built as it is read."""
    sites: dict[str, SiteIds] = {}

    def site_of(code: str) -> SiteIds:
        if code not in sites:
            site = Site.objects.filter(code=code).first()
            sites[code] = site_ids(site) if site else SiteIds(code=code, gtin=None, gln="")
        return sites[code]

    now = timezone.now()
    for lot in _lots(flt):
        lot_site = sites.setdefault(lot.site.code, site_ids(lot.site))
        key = EventKey(lot.id, FEEDING)
        if (
            flt.product is None
            and lot.planned_feeding_end <= now
            and _after(key, flt)
            and flt.wants("ObjectEvent", lot.planned_feeding_end)
        ):
            yield key, feeding_event(lot, lot_site)
        yield from _transformations(lot, lot_site, flt, site_of)
        yield from _unit_events(lot, flt, site_of)
        yield from recall_events(lot, flt)


def _products(lot: Lot, flt: EventFilter) -> QuerySet[ConsumerProduct]:
    products = ConsumerProduct.objects.filter(lot_id=lot.id)
    if flt.product is not None:
        products = products.filter(product_id=flt.product)
    return products


def _transformations(
    lot: Lot, lot_site: SiteIds, flt: EventFilter, site_of: SiteLookup
) -> Iterator[tuple[EventKey, dict[str, Any]]]:
    if "TransformationEvent" not in flt.event_types:
        return
    days = (
        _products(lot, flt)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day")
        .distinct()
        .order_by("day")
    )
    for row in days:
        key = EventKey(lot.id, TRANSFORMATION, row["day"].toordinal())
        if not _after(key, flt):
            continue
        # The whole day's outputs, even when one product was asked for (MATCH_epc semantics).
        rows = (
            ConsumerProduct.objects.filter(lot_id=lot.id)
            .annotate(day=TruncDate("created_at", tzinfo=UTC))
            .filter(day=row["day"])
            .order_by("id")
            .values_list("site_code", "gs1_serial", "product_id", "created_at")
        )
        units, first = [], None
        for code, serial, pid, created in rows.iterator(chunk_size=UNIT_CHUNK):
            units.append(site_of(code).unit(serial=serial, product_id=pid))
            first = created if first is None or created < first else first
        if first is not None and flt.wants("TransformationEvent", first):
            yield (
                key,
                transformation_event(lot_code=lot.code, site=lot_site, when=first, units=units),
            )


def _unit_events(
    lot: Lot, flt: EventFilter, site_of: SiteLookup
) -> Iterator[tuple[EventKey, dict[str, Any]]]:
    want_objects = "ObjectEvent" in flt.event_types
    if not want_objects:
        return
    products = _products(lot, flt)
    if flt.after is not None and flt.after.lot_id == lot.id and flt.after.phase == UNIT:
        products = products.filter(id__gte=flt.after.item)
    elif flt.after is not None and flt.after.lot_id == lot.id and flt.after.phase > UNIT:
        return
    rows = products.order_by("id").values_list(*UNIT_FIELDS).iterator(chunk_size=UNIT_CHUNK)
    for row in rows:
        values = dict(zip(UNIT_FIELDS, row, strict=True))
        site = site_of(values["site_code"])
        unit = site.unit(serial=values["gs1_serial"], product_id=values["product_id"])
        key = EventKey(lot.id, UNIT, values["id"], INSPECTION)
        inspected = values["sample__time"]
        if _after(key, flt) and flt.wants("ObjectEvent", inspected):
            sample = {k.removeprefix("sample__"): v for k, v in values.items()}
            yield (
                key,
                inspection_event(
                    unit=unit,
                    site=site,
                    when=inspected,
                    device_id=values["sample__device_id"],
                    sample=sample,
                ),
            )
        key = EventKey(lot.id, UNIT, values["id"], COMMISSIONING)
        if _after(key, flt) and flt.wants("ObjectEvent", values["created_at"]):
            yield key, commissioning_event(unit=unit, site=site, when=values["created_at"])


# --- Documents ---------------------------------------------------------------------------------


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def document_chunks(event_list: Iterable[dict[str, Any]], *, query: bool = False) -> Iterator[str]:
    """An ``EPCISDocument`` (or, with ``query``, an ``EPCISQueryDocument``) as text chunks,
    one per event: the document is never held whole."""
    head = {
        "@context": context(),
        "type": "EPCISQueryDocument" if query else "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": event_time(timezone.now()),
    }
    opening = _dump(head)[:-1]
    if query:
        opening += (
            f',"epcisBody":{{"queryResults":{{"queryName":"{QUERY_NAME}",'
            '"resultsBody":{"eventList":['
        )
        closing = "]}}}}\n"
    else:
        opening += ',"epcisBody":{"eventList":['
        closing = "]}}\n"
    yield opening
    separator = ""
    for event in event_list:
        yield separator + _dump(event)
        separator = ","
    yield closing
