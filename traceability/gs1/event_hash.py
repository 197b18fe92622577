"""CBV 2.0 event hash IDs (``ni:///sha-256;<hex>?ver=CBV2.0``), CBV 2.0 section 8.9.

1. The event's fields are written in the standard's order as ``name=value`` (nested fields as
   ``name`` followed by their children), with nothing between them; fields not in the
   standard's list (our ``gt:`` extensions) come last, as ``{namespace}name=value``, sorted.
2. Values are canonical: times in UTC at millisecond precision with ``Z``; numbers without
   leading ``+`` or trailing zeros; bare CBV words as their web vocabulary URIs; GS1 identifiers
   as constrained canonical Digital Link URIs (which our builders already write).
3. Repeated siblings (EPCs, quantity elements, sensor reports) are sorted as strings.
4. ``recordTime``, ``eventID`` and ``errorDeclaration`` are left out; SHA-256 of the UTF-8 bytes.

This covers the fields our builders emit (traceability/gs1/epcis.py); tests compare it with the
``epcis-event-hash-generator`` package, which is too slow (JSON-LD expansion) for 20,000 events.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

CBV_PREFIX = {
    "bizStep": "https://ref.gs1.org/cbv/BizStep-",
    "disposition": "https://ref.gs1.org/cbv/Disp-",
}
MEASUREMENT_PREFIX = "https://gs1.org/voc/"

_QUANTITY = ("epcClass", "quantity", "uom")
_SENSOR_METADATA = (
    "time",
    "startTime",
    "endTime",
    "deviceID",
    "deviceMetadata",
    "rawData",
    "dataProcessingMethod",
    "bizRules",
)
_SENSOR_REPORT = (
    "type",
    "exception",
    "deviceID",
    "deviceMetadata",
    "rawData",
    "dataProcessingMethod",
    "time",
    "microorganism",
    "chemicalSubstance",
    "value",
    "component",
    "stringValue",
    "booleanValue",
    "hexBinaryValue",
    "uriValue",
    "minValue",
    "maxValue",
    "meanValue",
    "sDev",
    "percRank",
    "percValue",
    "uom",
    "coordinateReferenceSystem",
)
_EPC_LISTS = {"epcList", "inputEPCList", "childEPCs", "outputEPCList"}
_QUANTITY_LISTS = {"quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"}
ORDER = (
    "eventTime",
    "eventTimeZoneOffset",
    "certificationInfo",
    "parentID",
    "epcList",
    "inputEPCList",
    "childEPCs",
    "quantityList",
    "childQuantityList",
    "inputQuantityList",
    "outputEPCList",
    "outputQuantityList",
    "action",
    "transformationID",
    "bizStep",
    "disposition",
    "persistentDisposition",
    "readPoint",
    "bizLocation",
    "bizTransactionList",
    "sourceList",
    "destinationList",
    "sensorElementList",
)
IGNORED = {"type", "recordTime", "eventID", "errorDeclaration", "@context"}


class EventHashError(ValueError):
    """An event holds a field this implementation does not canonicalise."""


def canonical_time(value: str) -> str:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    moment = moment.replace(microsecond=round(moment.microsecond, -3) % 1_000_000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def canonical_number(value: float | int) -> str:
    if isinstance(value, bool):
        raise EventHashError("booleans are not canonicalised")
    number = float(value)
    return str(int(number)) if number.is_integer() else str(number)


def _scalar(name: str, value: Any) -> str:
    if isinstance(value, int | float):
        return canonical_number(value)
    text = str(value).strip()
    if "time" in name.lower() and "offset" not in name.lower():
        return canonical_time(text)
    if name in CBV_PREFIX and ":" not in text:
        return CBV_PREFIX[name] + text
    return text


def _field(name: str, value: Any) -> str:
    return f"{name}={_scalar(name, value)}" if value not in (None, "") else ""


def _ordered(obj: dict[str, Any], order: tuple[str, ...], kind: str) -> str:
    unknown = set(obj) - set(order)
    if unknown:
        raise EventHashError(f"{kind} fields not canonicalised: {sorted(unknown)}")
    return "".join(_field(name, obj[name]) for name in order if name in obj)


def _sensor_report(report: dict[str, Any]) -> str:
    report = dict(report)
    if "type" in report and ":" not in report["type"]:
        report["type"] = MEASUREMENT_PREFIX + report["type"]
    return "sensorReport" + _ordered(report, _SENSOR_REPORT, "sensorReport")


def _sensor_element(element: dict[str, Any]) -> str:
    text = "sensorElement"
    if "sensorMetadata" in element:
        text += "sensorMetadata" + _ordered(
            element["sensorMetadata"], _SENSOR_METADATA, "sensorMetadata"
        )
    text += "".join(sorted(_sensor_report(r) for r in element.get("sensorReport", [])))
    return text


def _extension(name: str, value: Any, namespaces: dict[str, str]) -> str:
    prefix, _, local = name.partition(":")
    if prefix not in namespaces or not local:
        raise EventHashError(f"field {name!r} is neither standard nor a declared extension")
    key = "{" + namespaces[prefix] + "}" + local
    if isinstance(value, dict):
        return key + "".join(sorted(_extension(k, v, namespaces) for k, v in value.items()))
    if isinstance(value, int | float):
        return f"{key}={canonical_number(value)}"
    return f"{key}={str(value).strip()}"


def event_prehash(event: dict[str, Any], namespaces: dict[str, str]) -> str:
    """The canonical pre-hash string of one event (``namespaces``: extension prefix → URI)."""
    parts = ["eventType=" + event["type"]]
    for name in ORDER:
        if name not in event:
            continue
        value = event[name]
        if name in _EPC_LISTS:
            if value:
                parts.append(name + "".join(sorted("epc=" + str(e) for e in value)))
        elif name in _QUANTITY_LISTS:
            if value:
                elements = (
                    "quantityElement" + _ordered(q, _QUANTITY, "quantityElement") for q in value
                )
                parts.append(name + "".join(sorted(elements)))
        elif name in ("readPoint", "bizLocation"):
            parts.append(name + _field("id", value["id"]))
        elif name == "sensorElementList":
            if value:
                parts.append(name + "".join(sorted(_sensor_element(e) for e in value)))
        elif name in ("certificationInfo", "parentID", "persistentDisposition") or name.endswith(
            "List"
        ):
            raise EventHashError(f"field {name!r} is not canonicalised here")
        else:
            parts.append(_field(name, value))
    extensions = [
        _extension(name, value, namespaces)
        for name, value in event.items()
        if name not in IGNORED and name not in ORDER
    ]
    return "".join(parts) + "".join(sorted(extensions))


def event_hash_id(event: dict[str, Any], namespaces: dict[str, str]) -> str:
    """The event's CBV 2.0 hash ID: ``ni:///sha-256;<64 hex digits>?ver=CBV2.0``."""
    digest = hashlib.sha256(event_prehash(event, namespaces).encode()).hexdigest()
    return f"ni:///sha-256;{digest}?ver=CBV2.0"
