"""The station protocol at /ws/sensors/: pydantic models of every message a station sends.

A ``sensor_data`` message comes in two forms that map onto one ``Reading``:

* flat, as the existing ESP32 simulator sends it (``tests/fixtures/sensor_data_flat.json``):
  ``vl53l8ch.{distance_matrix, …, volume_mm3, surface_uniformity, quality_score, grade}``,
  ``as7341.{channels, freshness_index, fat_quality_index, oxidation_index, quality_score, grade}``,
  ``fusion.{final_score, final_grade}``, ``meta.{firmware_version, temperature_c,
  humidity_percent}``, ``lot_abattage``, ``eleveur``, ``provenance``;
* nested (``SensorDataMessage``): ``vl53l8ch.raw.{distance_matrix, reflectance_matrix,
  amplitude_matrix, ambient_matrix?, status_matrix?}``, ``vl53l8ch.analysis.{volume_mm3,
  surface_uniformity, quality_score, grade}``, ``as7341.raw.channels``, ``as7341.analysis.{
  freshness_index, fat_quality_index, oxidation_index, quality_score, grade}``,
  ``fusion.{final_score, final_grade, is_compliant}``, and optionally ``lot_id`` and
  ``site_code``.

Only the fields we store are declared; everything else is kept verbatim in the payload. Messages
are validated straight from the JSON text (pydantic's parser), which is several times faster than
``json.loads`` on a 190 KB message.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

GradeName = Literal["A+", "A", "B", "C", "REJECT"]

SPECTRAL_CHANNELS = [
    "F1_415nm",
    "F2_445nm",
    "F3_480nm",
    "F4_515nm",
    "F5_555nm",
    "F6_590nm",
    "F7_630nm",
    "F8_680nm",
    "Clear",
    "NIR",
]

SampleId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")]
DEVICE_ID_MAX = 64


def device_id_check(value: str) -> str:
    """A station id as the ESP32 client may set it: any printable text of 1 to 64 characters
    (spaces and non-ASCII letters included, e.g. ``ESP32 Ligne B`` or ``Poste Étoile``), kept
    verbatim. Leading and trailing whitespace is not part of the id: it is dropped (the admin
    form drops it too, so ``"ESP32 "`` is station ``ESP32``, never a second station that looks
    the same in every list; the message as received keeps it). Refused: ids that are empty or
    only whitespace, and control characters, NUL and other invisible characters
    (``str.isprintable``: a plain space is the only separator allowed)."""
    value = value.strip()
    if not value:
        raise PydanticCustomError("device_id_blank", "the station id is empty or only whitespace")
    if len(value) > DEVICE_ID_MAX:
        raise PydanticCustomError(
            "string_too_long",
            "String should have at most {max_length} characters",
            {"max_length": DEVICE_ID_MAX},
        )
    if not value.isprintable():
        raise PydanticCustomError(
            "printable", "the station id holds a control or invisible character"
        )
    return value


DeviceId = Annotated[str, AfterValidator(device_id_check)]

# Descriptive fields (location, firmware, farm, origin, slaughter lot...) are never a reason to
# refuse a message: up to DESCRIPTIVE_MAX characters are stored as sent, a longer value is
# truncated and the station is told so in a ``warning`` frame (``parse_message``'s ``warnings``).
DESCRIPTIVE_MAX = 255


@dataclass(frozen=True)
class FieldWarning:
    """Something we changed in an accepted message; becomes a ``warning`` frame."""

    field: str
    rule: str
    detail: str

    def frame(self, *, sample_id: str | None = None) -> dict[str, Any]:
        return {
            "type": "warning",
            "code": "truncated" if self.rule == "max_length" else self.rule,
            "field": self.field,
            "rule": self.rule,
            "detail": self.detail,
            "sample_id": sample_id,
        }


def _descriptive(path: str) -> Any:
    def truncate(value: str, info: ValidationInfo) -> str:
        if len(value) <= DESCRIPTIVE_MAX:
            return value
        if isinstance(info.context, dict) and "warnings" in info.context:
            info.context["warnings"].append(
                FieldWarning(
                    field=path,
                    rule="max_length",
                    detail=f"{path}: {len(value)} characters, truncated to the first "
                    f"{DESCRIPTIVE_MAX} (max_length)",
                )
            )
        return value[:DESCRIPTIVE_MAX]

    return Annotated[str, AfterValidator(truncate)]


Score = Annotated[float, Field(ge=0, le=1)]
NonNegative = Annotated[float, Field(ge=0)]


def _matrix(item: Any) -> Any:
    row = Annotated[list[item], Field(min_length=8, max_length=8)]
    return Annotated[list[row], Field(min_length=8, max_length=8)]


DistanceMatrix = _matrix(Annotated[float, Field(ge=0, le=4000)])
PositiveMatrix = _matrix(NonNegative)
StatusMatrix = _matrix(Annotated[float, Field(ge=0, le=255)])
Channel = Annotated[float, Field(ge=0, le=65535)]


class Strict(BaseModel):
    # Extra fields are kept in the payload, not validated; NaN and infinities are refused.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)


class Channels(Strict):
    F1_415nm: Channel
    F2_445nm: Channel
    F3_480nm: Channel
    F4_515nm: Channel
    F5_555nm: Channel
    F6_590nm: Channel
    F7_630nm: Channel
    F8_680nm: Channel
    Clear: Channel
    NIR: Channel

    def as_list(self) -> list[float]:
        return [float(getattr(self, name)) for name in SPECTRAL_CHANNELS]


class ToFMatrices(Strict):
    distance_matrix: DistanceMatrix
    reflectance_matrix: PositiveMatrix
    amplitude_matrix: PositiveMatrix
    ambient_matrix: PositiveMatrix | None = None
    status_matrix: StatusMatrix | None = None


class ToFAnalysis(Strict):
    volume_mm3: NonNegative
    surface_uniformity: Score
    quality_score: Score
    grade: GradeName


class ToFFlat(ToFMatrices, ToFAnalysis):
    pass


class ToFNested(Strict):
    raw: ToFMatrices
    analysis: ToFAnalysis


class SpectralAnalysis(Strict):
    freshness_index: Score
    fat_quality_index: Score
    oxidation_index: Score
    quality_score: Score
    grade: GradeName


class SpectralFlat(SpectralAnalysis):
    channels: Channels


class SpectralRaw(Strict):
    channels: Channels


class SpectralNested(Strict):
    raw: SpectralRaw
    analysis: SpectralAnalysis


class FoieGrasMetrics(Strict):
    is_compliant: bool | None = None


class Fusion(Strict):
    final_score: Score
    final_grade: GradeName
    is_compliant: bool | None = None
    foie_gras_metrics: FoieGrasMetrics | None = None


class Meta(Strict):
    firmware_version: _descriptive("meta.firmware_version") = ""
    temperature_c: Annotated[float, Field(ge=-40, le=125)] | None = None
    humidity_percent: Annotated[float, Field(ge=0, le=100)] | None = None


def _form(value: Any) -> str:
    """Nested when the section has ``raw`` or ``analysis``; flat otherwise."""
    if isinstance(value, dict) and ("raw" in value or "analysis" in value):
        return "nested-form"
    return "flat-form"


ToFSection = Annotated[
    Annotated[ToFFlat, Tag("flat-form")] | Annotated[ToFNested, Tag("nested-form")],
    Discriminator(_form),
]
SpectralSection = Annotated[
    Annotated[SpectralFlat, Tag("flat-form")] | Annotated[SpectralNested, Tag("nested-form")],
    Discriminator(_form),
]


class SensorData(Strict):
    type: Literal["sensor_data"]
    device_id: DeviceId
    sample_id: SampleId
    timestamp: AwareDatetime
    lot_id: Annotated[int, Field(gt=0, lt=2**63)] | None = None
    site_code: Annotated[str, Field(pattern=r"^[A-Z]{2,5}$")] | None = None
    vl53l8ch: ToFSection
    as7341: SpectralSection
    fusion: Fusion
    meta: Meta | None = None
    lot_abattage: _descriptive("lot_abattage") = ""
    eleveur: _descriptive("eleveur") = ""
    provenance: _descriptive("provenance") = ""


class Hello(Strict):
    type: Literal["esp32_hello"]
    device_id: DeviceId
    mac_address: _descriptive("mac_address") = ""
    location: _descriptive("location") = ""
    firmware_version: _descriptive("firmware_version") = ""


class Ping(Strict):
    type: Literal["ping"]


class Heartbeat(Strict):
    type: Literal["heartbeat"]


MESSAGE_TYPES = ("sensor_data", "esp32_hello", "ping", "heartbeat")

# Dispatched on the ``type`` field by pydantic-core itself: a Python discriminator function would
# be handed the whole message converted to Python objects (as costly as json.loads on 190 KB).
# A missing or unknown type comes back as ``union_tag_not_found`` / ``union_tag_invalid``.
StationMessage = Annotated[
    SensorData | Hello | Ping | Heartbeat,
    Field(discriminator="type"),
]
station_message = TypeAdapter(StationMessage)


@dataclass(frozen=True)
class Reading:
    """One sample, whatever the form it came in: what ingestion stores."""

    device_id: str
    sample_id: str
    time: datetime
    lot_id: int | None
    site_code: str | None
    tof_volume_mm3: float
    tof_surface_uniformity: float
    tof_quality_score: float
    tof_grade: str
    distance_matrix: list[list[float]]
    reflectance_matrix: list[list[float]]
    amplitude_matrix: list[list[float]]
    ambient_matrix: list[list[float]] | None
    status_matrix: list[list[float]] | None
    spectral_channels: list[float]
    spectral_freshness_index: float
    spectral_fat_quality_index: float
    spectral_oxidation_index: float
    spectral_quality_score: float
    spectral_grade: str
    fusion_score: float
    fusion_grade: str
    is_compliant: bool
    fill_conformity: bool | None
    lot_abattage: str
    eleveur: str
    provenance: str
    firmware_version: str
    temperature_c: float | None
    humidity_percent: float | None

    @classmethod
    def from_message(cls, msg: SensorData) -> Reading:
        if isinstance(msg.vl53l8ch, ToFNested):
            matrices, tof = msg.vl53l8ch.raw, msg.vl53l8ch.analysis
        else:
            matrices = tof = msg.vl53l8ch
        if isinstance(msg.as7341, SpectralNested):
            channels, spectral = msg.as7341.raw.channels, msg.as7341.analysis
        else:
            channels, spectral = msg.as7341.channels, msg.as7341
        fusion = msg.fusion
        is_compliant = (
            fusion.is_compliant
            if fusion.is_compliant is not None
            else fusion.final_grade != "REJECT"
        )
        meta = msg.meta or Meta()
        return cls(
            device_id=msg.device_id,
            sample_id=msg.sample_id,
            time=msg.timestamp,
            lot_id=msg.lot_id,
            site_code=msg.site_code,
            tof_volume_mm3=tof.volume_mm3,
            tof_surface_uniformity=tof.surface_uniformity,
            tof_quality_score=tof.quality_score,
            tof_grade=tof.grade,
            distance_matrix=matrices.distance_matrix,
            reflectance_matrix=matrices.reflectance_matrix,
            amplitude_matrix=matrices.amplitude_matrix,
            ambient_matrix=matrices.ambient_matrix,
            status_matrix=matrices.status_matrix,
            spectral_channels=channels.as_list(),
            spectral_freshness_index=spectral.freshness_index,
            spectral_fat_quality_index=spectral.fat_quality_index,
            spectral_oxidation_index=spectral.oxidation_index,
            spectral_quality_score=spectral.quality_score,
            spectral_grade=spectral.grade,
            fusion_score=fusion.final_score,
            fusion_grade=fusion.final_grade,
            is_compliant=is_compliant,
            fill_conformity=(
                fusion.foie_gras_metrics.is_compliant if fusion.foie_gras_metrics else None
            ),
            lot_abattage=msg.lot_abattage,
            eleveur=msg.eleveur,
            provenance=msg.provenance,
            firmware_version=meta.firmware_version,
            temperature_c=meta.temperature_c,
            humidity_percent=meta.humidity_percent,
        )


class ProtocolError(Exception):
    """A message we refuse; becomes ``{"type": "error", "code", "detail", "sample_id"}``."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        sample_id: str | None = None,
        field: str | None = None,
        rule: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.sample_id = sample_id
        self.field = field
        self.rule = rule

    def frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = {
            "type": "error",
            "code": self.code,
            "detail": self.detail,
            "sample_id": self.sample_id,
        }
        if self.field is not None:
            frame["field"] = self.field
        if self.rule is not None:
            frame["rule"] = self.rule
        return frame


_SAMPLE_ID = re.compile(r'"sample_id"\s*:\s*"([^"\\]{1,100})"')
# Not an object, no "type", or a type we do not know.
_NOT_A_MESSAGE = {"dict_type", "model_type", "union_tag_not_found", "union_tag_invalid"}


def _contains(text: str, token: str) -> bool:
    """``token in text``, for tokens whose first character is rare in station messages.

    ``str.find`` of one character is a memchr; a 190 KB message has a handful of "N", "I" and
    backslashes, where the generic substring search reads the whole text at a third of the speed.
    """
    first = token[0]
    at = text.find(first)
    while at != -1:
        if text.startswith(token, at):
            return True
        at = text.find(first, at + 1)
    return False


def sample_id_of(text: str) -> str | None:
    """Best-effort sample id of a message we could not validate (for the error frame)."""
    match = _SAMPLE_ID.search(text)
    return match.group(1) if match else None


def _field_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    if loc and loc[0] in MESSAGE_TYPES:
        loc = loc[1:]  # the message type (the union's tag), not a field
    for part in loc:
        if isinstance(part, str) and part.endswith("-form"):
            continue  # discriminator tags, not fields
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts) or "(message)"


def _non_finite_path(value: Any, path: str = "") -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return path or "(message)"
    if isinstance(value, dict):
        for key, item in value.items():
            found = _non_finite_path(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _non_finite_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


def _nul_path(value: Any, path: str = "") -> str | None:
    if isinstance(value, str) and "\x00" in value:
        return path or "(message)"
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            found = _nul_path(key, here) or _nul_path(item, here)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


def parse_message(
    text: str, *, max_bytes: int, warnings: list[FieldWarning] | None = None
) -> SensorData | Hello | Ping | Heartbeat:
    """Validate one frame of text. Raises ``ProtocolError`` naming the field and the rule.

    What was accepted but changed (a descriptive field truncated) is appended to ``warnings``.
    """
    size = len(text) if text.isascii() else len(text.encode())
    if size > max_bytes:
        raise ProtocolError(
            "message_too_large",
            f"message is {size} bytes, the limit is {max_bytes} bytes",
            sample_id=sample_id_of(text[:4096]),
            rule="max_bytes",
        )
    try:
        message = station_message.validate_json(
            text, context={"warnings": warnings if warnings is not None else []}
        )
    except ValidationError as exc:
        raise _protocol_error(exc, text) from None
    if isinstance(message, SensorData):
        # 1. PostgreSQL's jsonb refuses NaN, infinities and \u0000 anywhere in the payload: refuse
        #    them here, where we can say where they are, rather than fail the whole batch later.
        if _contains(text, "NaN") or _contains(text, "Infinity"):
            path = _non_finite_path(json.loads(text))
            if path:
                raise ProtocolError(
                    "validation_error",
                    f"{path}: NaN and infinite numbers are not allowed (finite_number)",
                    sample_id=message.sample_id,
                    field=path,
                    rule="finite_number",
                )
    if _contains(text, "\\u0000") and not isinstance(message, Ping | Heartbeat):
        # 2. Nor do text columns: a hello's location or firmware too (they are stored).
        path = _nul_path(json.loads(text))
        if path:
            raise ProtocolError(
                "validation_error",
                f"{path}: the NUL character \\u0000 is not allowed in strings (no_nul)",
                sample_id=getattr(message, "sample_id", None),
                field=path,
                rule="no_nul",
            )
    return message


def _protocol_error(exc: ValidationError, text: str) -> ProtocolError:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    kind = first["type"]
    if kind == "json_invalid":
        return ProtocolError(
            "invalid_json",
            f"the message is not valid JSON: {first['msg']}",
            sample_id=sample_id_of(text),
            rule="json",
        )
    if kind in _NOT_A_MESSAGE and not first["loc"]:
        found = None
        try:
            found = json.loads(text).get("type")
        except (ValueError, AttributeError):
            pass
        return ProtocolError(
            "unknown_type",
            f"type: unknown message type {found!r}; expected one of "
            f"{', '.join(sorted(MESSAGE_TYPES))}",
            sample_id=sample_id_of(text),
            field="type",
            rule="message_type",
        )
    field = _field_path(first["loc"])
    detail = f"{field}: {first['msg']} ({kind})"
    if len(errors) > 1:
        detail += f"; and {len(errors) - 1} more"
    return ProtocolError(
        "validation_error", detail, sample_id=sample_id_of(text), field=field, rule=kind
    )
